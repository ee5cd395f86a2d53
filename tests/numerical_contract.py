"""The numerical contract of DESIGN.md, in one place for every parity test, and the reference model it is against."""

from __future__ import annotations

import numpy as np
import torch
from segment_anything import SamPredictor
from segment_anything.modeling import Sam
from segment_anything.utils.amg import calculate_stability_score

from service.runtime.checkpoint import CheckpointInfo, load_state_dict
from service.runtime.families.sam1 import build_sam

# Low-res logits within this absolute difference of the reference's.
LOGITS_ATOL = 1e-3
# Predicted IoU scores within this absolute difference.
SCORES_ATOL = 1e-4
# Full-resolution masks (and after the float16 round trip) at least this IoU with the reference's.
MIN_IOU = 0.999
# After float16 storage, a mask smaller than this many pixels may differ from the unrounded reference's in at
# most FLOAT16_SMALL_MASK_PIXELS pixels instead (measured on LiteMedSAM: 1 boundary pixel of a 417-pixel mask).
FLOAT16_SMALL_MASK_AREA = 1000
FLOAT16_SMALL_MASK_PIXELS = 2
# Stability scores within this absolute difference of segment_anything's calculate_stability_score on the
# reference's own full-resolution logits (a few pixels' worth on the test images).
STABILITY_ATOL = 1e-3
# The stability offset of the reference (SamAutomaticMaskGenerator's default stability_score_offset).
REFERENCE_STABILITY_OFFSET = 1.0


def reference_sam(checkpoint: CheckpointInfo) -> Sam:
    """segment_anything's Sam, whole, with the checkpoint's weights: what SamPredictor runs (sam family)."""
    sam = build_sam(checkpoint.arch)
    sam.load_state_dict(load_state_dict(checkpoint.path))
    return sam.eval()


def close_after_float16(got: np.ndarray, unrounded: np.ndarray) -> bool:
    """A mask made from a float16-stored embedding against the unrounded reference's: IoU >= MIN_IOU, or for a
    small mask at most FLOAT16_SMALL_MASK_PIXELS pixels apart."""
    if iou(got, unrounded) >= MIN_IOU:
        return True
    small = max(int(got.sum()), int(unrounded.sum())) < FLOAT16_SMALL_MASK_AREA
    return small and int(np.count_nonzero(got != unrounded)) <= FLOAT16_SMALL_MASK_PIXELS


def iou(first: np.ndarray, second: np.ndarray) -> float:
    union = np.logical_or(first, second).sum()
    return 1.0 if union == 0 else float(np.logical_and(first, second).sum() / union)


def reference_prediction(predictor: SamPredictor, **prompt: object) -> tuple[np.ndarray, ...]:
    """SamPredictor.predict(**prompt) as masks, scores, low-res logits and the reference's stability scores."""
    with torch.inference_mode():
        logits, scores, low_res = predictor.predict(**prompt, return_logits=True)  # type: ignore[arg-type]
    threshold = predictor.model.mask_threshold
    stability = calculate_stability_score(torch.from_numpy(logits), threshold, REFERENCE_STABILITY_OFFSET).numpy()
    return logits > threshold, scores, low_res, stability
