"""The SAM architectures the service loads, as the reference builder's own parameters (plain data: importing
this module loads no torch, so command-line help can list the names)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


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
