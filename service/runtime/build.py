"""Building SAM modules with `segment_anything`'s own builder, and recognising an architecture from weights."""

from __future__ import annotations

import torch
from segment_anything.build_sam import _build_sam
from segment_anything.modeling import Sam

from service.runtime.architectures import ARCHITECTURES, Architecture


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
