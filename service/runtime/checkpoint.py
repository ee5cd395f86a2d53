"""Official SAM checkpoints: reading them (whole or one role's part), naming them, making test ones."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from service.runtime.architectures import Architecture, architecture_of_state_dict, build_sam, get_architecture


@dataclass(frozen=True)
class CheckpointInfo:
    """Where a checkpoint is, what architecture it holds and the id of its weights."""

    path: Path
    arch: Architecture
    model_id: str


def weights_hash(state_dict: dict[str, torch.Tensor]) -> str:
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


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's state dict, memory-mapped where the file format allows, so untouched weights stay on disk."""
    try:
        state_dict = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except RuntimeError:
        # Checkpoints written in torch's legacy (non-zip) format cannot be memory-mapped.
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state_dict, dict) or "image_encoder.patch_embed.proj.weight" not in state_dict:
        raise ValueError(f"{path} is not a SAM checkpoint (a state dict of segment_anything's Sam)")
    return state_dict


def inspect_checkpoint(path: Path, arch_name: str | None = None, model_id: str | None = None) -> CheckpointInfo:
    """Recognise the checkpoint's architecture (checking it against `arch_name` if given) and its model id.

    `model_id` skips hashing the weights when the caller already knows it (vit_h's 2.5 GB take seconds).
    """
    path = Path(path)
    state_dict = load_state_dict(path)
    found = architecture_of_state_dict(state_dict)
    if arch_name is not None and get_architecture(arch_name) != found:
        raise ValueError(f"{path} holds a {found.name} checkpoint, not {arch_name}")
    return CheckpointInfo(path=path, arch=found, model_id=model_id or f"{found.name}-{weights_hash(state_dict)}")


def part_state_dict(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The weights under `prefix` ("image_encoder."), with the prefix removed, copied out of the mapped file."""
    return {key[len(prefix) :]: value.clone() for key, value in state_dict.items() if key.startswith(prefix)}


def make_test_checkpoint(arch_name: str, seed: int, out: Path) -> Path:
    """Write a SAM checkpoint with seeded random weights, in the official format (a torch.save'd state dict)."""
    arch = get_architecture(arch_name)
    torch.manual_seed(seed)
    sam = build_sam(arch)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sam.state_dict(), out)
    return out
