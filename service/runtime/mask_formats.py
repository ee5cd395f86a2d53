"""Full-resolution masks to the wire formats: COCO RLE, PNG, packed bits."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode_rle(mask: np.ndarray) -> list[int]:
    """COCO uncompressed RLE counts of a (H, W) boolean mask: column-major runs, starting with outside."""
    flat = mask.ravel(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    boundaries = np.concatenate(([0], change, [flat.size]))
    counts = np.diff(boundaries)
    if flat.size and flat[0]:
        counts = np.concatenate(([0], counts))
    return list(counts.tolist())


def decode_rle(counts: list[int], size: tuple[int, int]) -> np.ndarray:
    """The inverse of encode_rle, for clients and tests."""
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    if flat.size != size[0] * size[1]:
        raise ValueError(f"RLE counts sum to {flat.size}, not {size[0]}x{size[1]}")
    return flat.reshape(size, order="F")


def encode_png(mask: np.ndarray) -> bytes:
    """A one-channel 8-bit PNG, 255 inside and 0 outside."""
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def decode_png(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png))) > 127


def encode_packed_bits(mask: np.ndarray) -> bytes:
    """The mask flattened row-major, 8 pixels a byte, most significant bit first."""
    return np.packbits(mask.ravel()).tobytes()


def decode_packed_bits(bits: bytes, size: tuple[int, int]) -> np.ndarray:
    pixel_count = size[0] * size[1]
    return np.unpackbits(np.frombuffer(bits, dtype=np.uint8), count=pixel_count).astype(bool).reshape(size)
