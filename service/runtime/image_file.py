"""Image files to RGB pixels: any Pillow-readable file, its EXIF orientation applied, within the limits.

Needs only Pillow and numpy, so clients (the overlay of `samsvc segment`) use it without torch.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from service.errors import InvalidArgument, ResourceExhausted
from service.image_info import ImageLimits

_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
_DEFAULT_LIMITS = ImageLimits()


def decode_image(image_bytes: bytes, limits: ImageLimits = _DEFAULT_LIMITS, field: str = "image") -> np.ndarray:
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
