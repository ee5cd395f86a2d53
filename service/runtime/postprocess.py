"""Low-resolution logits to full-size logits and back to what the predictor returns, with each family's reference
arithmetic (the masks' statistics: service.runtime.mask_summary)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from service.constants import LOW_RES_MASK_SIZE
from service.image_info import ImageInfo
from service.runtime.families.spec import Arch, Postprocess

# SAM2ImagePredictor returns its low-res logits clamped to this (the masks come from the unclamped ones).
SAM2_LOW_RES_CLAMP = 32.0


def upscale_logits(low_res_logits: torch.Tensor, info: ImageInfo, arch: Arch) -> torch.Tensor:
    """(B, C, 256, 256) logits to (B, C, H, W) at the original size, as the family's predictor does it, bit for bit.

    SAM 1 (`Sam.postprocess_masks`) takes two steps on purpose: straight from 256² to the original size gives
    masks with IoU ≈ 0.99 only. Its first step (256² to 1024², then a crop to the input size) is computed here on
    the low-res rows and columns that survive the crop only: with scale factor 4 torch maps output pixel i to
    source (i + 0.5) / 4 - 0.5, the same float as the full resize (1024 / 256 is exact), and one more source row
    and column keep the edge pixels' neighbours. When the input size is the original size (an image whose long
    side is 1024) the second step is the identity (weights 1 and 0) and is skipped. SAM 2 goes straight to the
    original size.
    """
    if arch.family.postprocess is Postprocess.RESIZE_DIRECT:
        return F.interpolate(low_res_logits, info.original_size, mode="bilinear", align_corners=False)
    scale = arch.input_size // LOW_RES_MASK_SIZE
    rows, columns = info.input_size
    kept_rows = min(LOW_RES_MASK_SIZE, -(-rows // scale) + 1)
    kept_columns = min(LOW_RES_MASK_SIZE, -(-columns // scale) + 1)
    logits = F.interpolate(
        low_res_logits[..., :kept_rows, :kept_columns],
        scale_factor=float(scale),
        mode="bilinear",
        align_corners=False,
        recompute_scale_factor=False,
    )
    logits = logits[..., :rows, :columns]
    if tuple(info.original_size) == tuple(info.input_size):
        return logits
    return F.interpolate(logits, info.original_size, mode="bilinear", align_corners=False)


def returned_low_res_logits(low_res_logits: torch.Tensor, arch: Arch) -> torch.Tensor:
    """The low-res logits as the family's predictor hands them back (and takes them again as a mask prior)."""
    if arch.family.postprocess is Postprocess.RESIZE_DIRECT:
        return torch.clamp(low_res_logits, -SAM2_LOW_RES_CLAMP, SAM2_LOW_RES_CLAMP)
    return low_res_logits
