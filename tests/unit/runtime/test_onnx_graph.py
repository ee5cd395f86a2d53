"""The onnx backend's graphs: several images in one call, an image's side computed once per image key (and per
prompt with a mask input), exported once per model id however many processes start together, and exported again
when a file is damaged. (Their numbers against the reference: test_parity.py.)"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from service.byte_lru import ByteLru
from service.image_info import ImageInfo
from service.runtime.checkpoint import CheckpointInfo
from service.runtime.decoder_backend import DecodeItem
from service.runtime.onnx import backend as backend_module
from service.runtime.onnx.backend import GraphFiles, ImageSide, OnnxDecoderBackend, graph_paths
from service.runtime.onnx.graph import PARTS
from service.runtime.onnx.graph_files import graph_file_name
from service.runtime.prompt_decoder import PromptDecoderRole
from service.runtime.prompts import Prompt

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def role(tiny_checkpoint: CheckpointInfo) -> PromptDecoderRole:
    return PromptDecoderRole(tiny_checkpoint)


@pytest.fixture(scope="module")
def files(role: PromptDecoderRole, tmp_path_factory: pytest.TempPathFactory) -> GraphFiles:
    graphs = tmp_path_factory.mktemp("graphs")
    return graph_paths(role, graphs, graphs)


def items_for(keys: list[str]) -> list[DecodeItem]:
    rng = np.random.default_rng(4)
    info = ImageInfo(original_size=(480, 640), input_size=(768, 1024))
    embeddings = {key: rng.normal(0, 1, (1, 256, 64, 64)).astype(np.float16) for key in sorted(set(keys))}
    prompts = [
        Prompt(point_coords=np.array([[100.0, 200.0]]), point_labels=np.array([1])),
        Prompt(point_coords=np.array([[300.0, 50.0], [10.0, 10.0]]), point_labels=np.array([1, 0])),
        Prompt(box=np.array([50.0, 60.0, 400.0, 300.0])),
    ]
    return [
        DecodeItem(key, {"image_embeddings": embeddings[key]}, info, prompts[index % len(prompts)])
        for index, key in enumerate(keys)
    ]


def test_prompts_on_several_images_in_one_call_equal_separate_calls(role: PromptDecoderRole, files: GraphFiles) -> None:
    backend = OnnxDecoderBackend(role, files, threads=1)
    items = items_for(["a", "b", "a", "c", "b"])
    together = backend.decode(items, True, alone=True)
    for item, answer in zip(items, together, strict=True):
        [alone] = OnnxDecoderBackend(role, files, threads=1).decode([item], True, alone=True)
        np.testing.assert_allclose(answer.logits, alone.logits, atol=1e-4)
        np.testing.assert_allclose(answer.scores, alone.scores, atol=1e-5)
    assert not np.allclose(together[0].logits, together[1].logits)


def test_an_image_side_is_computed_once_per_image_key(role: PromptDecoderRole, files: GraphFiles) -> None:
    sides: ByteLru[ImageSide] = ByteLru(1 << 30)
    backend = OnnxDecoderBackend(role, files, threads=1, image_sides=sides)
    items = items_for(["a", "b", "a"])
    first = backend.decode(items, True, alone=True)
    assert (sides.hits, sides.misses, len(sides)) == (0, 2, 2)
    assert sides.total_bytes == 2 * 4096 * (256 + 3 * 128) * 4
    again = backend.decode(items, True, alone=True)
    assert (sides.hits, sides.misses) == (2, 2)
    for computed, kept in zip(first, again, strict=True):
        assert np.array_equal(computed.logits, kept.logits) and np.array_equal(computed.scores, kept.scores)


def test_a_mask_input_has_its_own_image_side_and_leaves_the_others_unchanged(
    role: PromptDecoderRole, files: GraphFiles
) -> None:
    """A prompt with a mask input reads src = embedding + its mask's embedding: computed for it, never kept; a
    prompt without one in the same image-side call answers as it does alone, to the bit."""
    [plain, other] = items_for(["a", "a"])
    mask = np.random.default_rng(5).normal(0, 4, (1, 256, 256)).astype(np.float32)
    with_mask = DecodeItem("a", other.tensors, other.info, Prompt(other.prompt.point_coords, other.prompt.point_labels,
                                                                  mask_input=mask))  # fmt: skip
    sides: ByteLru[ImageSide] = ByteLru(1 << 30)
    together = OnnxDecoderBackend(role, files, threads=1, image_sides=sides).decode([with_mask, plain], True, True)
    assert len(sides) == 1
    [plain_alone] = OnnxDecoderBackend(role, files, threads=1).decode([plain], True, alone=True)
    [mask_alone] = OnnxDecoderBackend(role, files, threads=1).decode([with_mask], True, alone=True)
    [other_alone] = OnnxDecoderBackend(role, files, threads=1).decode([other], True, alone=True)
    assert np.array_equal(together[1].logits, plain_alone.logits)
    np.testing.assert_allclose(together[0].logits, mask_alone.logits, atol=1e-4)
    assert np.abs(mask_alone.logits - other_alone.logits).max() > 0.01


def test_processes_starting_together_export_once(tiny_checkpoint: CheckpointInfo, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from service.runtime.onnx.graph import export_graph
        from service.runtime.onnx.graph_files import ensure_graph
        from service.runtime.prompt_decoder import PromptDecoderRole
        role = PromptDecoderRole.from_path({str(tiny_checkpoint.path)!r})
        def export(path):
            print("exported", flush=True)
            export_graph(role.prompt_encoder, role.mask_decoder, "image", path)
        print(ensure_graph(role.checkpoint.model_id, "image", Path({str(tmp_path)!r}), export))
        """
    )
    processes = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    assert all(process.returncode == 0 for process in processes)
    assert sum(output.count("exported") for output in outputs) == 1
    name = graph_file_name(tiny_checkpoint.model_id, "image")
    assert sorted(path.name for path in tmp_path.iterdir() if not path.name.endswith(".lock")) == [name]


