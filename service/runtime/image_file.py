"""Image files to RGB pixels: JPEG, PNG, WebP, BMP, TIFF or GIF, its EXIF orientation applied, within the limits.

The format is told from the file's first bytes before Pillow sees them, and Pillow then tries that format's plugin
only: caller input never reaches the others (EPS's Ghostscript, PSD, ...). Needs only Pillow and numpy, so clients
(the overlay of `samsvc segment`) use it without torch.
"""

from __future__ import annotations

import io
import warnings
from typing import Final

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from service.errors import InvalidArgument, ResourceExhausted, ServiceError, cut
from service.image_info import ImageLimits

_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
_DEFAULT_LIMITS = ImageLimits()

# The accepted formats, by Pillow's name, and the signatures their files start with (WebP: RIFF, a length, WEBP).
ACCEPTED_FORMATS: Final = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")
_SIGNATURES: Final = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
)


def image_format_of(image_bytes: bytes) -> str | None:
    """The accepted format the file's first bytes name (Pillow's name for it), or None."""
    if image_bytes[:4] == b"RIFF" and image_bytes[8:12] == b"WEBP":
        return "WEBP"
    return next((name for signature, name in _SIGNATURES if image_bytes.startswith(signature)), None)


def decode_image(image_bytes: bytes, limits: ImageLimits = _DEFAULT_LIMITS, field: str = "image") -> np.ndarray:
    """Decode an image file of an accepted format to an RGB uint8 (H, W, 3) array with its EXIF orientation applied.

    Every failure is a domain error: a file of another format, or one Pillow cannot decode, is InvalidArgument
    whatever Pillow raises (its parsers raise many kinds on damaged files), one over a limit ResourceExhausted.
    """
    if not image_bytes:
        raise InvalidArgument("is empty", field)
    if len(image_bytes) > limits.max_bytes:
        raise ResourceExhausted(f"is {len(image_bytes)} bytes, over the limit of {limits.max_bytes}", field)
    image_format = image_format_of(image_bytes)
    if image_format is None:
        raise InvalidArgument("is not an image format this service reads (JPEG, PNG, WebP, BMP, TIFF, GIF)", field)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(image_bytes), formats=[image_format])
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
    except ServiceError:
        raise
    except UnidentifiedImageError as error:
        raise InvalidArgument(f"is not a readable {image_format} file", field) from error
    except MemoryError as error:
        raise ResourceExhausted("needs more memory to decode than this service has", field) from error
    except Exception as error:  # any exception of a parser of caller bytes means a bad file
        raise InvalidArgument(f"could not be decoded: {cut(str(error) or type(error).__name__)}", field) from error


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in _SIXTEEN_BIT_MODES:
        # Pillow clips 16-bit values to 255 on conversion; scale the full range down instead.
        wide = np.asarray(image, dtype=np.uint32)
        image = Image.fromarray((np.clip(wide, 0, 65535) >> 8).astype(np.uint8))
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8))
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
