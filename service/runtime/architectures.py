"""The SAM architectures the service loads, as the reference builder's own parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import torch
from segment_anything.build_sam import _build_sam
from segment_anything.modeling import Sam


@dataclass(frozen=True)
class Architecture:
    """The image encoder's shape; everything else in SAM is the same for every architecture."""

    name: str
    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: tuple[int, ...]


ARCHITECTURES: Final = {
    arch.name: arch
    for arch in (
        Architecture("vit_h", 1280, 32, 16, (7, 15, 23, 31)),
        Architecture("vit_l", 1024, 24, 16, (5, 11, 17, 23)),
        Architecture("vit_b", 768, 12, 12, (2, 5, 8, 11)),
        # For tests and trials: a two-block ViT, built by the same builder as the official ones.
        Architecture("tiny", 32, 2, 2, (1,)),
    )
}


def get_architecture(name: str) -> Architecture:
    """The architecture called `name`; ValueError naming the known ones otherwise."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}") from None


def build_sam(arch: Architecture, device: torch.device | str = "cpu") -> Sam:
    """SAM with freshly initialised weights, built by `segment_anything`'s own builder.

    On the "meta" device no memory is allocated, which lets a role keep only its own parts.
    """
    with torch.device(device):
        return _build_sam(
            encoder_embed_dim=arch.encoder_embed_dim,
            encoder_depth=arch.encoder_depth,
            encoder_num_heads=arch.encoder_num_heads,
            encoder_global_attn_indexes=list(arch.encoder_global_attn_indexes),
        )


def architecture_of_state_dict(state_dict: dict[str, torch.Tensor]) -> Architecture:
    """Recognise the architecture from the image encoder's keys and shapes (reads no weight data)."""
    embed_dim = state_dict["image_encoder.patch_embed.proj.weight"].shape[0]
    depth = len({key.split(".")[2] for key in state_dict if key.startswith("image_encoder.blocks.")})
    for arch in ARCHITECTURES.values():
        if (arch.encoder_embed_dim, arch.encoder_depth) == (embed_dim, depth):
            return arch
    raise ValueError(f"the checkpoint's image encoder (width {embed_dim}, depth {depth}) is no known architecture")
