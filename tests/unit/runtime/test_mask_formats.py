"""Mask wire formats: COCO RLE (checked with pycocotools), PNG, packed bits, bbox and area."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from service.runtime.mask_formats import (
    decode_packed_bits,
    decode_png,
    decode_rle,
    encode_packed_bits,
    encode_png,
    encode_rle,
)
from service.runtime.postprocess import mask_area, mask_bbox


def masks() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    blob = np.zeros((37, 53), bool)
    blob[5:20, 11:40] = True
    starts_inside = np.zeros((10, 7), bool)
    starts_inside[0, 0] = True
    return [
        blob,
        rng.random((31, 17)) > 0.5,
        np.zeros((8, 9), bool),
        np.ones((8, 9), bool),
        starts_inside,
    ]


@pytest.mark.parametrize("mask", masks())
def test_rle_decodes_with_pycocotools(mask: np.ndarray) -> None:
    counts = encode_rle(mask)
    height, width = mask.shape
    rle = coco_mask.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    assert np.array_equal(coco_mask.decode(rle).astype(bool), mask)
    assert np.array_equal(decode_rle(counts, mask.shape), mask)
    assert mask_area(mask) == int(coco_mask.area(rle))
    expected_bbox = [int(v) for v in coco_mask.toBbox(rle)]
    assert list(mask_bbox(mask)) == expected_bbox


@pytest.mark.parametrize("mask", masks())
def test_png_round_trip(mask: np.ndarray) -> None:
    assert np.array_equal(decode_png(encode_png(mask)), mask)


@pytest.mark.parametrize("mask", masks())
def test_packed_bits_round_trip(mask: np.ndarray) -> None:
    bits = encode_packed_bits(mask)
    assert len(bits) == (mask.size + 7) // 8
    assert np.array_equal(decode_packed_bits(bits, mask.shape), mask)


def test_rle_rejects_wrong_size() -> None:
    with pytest.raises(ValueError):
        decode_rle([3, 4], (3, 3))
