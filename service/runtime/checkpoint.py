"""Official SAM checkpoints: reading them (whole or one role's part), naming them, making test ones."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from service.model_identity import ModelIdentity
from service.runtime.architectures import Architecture, get_architecture
from service.runtime.build import architecture_of_state_dict, build_sam

# Seeded random weights give mask logits of about ±0.3, inside SAM's ±1 stability thresholds, so every
# stability score would be 0. Test checkpoints scale the output layer of each mask hypernetwork by this
# factor: the logits scale by it exactly, the masks (logits > 0) stay the same, and stability scores vary.
TEST_MASK_LOGIT_SCALE = 10.0
_MASK_HEAD_OUTPUT_LAYER = "layers.2."


@dataclass(frozen=True)
class CheckpointInfo:
    """Where a checkpoint is, what architecture it holds and the id of its weights."""

    path: Path
    arch: Architecture
    model_id: str

    @property
    def identity(self) -> ModelIdentity:
        return ModelIdentity(self.model_id, self.arch.name)


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


def make_test_checkpoint(arch_name: str, seed: int, out: Path, mask_logit_scale: float = TEST_MASK_LOGIT_SCALE) -> Path:
    """Write a SAM checkpoint with seeded random weights, in the official format (a torch.save'd state dict),
    its mask logits scaled by `mask_logit_scale` (see TEST_MASK_LOGIT_SCALE)."""
    arch = get_architecture(arch_name)
    torch.manual_seed(seed)
    sam = build_sam(arch)
    state_dict = sam.state_dict()
    for key, tensor in state_dict.items():
        if key.startswith("mask_decoder.output_hypernetworks_mlps.") and _MASK_HEAD_OUTPUT_LAYER in key:
            tensor.mul_(mask_logit_scale)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state_dict, out)
    return out
