"""Image bytes to the encoder's input, exactly as the reference `SamPredictor.set_image` prepares it."""

from __future__ import annotations

import numpy as np
from segment_anything.utils.transforms import ResizeLongestSide

from service.constants import IMAGE_INPUT_SIZE
from service.errors import InvalidArgument
from service.image_info import ImageInfo

_RESIZE = ResizeLongestSide(IMAGE_INPUT_SIZE)


def input_size_of(original_size: tuple[int, int]) -> tuple[int, int]:
    """The size of the image after resizing its longest side to 1024 (the reference's rounding)."""
    return ResizeLongestSide.get_preprocess_shape(original_size[0], original_size[1], IMAGE_INPUT_SIZE)


def image_info_of(original_size: tuple[int, int]) -> ImageInfo:
    return ImageInfo(original_size=original_size, input_size=input_size_of(original_size))


def resize_to_model_frame(rgb: np.ndarray) -> np.ndarray:
    """The image with its longest side resized to 1024 (uint8, Pillow bilinear as the reference)."""
    return _RESIZE.apply_image(rgb)


def pad_to_model_input(resized: np.ndarray) -> np.ndarray:
    """The resized image zero-padded at the bottom and right to (1024, 1024, 3) uint8."""
    padded = np.zeros((IMAGE_INPUT_SIZE, IMAGE_INPUT_SIZE, 3), dtype=np.uint8)
    padded[: resized.shape[0], : resized.shape[1]] = resized
    return padded


def prepare_encoder_input(rgb: np.ndarray) -> tuple[np.ndarray, ImageInfo]:
    """What the image encoder needs (a padded uint8 1024² image) and the sizes to undo it later.

    InvalidArgument for an image so elongated (over 2048:1) that its shorter side would resize to 0 pixels.
    """
    rows, columns = rgb.shape[:2]
    if min(input_size_of((rows, columns))) < 1:
        raise InvalidArgument(
            f"is {columns}x{rows} pixels: resized to {IMAGE_INPUT_SIZE} on its longer side, its shorter side would "
            f"be under 1 pixel (aspect ratios over {2 * IMAGE_INPUT_SIZE}:1 are not accepted)",
            "image",
        )
    resized = resize_to_model_frame(rgb)
    info = ImageInfo(original_size=(rgb.shape[0], rgb.shape[1]), input_size=(resized.shape[0], resized.shape[1]))
    if info.input_size != input_size_of(info.original_size):
        raise AssertionError(f"resize gave {info.input_size}, expected {input_size_of(info.original_size)}")
    return pad_to_model_input(resized), info