@pytest.mark.parametrize("part", PARTS)
def test_a_damaged_graph_is_exported_again(role: PromptDecoderRole, tmp_path: Path, part: str) -> None:
    path = tmp_path / graph_file_name(role.checkpoint.model_id, part)
    path.write_bytes(b"not an onnx graph")
    backend = OnnxDecoderBackend(role, graph_paths(role, tmp_path, tmp_path), threads=1)
    assert path.stat().st_size > 10_000
    [answer] = backend.decode(items_for(["a"]), False, alone=True)
    assert answer.logits.shape == (1, 256, 256)


def test_a_read_only_graph_dir_without_the_graph_falls_back(
    role: PromptDecoderRole, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A volume mounted read-only (root may write through file modes, so the mount is what is_writable sees)."""
    volume = tmp_path / "volume"
    volume.mkdir()
    monkeypatch.setattr(backend_module, "is_writable", lambda directory: directory != volume)
    files = graph_paths(role, volume, tmp_path / "fallback")
    assert {path.parent for path in (files.image, files.prompt)} == {tmp_path / "fallback"}
    assert files.image.exists() and files.prompt.exists()
    assert list(volume.iterdir()) == []
    again = graph_paths(role, tmp_path / "fallback", tmp_path / "unused")
    assert (again.image, again.prompt) == (files.image, files.prompt)


def test_export_decoder_fills_the_graph_dir_once(tiny_checkpoint: CheckpointInfo, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "service.cli", "export-decoder", "--checkpoint", str(tiny_checkpoint.path),
               "--decoder-graph-dir", str(tmp_path / "graphs")]  # fmt: skip
    first = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    paths = [tmp_path / "graphs" / graph_file_name(tiny_checkpoint.model_id, part) for part in PARTS]
    assert first.stdout.splitlines() == [f"{tiny_checkpoint.model_id}: {path}" for path in paths]
    written = [path.stat().st_mtime_ns for path in paths]
    again = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    assert again.stdout == first.stdout and [path.stat().st_mtime_ns for path in paths] == written


@pytest.mark.parametrize("multimask", [True, False])
def test_a_lone_decode_and_a_busy_one_answer_the_same_to_the_bit(
    role: PromptDecoderRole, files: GraphFiles, multimask: bool
) -> None:
    """The wide (every core) and narrow (one thread) sessions of both graphs: a request's answer must not depend on
    whether other decodes ran beside it (ONNX Runtime split one product of an earlier graph by thread count)."""
    items = items_for(["a", "b", "a", "c", "b"])
    for batch in ([items[0]], [items[1]], [items[2]], items):
        wide = OnnxDecoderBackend(role, files, threads=2).decode(batch, multimask, alone=True)
        narrow = OnnxDecoderBackend(role, files, threads=2).decode(batch, multimask, alone=False)
        for first, second in zip(wide, narrow, strict=True):
            assert np.array_equal(first.logits, second.logits) and np.array_equal(first.scores, second.scores)
