"""Mask wire formats: COCO RLE (checked with pycocotools and against the reference's `mask_to_rle_pytorch`), PNG
and packed bits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pycocotools import mask as coco_mask
from segment_anything.utils.amg import mask_to_rle_pytorch

from service.runtime.mask_formats import (
    decode_packed_bits,
    decode_png,
    decode_rle,
    encode_packed_bits,
    encode_png,
    encode_rle,
)


def masks() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    blob = np.zeros((37, 53), bool)
    blob[5:20, 11:40] = True
    starts_inside = np.zeros((10, 7), bool)
    starts_inside[0, 0] = True
    ends_inside = np.zeros((10, 7), bool)
    ends_inside[-1, -1] = True
    return [
        blob,
        rng.random((31, 17)) > 0.5,
        np.zeros((8, 9), bool),
        np.ones((8, 9), bool),
        starts_inside,
        ends_inside,
        rng.random((613, 1021)) > 0.5,  # speckled: a run boundary at almost every pixel
        rng.random((1, 5000)) > 0.9,
        rng.random((5000, 1)) > 0.1,
        np.kron(rng.random((40, 60)) > 0.5, np.ones((25, 25), bool)),
    ]


@pytest.mark.parametrize("mask", masks())
def test_rle_decodes_with_pycocotools(mask: np.ndarray) -> None:
    counts = encode_rle(mask)
    height, width = mask.shape
    rle = coco_mask.frPyObjects({"size": [height, width], "counts": counts.tolist()}, height, width)
    assert np.array_equal(coco_mask.decode(rle).astype(bool), mask)
    assert np.array_equal(decode_rle(counts, mask.shape), mask)
    [reference] = mask_to_rle_pytorch(torch.from_numpy(mask)[None])
    assert counts.tolist() == reference["counts"]


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
