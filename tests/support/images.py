"""Test images made in code: sizes, aspect ratios, Pillow modes and an EXIF-rotated JPEG."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def smooth_rgb(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth random RGB image (blobs, not noise) so that masks have structure."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(max(2, height // 40), max(2, width // 40), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))


def encode(image: Image.Image, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def png_bytes(rgb: np.ndarray) -> bytes:
    return encode(Image.fromarray(rgb), "PNG")


def exif_rotated_jpeg(rgb: np.ndarray, orientation: int = 6) -> bytes:
    """A JPEG whose stored pixels must be rotated by its EXIF orientation tag to show upright."""
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", quality=95, exif=exif.tobytes())


def sixteen_bit_png(height: int, width: int, seed: int) -> bytes:
    gray = smooth_rgb(height, width, seed)[..., 0].astype(np.uint16)
    return encode(Image.fromarray(gray * 257 + (gray & 0xF)), "PNG")


def sample_image_files() -> dict[str, bytes]:
    """Named image files covering the modes and shapes the encoder must accept."""
    wide = smooth_rgb(480, 640, seed=1)
    tall = smooth_rgb(900, 360, seed=2)
    return {
        "rgb_wide_png": png_bytes(wide),
        "rgb_tall_png": png_bytes(tall),
        "small_square_png": png_bytes(smooth_rgb(200, 200, seed=3)),
        "grayscale_png": encode(Image.fromarray(smooth_rgb(300, 500, seed=4)).convert("L"), "PNG"),
        "rgba_png": encode(Image.fromarray(smooth_rgb(256, 384, seed=5)).convert("RGBA"), "PNG"),
        "palette_gif": encode(Image.fromarray(smooth_rgb(240, 320, seed=6)).convert("P"), "GIF"),
        "sixteen_bit_png": sixteen_bit_png(220, 330, seed=7),
        "exif_rotated_jpeg": exif_rotated_jpeg(smooth_rgb(300, 450, seed=8)),
    }
