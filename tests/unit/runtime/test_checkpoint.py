"""Checkpoints: the official format in and out, model ids, and roles that hold only their own weights."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from segment_anything.build_sam import _build_sam, sam_model_registry

from service.runtime.checkpoint import CheckpointInfo, inspect_checkpoint, make_test_checkpoint
from service.runtime.families.catalog import ARCHS, get_arch
from service.runtime.families.spec import ViTParams
from service.runtime.image_encoder import ImageEncoderRole
from service.runtime.prompt_decoder import PromptDecoderRole


def test_make_test_cli_writes_a_checkpoint_the_reference_builder_loads(tmp_path: Path) -> None:
    out = tmp_path / "tiny.pth"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "service.cli",
            "checkpoint",
            "make-test",
            "--arch",
            "tiny",
            "--seed",
            "7",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "sam-tiny-" in result.stdout and "mean nothing" in result.stdout
    tiny = ARCHS["tiny"].params
    assert isinstance(tiny, ViTParams)
    sam = _build_sam(
        encoder_embed_dim=tiny.embed_dim,
        encoder_depth=tiny.depth,
        encoder_num_heads=tiny.num_heads,
        encoder_global_attn_indexes=list(tiny.global_attn_indexes),
        checkpoint=str(out),
    )
    assert sum(p.numel() for p in sam.parameters()) > 0


@pytest.mark.slow
def test_vit_b_test_checkpoint_loads_through_the_registry(tmp_path: Path) -> None:
    path = make_test_checkpoint("vit_b", 0, tmp_path / "vit_b.pth")
    sam = sam_model_registry["vit_b"](checkpoint=str(path))
    assert sam.image_encoder.patch_embed.proj.weight.shape[0] == 768
    assert inspect_checkpoint(path).arch.name == "vit_b"


def test_model_id_is_family_architecture_and_content_hash(tmp_path: Path) -> None:
    first = inspect_checkpoint(make_test_checkpoint("tiny", 3, tmp_path / "a.pth"))
    same = inspect_checkpoint(make_test_checkpoint("tiny", 3, tmp_path / "b.pth"))
    other = inspect_checkpoint(make_test_checkpoint("tiny", 4, tmp_path / "c.pth"))
    assert first.model_id.startswith("sam-tiny-") and len(first.model_id) == len("sam-tiny-") + 16
    assert first.model_id == same.model_id
    assert first.model_id != other.model_id
    assert inspect_checkpoint(first.path, model_id="given").model_id == "given"


def test_architecture_mismatch_is_refused(tiny_checkpoint: CheckpointInfo) -> None:
    with pytest.raises(ValueError, match="holds a tiny checkpoint, not vit_h"):
        inspect_checkpoint(tiny_checkpoint.path, "vit_h")
    with pytest.raises(ValueError, match="unknown architecture"):
        get_arch("vit_xxl")


def test_non_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="not a SAM checkpoint"):
        inspect_checkpoint(path)


def reachable_tensors(root: object) -> list[torch.Tensor]:
    """Every tensor reachable from `root` through containers, modules and instances of our own classes: what the
    object keeps alive, found without asking it."""
    seen: set[int] = set()
    tensors: list[torch.Tensor] = []
    pending = [root]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, torch.Tensor):
            tensors.append(item)
        elif isinstance(item, dict | list | tuple | set | torch.nn.Module) or type(item).__module__.startswith(
            "service."
        ):
            pending.extend(gc.get_referents(item))
    return tensors


def storage_bytes(tensors: list[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind `tensors` (views counted once)."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors if not t.is_meta}
    return sum(storages.values())


def test_decoder_role_holds_no_image_encoder_weights(tiny_checkpoint: CheckpointInfo) -> None:
    state_dict = torch.load(tiny_checkpoint.path, map_location="cpu", weights_only=True)
    decoder_parts = [t for k, t in state_dict.items() if k.startswith(("prompt_encoder.", "mask_decoder."))]
    image_encoder_shapes = {tuple(t.shape) for k, t in state_dict.items() if k.startswith("image_encoder.")}
    role = PromptDecoderRole(tiny_checkpoint)

    kept = reachable_tensors(role)
    # Besides its weights, the role keeps one derived tensor: the dense positional encoding (1, 256, 64, 64).
    dense_pe_bytes = 256 * 64 * 64 * 4
    assert storage_bytes(kept) <= sum(t.nbytes for t in decoder_parts) + dense_pe_bytes + (16 << 10)
    kept_shapes = {tuple(t.shape) for t in kept}
    assert not kept_shapes & (image_encoder_shapes - {tuple(t.shape) for t in decoder_parts})
    assert all(not t.is_meta for t in kept)


def test_encoder_role_holds_only_the_image_encoder(tiny_checkpoint: CheckpointInfo) -> None:
    state_dict = torch.load(tiny_checkpoint.path, map_location="cpu", weights_only=True)
    encoder_bytes = sum(t.nbytes for key, t in state_dict.items() if key.startswith("image_encoder."))
    role = ImageEncoderRole(tiny_checkpoint)
    kept = reachable_tensors(role)
    # Its weights and the normalisation constants, nothing of the prompt encoder or mask decoder.
    assert encoder_bytes <= storage_bytes(kept) <= encoder_bytes + (16 << 10)


def test_pixel_normalisation_matches_the_reference_builder() -> None:
    from segment_anything.build_sam import sam_model_registry

    reference = sam_model_registry["vit_b"]()
    normalization = get_arch("vit_b").normalization
    assert reference.pixel_mean.flatten().tolist() == pytest.approx(normalization.mean)
    assert reference.pixel_std.flatten().tolist() == pytest.approx(normalization.std)
