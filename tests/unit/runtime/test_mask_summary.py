"""One pass over full-size logits: the mask, SAM's stability score, COCO area and bbox, each equal to the
reference's (`calculate_stability_score`, pycocotools), including band edges and empty masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pycocotools import mask as coco_mask
from segment_anything.utils.amg import calculate_stability_score

from service.constants import MASK_THRESHOLD, STABILITY_SCORE_OFFSET
from service.runtime import mask_summary
from service.runtime.mask_summary import summarize_mask


def logit_maps() -> list[np.ndarray]:
    rng = np.random.default_rng(8)
    rows, columns = np.mgrid[0:700, 0:900]
    blob = (40.0 - np.hypot(rows - 300, columns - 500) / 5).astype(np.float32)
    return [
        blob,
        rng.normal(0, 2, (333, 517)).astype(np.float32),
        np.full((20, 30), -5, np.float32),  # empty: no pixel above 0 nor above -1
        np.full((3, 2000), 0.5, np.float32),  # above -1 and 0, none above +1
        rng.normal(0, 3, (2000, 3)).astype(np.float32),
    ]


@pytest.mark.parametrize("logits", logit_maps(), ids=lambda logits: "x".join(map(str, logits.shape)))
@pytest.mark.parametrize("band_pixels", [1 << 18, 1000])
def test_summary_equals_references(logits: np.ndarray, band_pixels: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mask_summary, "_BAND_PIXELS", band_pixels)
    summary = summarize_mask(logits)
    mask = logits > MASK_THRESHOLD
    assert np.array_equal(summary.mask, mask)
    expected = float(calculate_stability_score(torch.from_numpy(logits)[None], MASK_THRESHOLD, STABILITY_SCORE_OFFSET))
    assert summary.stability_score == expected or (np.isnan(expected) and np.isnan(summary.stability_score))
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert summary.area == int(coco_mask.area(rle))
    assert list(summary.bbox) == [int(value) for value in coco_mask.toBbox(rle)]
