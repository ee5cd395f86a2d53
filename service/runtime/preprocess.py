"""An RGB image to its family's encoder input, exactly as the family's reference predictor prepares it.

- longest side (sam, tinyvit): segment_anything's ResizeLongestSide on the uint8 image (Pillow bilinear),
  zero-padded at the bottom and right to S x S; the encoder normalises, then zeroes the padding again.
- square float (sam2): SAM2Transforms' ToTensor then Resize((S, S), antialias) on the float [0, 1] image, sent as
  float32: rounding it to uint8 would move SAM 2's masks to IoU 0.987.
"""

from __future__ import annotations

import numpy as np
import torch
from segment_anything.utils.transforms import ResizeLongestSide
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as tvf

from service.errors import InvalidArgument
from service.image_info import ImageInfo
from service.runtime.families.spec import Arch, ResizeRule


def input_size_of(original_size: tuple[int, int], size: int = 1024) -> tuple[int, int]:
    """The size of the image after resizing its longest side to `size` (the reference's rounding)."""
    return ResizeLongestSide.get_preprocess_shape(original_size[0], original_size[1], size)


def image_info_of(original_size: tuple[int, int], arch: Arch | None = None) -> ImageInfo:
    """The sizes of an image of `original_size` in `arch`'s input frame (SAM's 1024 longest side by default)."""
    if arch is not None and arch.family.resize is ResizeRule.SQUARE_FLOAT:
        return ImageInfo(original_size=original_size, input_size=(arch.input_size, arch.input_size))
    size = 1024 if arch is None else arch.input_size
    return ImageInfo(original_size=original_size, input_size=input_size_of(original_size, size))


def square_resize(rgb: np.ndarray, size: int) -> np.ndarray:
    """(3, size, size) float32 in [0, 1]: ToTensor + Resize((size, size)), antialiased bilinear, as SAM 2."""
    pixels = torch.tensor(rgb).permute(2, 0, 1).float().div(255)
    resized = tvf.resize(pixels, [size, size], interpolation=InterpolationMode.BILINEAR, antialias=True)
    return resized.numpy()


def longest_side_resize(rgb: np.ndarray, size: int) -> np.ndarray:
    """The image with its longest side resized to `size` (uint8, Pillow bilinear as the reference)."""
    return ResizeLongestSide(size).apply_image(rgb)


def pad_to_square(resized: np.ndarray, size: int) -> np.ndarray:
    """The resized image zero-padded at the bottom and right to (size, size, 3) uint8."""
    padded = np.zeros((size, size, 3), dtype=np.uint8)
    padded[: resized.shape[0], : resized.shape[1]] = resized
    return padded


def prepare_encoder_input(rgb: np.ndarray, arch: Arch) -> tuple[np.ndarray, ImageInfo]:
    """What `arch`'s image encoder takes for `rgb` (H, W, 3) uint8, and the sizes to undo it later.

    InvalidArgument for an image so elongated (over 2S:1 for an input side S) that resizing its longer side to S
    would leave its shorter side under 1 pixel; the square resize of SAM 2 takes any shape.
    """
    info = image_info_of((rgb.shape[0], rgb.shape[1]), arch)
    if arch.family.resize is ResizeRule.SQUARE_FLOAT:
        return square_resize(rgb, arch.input_size), info
    if min(info.input_size) < 1:
        rows, columns = info.original_size
        raise InvalidArgument(
            f"is {columns}x{rows} pixels: resized to {arch.input_size} on its longer side, its shorter side would "
            f"be under 1 pixel (aspect ratios over {2 * arch.input_size}:1 are not accepted by {arch.name})",
            "image",
        )
    resized = longest_side_resize(rgb, arch.input_size)
    if resized.shape[:2] != info.input_size:
        raise AssertionError(f"resize gave {resized.shape[:2]}, expected {info.input_size}")
    return pad_to_square(resized, arch.input_size), info
