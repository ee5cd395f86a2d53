"""What model_repo's model.py runs: settings from Triton's args, batches split back per request."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from service.runtime.checkpoint import CheckpointInfo
from service.runtime.families.catalog import get_arch
from service.runtime.image_encoder import ImageEncoderRole
from service.triton.encoder_model import (
    encode_requests,
    load_encoder,
    model_id_output,
    settings_from_triton,
)
from service.triton.launcher import child_environment, prepare_backend_directory, stub_path
from service.triton.model_config import TritonModel, render_config
from service.triton.model_repository import DEFAULT_MODEL_REPOSITORY, PRODUCTION_MODELS, write_repository
from tests.numerical_contract import reference_sam


def triton_args(kind: str = "CPU", checkpoint: str | None = "/models/sam.pth", arch: str = "") -> dict[str, str]:
    parameters = {"checkpoint": {"string_value": checkpoint}} if checkpoint else {}
    if arch:
        parameters["arch"] = {"string_value": arch}
    return {
        "model_config": json.dumps({"name": "sam_image_encoder", "parameters": parameters}),
        "model_instance_kind": kind,
        "model_instance_device_id": "1",
    }


def test_each_model_names_its_checkpoint_in_its_config() -> None:
    settings = settings_from_triton(triton_args(arch="vit_b"))
    assert (settings.checkpoint, settings.arch, settings.model_id) == ("/models/sam.pth", "vit_b", None)
    with pytest.raises(ValueError, match="no 'checkpoint' parameter"):
        settings_from_triton(triton_args(checkpoint=None))


def test_gpu_instances_run_in_half_precision_on_their_device() -> None:
    gpu = settings_from_triton(triton_args("GPU"))
    cpu = settings_from_triton(triton_args("CPU"))
    assert (gpu.device, gpu.half) == ("cuda:1", True)
    assert (cpu.device, cpu.half) == ("cpu", False)


def test_a_dynamic_batch_is_one_forward_pass_split_back_per_request(tiny_checkpoint: CheckpointInfo) -> None:
    """Each request's embeddings come back in order and equal the reference's SamPredictor features of its image."""
    encoder = load_encoder(settings_from_triton(triton_args(checkpoint=str(tiny_checkpoint.path))))
    assert isinstance(encoder, ImageEncoderRole) and encoder.checkpoint.model_id == tiny_checkpoint.model_id
    rng = np.random.default_rng(0)
    # 1024 x 700 content (the reference keeps that size: its longest side is already 1024); the columns past 700
    # hold noise that the model must treat as padding.
    images = [rng.integers(0, 256, (count, 1024, 1024, 3), dtype=np.uint8) for count in (1, 2)]
    sizes = [np.array([[1024, 700]] * count, dtype=np.int32) for count in (1, 2)]

    outputs = encode_requests(encoder, images, sizes)

    embeddings = [output["IMAGE_EMBEDDINGS"] for output in outputs]
    assert [sorted(output) for output in outputs] == [["IMAGE_EMBEDDINGS"], ["IMAGE_EMBEDDINGS"]]
    assert [embedding.shape for embedding in embeddings] == [(1, 256, 64, 64), (2, 256, 64, 64)]
    assert all(embedding.dtype == np.float16 for embedding in embeddings)
    predictor = SamPredictor(reference_sam(tiny_checkpoint))
    for batch, output in zip(images, embeddings, strict=True):
        for image, embedding in zip(batch, output, strict=True):
            with torch.inference_mode():
                predictor.set_image(np.ascontiguousarray(image[:, :700]))
            reference = predictor.features[0].numpy()
            # float16 rounding moves each value by at most 2^-11 of itself, plus float32 noise.
            difference = np.abs(embedding.astype(np.float32) - reference)
            assert np.all(difference <= np.abs(reference) * 2.0**-11 + 1e-4), float(difference.max())
    assert model_id_output("tiny-abc", 2).tolist() == [[b"tiny-abc"], [b"tiny-abc"]]


def test_backend_directory_holds_this_pythons_stub_beside_the_backend(tmp_path: Path) -> None:
    backend = prepare_backend_directory(tmp_path / "backends") / "python"
    assert sorted(path.name for path in backend.iterdir()) == [
        "libtriton_python.so",
        "triton_python_backend_stub",
        "triton_python_backend_utils.py",
    ]
    assert (backend / "triton_python_backend_stub").read_bytes() == stub_path().read_bytes()


def test_child_environment_finds_the_wheel_libraries_this_venv_and_the_repository() -> None:
    environment = child_environment({"PATH": "/usr/bin"})
    assert "nvidia_pytriton.libs" in environment["LD_LIBRARY_PATH"]
    assert environment["PATH"].endswith(":/usr/bin")
    assert environment["PYTHONPATH"].split(":")[0] == str(DEFAULT_MODEL_REPOSITORY.parent)


def test_model_repo_is_what_the_renderer_writes(tmp_path: Path) -> None:
    """model_repo/ is exactly what `python -m service.triton.model_repository` writes (run it after a change)."""
    write_repository(tmp_path, PRODUCTION_MODELS, "KIND_GPU", cpu_variant=True)

    def files(root: Path) -> dict[str, bytes]:
        return {
            str(path.relative_to(root)): path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts and path.name != "README.md"
        }

    assert files(DEFAULT_MODEL_REPOSITORY) == files(tmp_path)
    assert sorted(path.name for path in DEFAULT_MODEL_REPOSITORY.iterdir() if path.is_dir()) == [
        "lite_medsam",
        "sam_vit_h",
    ]


def test_gpu_and_cpu_configs_differ_only_in_instance_kind() -> None:
    for model in PRODUCTION_MODELS:
        model_dir = DEFAULT_MODEL_REPOSITORY / model.name
        gpu = (model_dir / "config.pbtxt").read_text()
        cpu = (model_dir / "configs" / "cpu.pbtxt").read_text()

        def body(text: str) -> list[str]:
            return [line for line in text.splitlines() if line and not line.startswith("#")]

        assert "kind: KIND_GPU" in gpu and "kind: KIND_CPU" in cpu
        assert body(gpu) == [line.replace("KIND_CPU", "KIND_GPU") for line in body(cpu)]


def test_configs_follow_each_family() -> None:
    lite = render_config(TritonModel("m", get_arch("lite_medsam"), "builtin:lite_medsam"), "KIND_CPU")
    assert "dims: [ 256, 256, 3 ]" in lite and "TYPE_UINT8" in lite and '"IMAGE_EMBEDDINGS"' in lite
    sam2 = render_config(TritonModel("m", get_arch("sam2.1_hiera_b+"), "/x.pt", "sam2-x-0"), "KIND_CPU")
    assert "dims: [ 3, 1024, 1024 ]" in sam2 and "TYPE_FP32" in sam2
    for name, dtype in (("IMAGE_EMBED", "FP16"), ("HIGH_RES_FEATS_0", "FP32"), ("HIGH_RES_FEATS_1", "FP16")):
        assert f'name: "{name}"\n    data_type: TYPE_{dtype}' in sam2
    assert 'key: "model_id"' in sam2 and 'string_value: "sam2-x-0"' in sam2
