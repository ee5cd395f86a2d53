"""The numerical contract of DESIGN.md, in one place for every parity test, and the reference model it is against."""

from __future__ import annotations

import numpy as np
from segment_anything.modeling import Sam

from service.runtime.build import build_sam
from service.runtime.checkpoint import CheckpointInfo, load_state_dict

# Low-res logits within this absolute difference of the reference's.
LOGITS_ATOL = 1e-3
# Predicted IoU scores within this absolute difference.
SCORES_ATOL = 1e-4
# Full-resolution masks (and after the float16 round trip) at least this IoU with the reference's.
MIN_IOU = 0.999


def reference_sam(checkpoint: CheckpointInfo) -> Sam:
    """segment_anything's Sam, whole, with the checkpoint's weights: what SamPredictor runs."""
    sam = build_sam(checkpoint.arch)
    sam.load_state_dict(load_state_dict(checkpoint.path))
    return sam.eval()


def iou(first: np.ndarray, second: np.ndarray) -> float:
    union = np.logical_or(first, second).sum()
    return 1.0 if union == 0 else float(np.logical_and(first, second).sum() / union)
