"""Upscaling low-res logits: bit for bit the reference's `Sam.postprocess_masks`, though only the cropped region
is upsampled, for every SAM 1 family's input size and images of several shapes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from service.runtime.checkpoint import CheckpointInfo
from service.runtime.postprocess import upscale_logits
from service.runtime.preprocess import image_info_of
from tests.numerical_contract import reference_sam

SIZES = [(480, 640), (768, 1024), (1024, 768), (900, 360), (7, 1500), (1500, 7), (3000, 2000), (256, 256)]


@pytest.mark.parametrize("arch", ["tiny", "tinyvit_test_mobile", "tinyvit_test_lite"])
def test_upscale_equals_postprocess_masks_bit_for_bit(
    arch: str, family_checkpoint: Callable[[str], CheckpointInfo]
) -> None:
    checkpoint = family_checkpoint(arch)
    sam = reference_sam(checkpoint)
    logits = torch.from_numpy(np.random.default_rng(5).normal(0, 4, (1, 3, 256, 256)).astype(np.float32))
    for original_size in SIZES:
        info = image_info_of(original_size, checkpoint.arch)
        with torch.inference_mode():
            expected = sam.postprocess_masks(logits, info.input_size, info.original_size)
        ours = upscale_logits(logits, info, checkpoint.arch)
        assert ours.shape == expected.shape, original_size
        assert torch.equal(ours, expected), (arch, original_size)
