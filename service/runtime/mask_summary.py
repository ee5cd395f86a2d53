"""One full-size mask from its logits: the mask, SAM's stability score, the area and the COCO bbox, in one pass of
row bands (so a 49-megapixel mask needs no full-size temporaries beyond the mask itself)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.constants import MASK_THRESHOLD, STABILITY_SCORE_OFFSET

# Pixels per band: large enough for numpy to run at full speed, small enough to stay in the CPU's caches.
_BAND_PIXELS = 1 << 18


@dataclass(frozen=True, eq=False)
class MaskSummary:
    mask: np.ndarray  # (H, W) bool, C order
    stability_score: float  # NaN when no pixel is above -offset, as the reference
    area: int
    bbox: tuple[int, int, int, int]  # COCO x, y, width, height; zeros for an empty mask


def summarize_mask(logits: np.ndarray, stability_offset: float = STABILITY_SCORE_OFFSET) -> MaskSummary:
    """Threshold (> 0), stability score (the counts above ±offset divided as `calculate_stability_score` does:
    both counts rounded to float32, then one float32 division), area and bbox of (H, W) float32 logits."""
    rows, columns = logits.shape
    # The thresholds in float32, as torch compares a float32 tensor with a Python float.
    high = np.float32(MASK_THRESHOLD + stability_offset)
    low = np.float32(MASK_THRESHOLD - stability_offset)
    mask = np.empty((rows, columns), dtype=bool)
    band_rows = max(1, _BAND_PIXELS // max(columns, 1))
    above_high = above_low = 0
    row_hits = np.zeros(rows, dtype=bool)
    column_hits = np.zeros(columns, dtype=bool)
    for start in range(0, rows, band_rows):
        band = logits[start : start + band_rows]
        inside = mask[start : start + band_rows]
        np.greater(band, MASK_THRESHOLD, out=inside)
        above_high += int(np.count_nonzero(band > high))
        above_low += int(np.count_nonzero(band > low))
        row_hits[start : start + band_rows] = inside.any(axis=1)
        column_hits |= inside.any(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        stability = float(np.float32(above_high) / np.float32(above_low))
    hit_rows = np.flatnonzero(row_hits)
    if hit_rows.size == 0:
        return MaskSummary(mask, stability, 0, (0, 0, 0, 0))
    hit_columns = np.flatnonzero(column_hits)
    area = int(np.count_nonzero(mask[hit_rows[0] : hit_rows[-1] + 1]))
    bbox = (
        int(hit_columns[0]),
        int(hit_rows[0]),
        int(hit_columns[-1] - hit_columns[0] + 1),
        int(hit_rows[-1] - hit_rows[0] + 1),
    )
    return MaskSummary(mask, stability, area, bbox)
