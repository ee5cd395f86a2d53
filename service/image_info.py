"""What the service knows about an image besides its pixels: its sizes, and the limits on what is accepted."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageInfo:
    """Sizes (rows, columns) of an image as given and as resized into the model's input frame."""

    original_size: tuple[int, int]
    input_size: tuple[int, int]


@dataclass(frozen=True)
class ImageLimits:
    """Bounds on what the encoder accepts, to protect memory."""

    max_bytes: int = 32 << 20
    max_pixels: int = 50_000_000
