"""Image bytes to the encoder's input, exactly as the reference `SamPredictor.set_image` prepares it."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from segment_anything.utils.transforms import ResizeLongestSide

from service.constants import IMAGE_INPUT_SIZE
from service.errors import InvalidArgument, ResourceExhausted

_RESIZE = ResizeLongestSide(IMAGE_INPUT_SIZE)
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


@dataclass(frozen=True)
class ImageLimits:
    """Bounds on what the encoder accepts, to protect memory."""

    max_bytes: int = 32 << 20
    max_pixels: int = 50_000_000


@dataclass(frozen=True)
class ImageInfo:
    """Sizes (rows, columns) of an image as given and as resized into the model's 1024 frame."""

    original_size: tuple[int, int]
    input_size: tuple[int, int]


def input_size_of(original_size: tuple[int, int]) -> tuple[int, int]:
    """The size of the image after resizing its longest side to 1024 (the reference's rounding)."""
    return ResizeLongestSide.get_preprocess_shape(original_size[0], original_size[1], IMAGE_INPUT_SIZE)


def image_info_of(original_size: tuple[int, int]) -> ImageInfo:
    return ImageInfo(original_size=original_size, input_size=input_size_of(original_size))


def decode_image(image_bytes: bytes, limits: ImageLimits = ImageLimits(), field: str = "image") -> np.ndarray:
    """Decode any Pillow-readable image to an RGB uint8 (H, W, 3) array with its EXIF orientation applied."""
    if not image_bytes:
        raise InvalidArgument("is empty", field)
    if len(image_bytes) > limits.max_bytes:
        raise ResourceExhausted(f"is {len(image_bytes)} bytes, over the limit of {limits.max_bytes}", field)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(image_bytes))
            width, height = image.size
            if width * height > limits.max_pixels:
                raise ResourceExhausted(
                    f"is {width}x{height} = {width * height} pixels, over the limit of {limits.max_pixels}", field
                )
            image.load()
            image = ImageOps.exif_transpose(image)
            return _to_rgb(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ResourceExhausted(f"looks like a decompression bomb: {error}", field) from error
    except UnidentifiedImageError as error:
        raise InvalidArgument("is not an image format this service can read", field) from error
    except (OSError, SyntaxError, ValueError) as error:
        raise InvalidArgument(f"could not be decoded: {error}", field) from error


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in _SIXTEEN_BIT_MODES:
        # Pillow clips 16-bit values to 255 on conversion; scale the full range down instead.
        wide = np.asarray(image, dtype=np.uint32)
        image = Image.fromarray((np.clip(wide, 0, 65535) >> 8).astype(np.uint8))
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8))
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def resize_to_model_frame(rgb: np.ndarray) -> np.ndarray:
    """The image with its longest side resized to 1024 (uint8, Pillow bilinear as the reference)."""
    return _RESIZE.apply_image(rgb)


def pad_to_model_input(resized: np.ndarray) -> np.ndarray:
    """The resized image zero-padded at the bottom and right to (1024, 1024, 3) uint8."""
    padded = np.zeros((IMAGE_INPUT_SIZE, IMAGE_INPUT_SIZE, 3), dtype=np.uint8)
    padded[: resized.shape[0], : resized.shape[1]] = resized
    return padded


def prepare_encoder_input(rgb: np.ndarray) -> tuple[np.ndarray, ImageInfo]:
    """What the image encoder needs (a padded uint8 1024² image) and the sizes to undo it later."""
    resized = resize_to_model_frame(rgb)
    info = ImageInfo(original_size=(rgb.shape[0], rgb.shape[1]), input_size=(resized.shape[0], resized.shape[1]))
    if info.input_size != input_size_of(info.original_size):
        raise AssertionError(f"resize gave {info.input_size}, expected {input_size_of(info.original_size)}")
    return pad_to_model_input(resized), info
