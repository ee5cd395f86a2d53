"""Low-resolution logits to full-size masks and their statistics, with the reference's arithmetic."""

from __future__ import annotations

import numpy as np
import torch
from segment_anything.utils.amg import calculate_stability_score
from torch.nn import functional as F

from service.constants import IMAGE_INPUT_SIZE, MASK_THRESHOLD, STABILITY_SCORE_OFFSET
from service.image_info import ImageInfo


def upscale_logits(low_res_logits: torch.Tensor, info: ImageInfo) -> torch.Tensor:
    """(B, C, 256, 256) logits to (B, C, H, W) at the original size, as `Sam.postprocess_masks` does.

    Two steps on purpose: straight from 256² to the original size gives masks with IoU ≈ 0.99 only.
    """
    logits = F.interpolate(low_res_logits, (IMAGE_INPUT_SIZE, IMAGE_INPUT_SIZE), mode="bilinear", align_corners=False)
    logits = logits[..., : info.input_size[0], : info.input_size[1]]
    return F.interpolate(logits, info.original_size, mode="bilinear", align_corners=False)


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
