"""A mask as it travels: its scores, area, bbox and pixels in the asked encoding, and what it weighs on the wire."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.decoder.query import MaskEncoding
from service.runtime.mask_formats import encode_packed_bits, encode_png, encode_rle, rle_wire_bytes
from service.runtime.mask_summary import MaskSummary
from service.runtime.polygons import Polygon, mask_to_polygons

# A Mask message's bytes besides its pixels: two floats, the area, the bbox and the size with their tags, lengths
# and field keys (at most 5 bytes per varint). The answer-size bound counts it per mask.
MASK_OVERHEAD_BYTES = 64
# A ring's bytes besides its coordinates (tags and lengths of the Ring and its Polygon), and per coordinate (a varint
# of a pixel corner: 3 bytes up to 2,097,151 pixels).
_RING_OVERHEAD_BYTES = 12
_COORDINATE_BYTES = 3


@dataclass(frozen=True, eq=False)
class EncodedMask:
    """One mask: its pixels in exactly one encoding (none for MaskEncoding.NONE)."""

    score: float
    stability_score: float
    area: int
    bbox: tuple[int, int, int, int]  # COCO XYWH
    size: tuple[int, int]  # rows, columns
    rle_counts: np.ndarray | None = None  # uint32
    png: bytes | None = None
    packed_bits: bytes | None = None
    polygons: tuple[Polygon, ...] | None = None

    @property
    def wire_bytes(self) -> int:
        """At least the bytes this mask takes in a SegmentResponse, and at most MASK_OVERHEAD_BYTES more."""
        if self.rle_counts is not None:
            pixels = rle_wire_bytes(self.rle_counts)
        elif self.polygons is not None:
            pixels = polygons_wire_bytes(self.polygons)
        else:
            pixels = len(self.png or self.packed_bits or b"")
        return pixels + MASK_OVERHEAD_BYTES


@dataclass(frozen=True, eq=False)
class ObjectResult:
    """One prompt's answer: its masks in model order and, when asked, their (C, 256, 256) low-res logits."""

    masks: tuple[EncodedMask, ...]
    low_res_logits: np.ndarray | None


def encode_mask(
    summary: MaskSummary, score: float, encoding: MaskEncoding, polygon_tolerance: float = 0.0
) -> EncodedMask:
    """The summary of one mask with its pixels in `encoding`."""
    pixels: dict[str, object] = {}
    if encoding is MaskEncoding.RLE:
        pixels["rle_counts"] = encode_rle(summary.mask)
    elif encoding is MaskEncoding.PNG:
        pixels["png"] = encode_png(summary.mask)
    elif encoding is MaskEncoding.PACKED_BITS:
        pixels["packed_bits"] = encode_packed_bits(summary.mask)
    elif encoding is MaskEncoding.POLYGON:
        pixels["polygons"] = mask_to_polygons(summary.mask, polygon_tolerance)
    return EncodedMask(
        score=score,
        stability_score=summary.stability_score,
        area=summary.area,
        bbox=summary.bbox,
        size=(int(summary.mask.shape[0]), int(summary.mask.shape[1])),
        **pixels,  # type: ignore[arg-type]
    )


def packed_bits_bytes(size: tuple[int, int]) -> int:
    """Bytes of one mask of `size` as packed bits: known before any work."""
    return (size[0] * size[1] + 7) // 8


def polygons_wire_bytes(polygons: tuple[Polygon, ...]) -> int:
    """The bytes of `polygons` in a Polygons message, or a little more (each coordinate counted as 3 bytes)."""
    rings = [ring for polygon in polygons for ring in (polygon.exterior, *polygon.holes)]
    return sum(_RING_OVERHEAD_BYTES + _COORDINATE_BYTES * int(ring.size) for ring in rings)
