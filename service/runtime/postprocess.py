"""Low-resolution logits to full-size masks and their statistics, with each family's reference arithmetic."""

from __future__ import annotations

import numpy as np
import torch
from segment_anything.utils.amg import calculate_stability_score
from torch.nn import functional as F

from service.constants import MASK_THRESHOLD, STABILITY_SCORE_OFFSET
from service.image_info import ImageInfo
from service.runtime.families.spec import Arch, Postprocess

# SAM2ImagePredictor returns its low-res logits clamped to this (the masks come from the unclamped ones).
SAM2_LOW_RES_CLAMP = 32.0


def upscale_logits(low_res_logits: torch.Tensor, info: ImageInfo, arch: Arch) -> torch.Tensor:
    """(B, C, 256, 256) logits to (B, C, H, W) at the original size, as the family's predictor does it.

    SAM 1 (`Sam.postprocess_masks`) takes two steps on purpose: straight from 256² to the original size gives
    masks with IoU ≈ 0.99 only. SAM 2 goes straight to the original size.
    """
    if arch.family.postprocess is Postprocess.RESIZE_DIRECT:
        return F.interpolate(low_res_logits, info.original_size, mode="bilinear", align_corners=False)
    size = arch.input_size
    logits = F.interpolate(low_res_logits, (size, size), mode="bilinear", align_corners=False)
    logits = logits[..., : info.input_size[0], : info.input_size[1]]
    return F.interpolate(logits, info.original_size, mode="bilinear", align_corners=False)


def returned_low_res_logits(low_res_logits: torch.Tensor, arch: Arch) -> torch.Tensor:
    """The low-res logits as the family's predictor hands them back (and takes them again as a mask prior)."""
    if arch.family.postprocess is Postprocess.RESIZE_DIRECT:
        return torch.clamp(low_res_logits, -SAM2_LOW_RES_CLAMP, SAM2_LOW_RES_CLAMP)
    return low_res_logits


def stability_scores(logits: torch.Tensor) -> torch.Tensor:
    """SAM's stability score of each mask: IoU of the masks thresholded at ±offset."""
    return calculate_stability_score(logits, MASK_THRESHOLD, STABILITY_SCORE_OFFSET)


def binarize(logits: torch.Tensor) -> torch.Tensor:
    return logits > MASK_THRESHOLD


def mask_area(mask: np.ndarray) -> int:
    return int(np.count_nonzero(mask))


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """COCO XYWH of the pixels inside a (H, W) boolean mask (pycocotools' toBbox); zeros when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return (0, 0, 0, 0)
    columns = np.flatnonzero(mask.any(axis=0))
    return (int(columns[0]), int(rows[0]), int(columns[-1] - columns[0] + 1), int(rows[-1] - rows[0] + 1))
