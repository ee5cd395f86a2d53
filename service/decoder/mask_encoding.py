"""An object's predictions as they travel: per mask its scores, area, bbox and pixels in the asked encoding."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.decoder.query import MaskEncoding
from service.runtime.mask_formats import encode_packed_bits, encode_png, encode_rle
from service.runtime.polygons import Polygon, mask_to_polygons
from service.runtime.postprocess import mask_area, mask_bbox
from service.runtime.prompt_decoder import ObjectPrediction


@dataclass(frozen=True)
class EncodedMask:
    """One mask: its pixels in exactly one encoding (none for MaskEncoding.NONE)."""

    score: float
    stability_score: float
    area: int
    bbox: tuple[int, int, int, int]  # COCO XYWH
    size: tuple[int, int]  # rows, columns
    rle_counts: list[int] | None = None
    png: bytes | None = None
    packed_bits: bytes | None = None
    polygons: tuple[Polygon, ...] | None = None


@dataclass(frozen=True, eq=False)
class ObjectResult:
    """One prompt's answer: its masks in model order and, when asked, their (C, 256, 256) low-res logits."""

    masks: tuple[EncodedMask, ...]
    low_res_logits: np.ndarray | None


def encode_mask(
    mask: np.ndarray, score: float, stability_score: float, encoding: MaskEncoding, polygon_tolerance: float = 0.0
) -> EncodedMask:
    """The statistics of a (H, W) boolean mask and its pixels in `encoding`."""
    pixels: dict[str, object] = {}
    if encoding is MaskEncoding.RLE:
        pixels["rle_counts"] = encode_rle(mask)
    elif encoding is MaskEncoding.PNG:
        pixels["png"] = encode_png(mask)
    elif encoding is MaskEncoding.PACKED_BITS:
        pixels["packed_bits"] = encode_packed_bits(mask)
    elif encoding is MaskEncoding.POLYGON:
        pixels["polygons"] = mask_to_polygons(mask, polygon_tolerance)
    return EncodedMask(
        score=score,
        stability_score=stability_score,
        area=mask_area(mask),
        bbox=mask_bbox(mask),
        size=(int(mask.shape[0]), int(mask.shape[1])),
        **pixels,  # type: ignore[arg-type]
    )


def encode_object(
    prediction: ObjectPrediction, encoding: MaskEncoding, return_logits: bool, polygon_tolerance: float = 0.0
) -> ObjectResult:
    """Every mask of one prediction, encoded."""
    masks = tuple(
        encode_mask(
            prediction.masks[index],
            float(prediction.scores[index]),
            float(prediction.stability_scores[index]),
            encoding,
            polygon_tolerance,
        )
        for index in range(prediction.scores.shape[0])
    )
    return ObjectResult(masks=masks, low_res_logits=prediction.low_res_logits if return_logits else None)
