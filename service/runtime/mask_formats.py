"""Full-resolution masks to the wire formats: COCO RLE, PNG, packed bits."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

# Above this many run boundaries per pixel, sorting them costs more than one transposed copy of the mask.
_SORTED_BOUNDARIES_LIMIT = 1 / 32


def encode_rle(mask: np.ndarray) -> np.ndarray:
    """COCO uncompressed RLE counts (uint32) of a (H, W) boolean mask: column-major runs, starting with outside.

    Column-major position p = x * H + y starts a run where the mask differs from p - 1: inside a column that is
    the pixel above (one contiguous row-against-row compare of the C-order mask), at a column's top the bottom
    of the previous column. A real mask has few such boundaries, sorted into column-major order without a
    transposed copy; a speckled one (random weights: 10^5 runs) takes the transposed copy instead.
    """
    rows, columns = mask.shape
    size = rows * columns
    if size == 0:
        return np.zeros(0, dtype=np.uint32)
    inner = np.flatnonzero(mask[1:] != mask[:-1])  # r * columns + x: a change between rows r and r + 1 at x
    if inner.size > size * _SORTED_BOUNDARIES_LIMIT:
        flat = np.ascontiguousarray(mask.T).reshape(-1)
        changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    else:
        row, column = np.divmod(inner, columns)
        tops = np.flatnonzero(mask[0, 1:] != mask[-1, :-1]) + 1  # columns whose top differs from the last bottom
        changes = np.concatenate((column * rows + row + 1, tops * rows))
        changes.sort()
    starts_inside = int(bool(mask[0, 0]))
    boundaries = np.empty(changes.size + 2 + starts_inside, dtype=np.int64)
    boundaries[: 1 + starts_inside] = 0  # a mask starting inside opens with an empty outside run
    boundaries[1 + starts_inside : -1] = changes
    boundaries[-1] = size
    return np.diff(boundaries).astype(np.uint32)


def rle_wire_bytes(counts: np.ndarray) -> int:
    """Bytes of `counts` as a packed repeated uint32 field's payload: one varint of 7 bits a byte per count."""
    counts = np.asarray(counts, dtype=np.uint64)
    return int(counts.size + sum(np.count_nonzero(counts >= 1 << shift) for shift in (7, 14, 21, 28)))


def decode_rle(counts: Sequence[int] | np.ndarray, size: tuple[int, int]) -> np.ndarray:
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
