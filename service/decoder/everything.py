"""Segment everything as plain code: SamAutomaticMaskGenerator's algorithm (one crop: the whole image) over a cached
embedding, its point batches run as requests of the decode engine, so that it shares the decoder with interactive
streams, stops when cancelled, and is bounded.

The steps and their order are the reference's (`segment_anything.automatic_mask_generator`): a point grid
(`build_point_grid`) scaled to the image, each point a one-click prompt with three masks; masks kept when their
predicted IoU is above `pred_iou_thresh` and their stability score at least `stability_score_thresh`; box NMS over
the survivors' boxes (inclusive corners, as `batched_mask_to_box`) by predicted IoU; optionally small regions removed
and NMS again (`postprocess_small_regions`). Knows nothing of gRPC.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from segment_anything.utils.amg import build_point_grid, remove_small_regions
from torchvision.ops import batched_nms

from service.cache.keys import parse_image_key
from service.decoder.embedding_source import EmbeddingSource
from service.decoder.engine.scheduler import DecodeEngine
from service.decoder.engine.work import MaskFilter, SegmentWork
from service.decoder.mask_encoding import EncodedMask, encode_mask
from service.decoder.metrics import EVERYTHING_POINTS, REQUESTS_REFUSED
from service.decoder.query import MaskEncoding, SegmentQuery
from service.errors import InvalidArgument, ResourceExhausted
from service.logs import log_context
from service.runtime.decoder_backend import DecoderBackend
from service.runtime.mask_formats import decode_rle, encode_rle
from service.runtime.mask_summary import MaskSummary, summarize_mask
from service.runtime.prompts import Prompt

# AMG's defaults.
DEFAULT_POINTS_PER_SIDE = 32
DEFAULT_POINTS_PER_BATCH = 64
MAX_POINTS_PER_SIDE = 256
MAX_POINTS = MAX_POINTS_PER_SIDE**2
# AMG's crop_nms_thresh: with one crop it only sets the threshold of the NMS after small regions are removed.
AMG_CROP_NMS_THRESH = 0.7
# Prompts in one decode piece: 4 one-point prompts cost about 4 interactive decodes (0.2 s on a CPU core for SAM's
# decoder), so a stream waiting behind such a piece waits a few of its own decodes at most.
DECODE_PIECE_PROMPTS = 4
# The final masks go out a few at a time (re-encoded 16 at a time), far under the message limit.
MASKS_PER_MESSAGE = 16
MESSAGE_MASK_BYTES = 4 << 20
# What a batch may hold in memory while it runs (its kept masks as RLE): far above any real batch.
_BATCH_LIMIT_BYTES = 1 << 30


@dataclass(frozen=True)
class EverythingQuery:
    """SamAutomaticMaskGenerator's parameters (crop_n_layers 0) against one cached image."""

    request_id: str
    image_key: str
    points_per_side: int = DEFAULT_POINTS_PER_SIDE
    points: np.ndarray | None = None  # (N, 2) x, y in original-image pixels, instead of the grid
    points_per_batch: int = DEFAULT_POINTS_PER_BATCH
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    min_mask_region_area: int = 0
    encoding: MaskEncoding = MaskEncoding.RLE
    polygon_tolerance: float = 0.0


@dataclass(frozen=True)
class EverythingProgress:
    points_done: int
    points_total: int
    masks_kept: int


@dataclass(frozen=True, eq=False)
class EverythingMask:
    mask: EncodedMask
    point: tuple[float, float]  # x, y in original-image pixels


@dataclass(frozen=True)
class EverythingDone:
    masks: int
    points: int


EverythingEvent = EverythingProgress | tuple[EverythingMask, ...] | EverythingDone


@dataclass(frozen=True)
class EverythingLimits:
    max_mask_pixels: int  # points x 3 masks x image pixels per call


class EverythingSegmenter:
    def __init__(
        self,
        source: EmbeddingSource,
        backends: Mapping[str, DecoderBackend],
        limits: EverythingLimits,
        engine: DecodeEngine,
    ) -> None:
        self.source = source
        self.backends = backends
        self.limits = limits
        self.engine = engine

    async def run(self, query: EverythingQuery, tenant: str | None = None) -> AsyncIterator[EverythingEvent]:
        """Progress after each batch, then the masks a few at a time (AMG's order), then the summary."""
        check_parameters(query)
        image_key = parse_image_key(query.image_key)
        with log_context(image_key=image_key.short):
            stored = await self.source.get(image_key, tenant=tenant)
            rows, columns = stored.info.original_size
            points = query_points(query, (rows, columns))
            mask_pixels = len(points) * 3 * rows * columns
            if mask_pixels > self.limits.max_mask_pixels:
                REQUESTS_REFUSED.labels("everything_mask_pixels").inc()
                raise ResourceExhausted(
                    f"{len(points)} points x 3 masks of {columns}x{rows} pixels = {mask_pixels} mask pixels, over the "
                    f"limit of {self.limits.max_mask_pixels} (--max-everything-mask-pixels); use fewer points",
                    "points_per_side",
                )
            backend = self.backends[image_key.model_id]
            keep = MaskFilter(query.pred_iou_thresh, query.stability_score_thresh, query.stability_score_offset)
            kept: list[tuple[EncodedMask, tuple[float, float]]] = []
            for start in range(0, len(points), query.points_per_batch):
                batch = points[start : start + query.points_per_batch]
                prompts = tuple(
                    Prompt(point_coords=point[None].astype(np.float64), point_labels=np.ones(1, dtype=np.int64))
                    for point in batch
                )
                segment = SegmentQuery(query.request_id, query.image_key, prompts, True, MaskEncoding.RLE, False)
                work = SegmentWork(
                    segment, str(image_key), stored, backend, _BATCH_LIMIT_BYTES, keep, DECODE_PIECE_PROMPTS
                )
                await self.engine.run(work)
                for point, masks in zip(batch, work.masks, strict=True):
                    kept.extend(
                        (mask, (float(point[0]), float(point[1]))) for mask in masks if isinstance(mask, EncodedMask)
                    )
                EVERYTHING_POINTS.inc(len(batch))
                yield EverythingProgress(start + len(batch), len(points), len(kept))
            kept = await asyncio.to_thread(final_masks, kept, query)
            for start in range(0, len(kept), MASKS_PER_MESSAGE):
                encoded = await asyncio.to_thread(reencoded_masks, kept[start : start + MASKS_PER_MESSAGE], query)
                for chunk in message_chunks(encoded):
                    yield chunk
            yield EverythingDone(len(kept), len(points))


def check_parameters(query: EverythingQuery) -> None:
    """INVALID_ARGUMENT naming the first parameter out of range."""
    if query.points is None and not 1 <= query.points_per_side <= MAX_POINTS_PER_SIDE:
        raise InvalidArgument(f"points_per_side must be 1 to {MAX_POINTS_PER_SIDE}", "points_per_side")
    if query.points is not None and len(query.points) > MAX_POINTS:
        raise InvalidArgument(f"{len(query.points)} points, over the limit of {MAX_POINTS}", "points")
    if query.points_per_batch < 1:
        raise InvalidArgument("points_per_batch must be at least 1", "points_per_batch")
    for name in ("pred_iou_thresh", "stability_score_thresh", "stability_score_offset", "box_nms_thresh"):
        if not math.isfinite(getattr(query, name)):
            raise InvalidArgument(f"{name} must be a finite number", name)
    if not 0.0 <= query.box_nms_thresh <= 1.0:
        raise InvalidArgument("box_nms_thresh must be within [0, 1]", "box_nms_thresh")
    if query.stability_score_offset < 0:
        raise InvalidArgument("stability_score_offset must not be negative", "stability_score_offset")


def query_points(query: EverythingQuery, size: tuple[int, int]) -> np.ndarray:
    """(N, 2) x, y in original-image pixels: the explicit points (each inside the image) or AMG's grid scaled to it."""
    rows, columns = size
    if query.points is not None:
        if len(query.points) == 0:
            raise InvalidArgument("points, when given, must not be empty", "points")
        outside = np.flatnonzero(
            (query.points[:, 0] < 0)
            | (query.points[:, 0] > columns)
            | (query.points[:, 1] < 0)
            | (query.points[:, 1] > rows)
        )
        if outside.size:
            raise InvalidArgument(
                f"point {int(outside[0])} is outside the {columns}x{rows} image", f"points[{int(outside[0])}]"
            )
        return np.asarray(query.points, dtype=np.float64)
    return build_point_grid(query.points_per_side) * np.array([[columns, rows]])


def inclusive_box(mask: EncodedMask) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 with both ends inside the mask, as `batched_mask_to_box` (zeros for an empty mask)."""
    x, y, width, height = mask.bbox
    if width == 0:
        return (0, 0, 0, 0)
    return (x, y, x + width - 1, y + height - 1)


def box_nms(kept: Sequence[tuple[EncodedMask, tuple[float, float]]], threshold: float) -> list[int]:
    """Indices of the masks box NMS keeps, highest predicted IoU first (torchvision's batched_nms, as AMG)."""
    if not kept:
        return []
    boxes = torch.tensor([inclusive_box(mask) for mask, _ in kept], dtype=torch.float32)
    scores = torch.tensor([mask.score for mask, _ in kept], dtype=torch.float32)
    keep = batched_nms(boxes, scores, torch.zeros(len(kept), dtype=torch.int64), iou_threshold=threshold)
    return [int(index) for index in keep]


def remove_small_parts(
    kept: Sequence[tuple[EncodedMask, tuple[float, float]]], min_area: int, nms_threshold: float
) -> list[tuple[EncodedMask, tuple[float, float]]]:
    """AMG's postprocess_small_regions: holes then islands under `min_area` removed from each mask, then box NMS that
    prefers unchanged masks; a changed mask that survives gets its new pixels, area and box."""
    changed_masks: dict[int, np.ndarray] = {}
    for index, (mask, _) in enumerate(kept):
        assert mask.rle_counts is not None
        pixels = decode_rle(mask.rle_counts, mask.size)
        pixels, holes_changed = remove_small_regions(pixels, min_area, mode="holes")
        pixels, islands_changed = remove_small_regions(pixels, min_area, mode="islands")
        if holes_changed or islands_changed:
            changed_masks[index] = pixels
    updated = []
    for index, (mask, point) in enumerate(kept):
        if index in changed_masks:
            pixels = changed_masks[index]
            summary = summarize_mask(np.where(pixels, np.float32(1), np.float32(-1)))
            mask = replace(mask, area=summary.area, bbox=summary.bbox, rle_counts=encode_rle(pixels))
        updated.append((mask, point))
    boxes = torch.tensor([inclusive_box(mask) for mask, _ in updated], dtype=torch.float32)
    scores = torch.tensor([0.0 if index in changed_masks else 1.0 for index in range(len(updated))])
    keep = batched_nms(boxes, scores, torch.zeros(len(updated), dtype=torch.int64), iou_threshold=nms_threshold)
    return [updated[int(index)] for index in keep]


def final_masks(
    kept: Sequence[tuple[EncodedMask, tuple[float, float]]], query: EverythingQuery
) -> list[tuple[EncodedMask, tuple[float, float]]]:
    """Box NMS over the masks the thresholds kept, then (min_mask_region_area > 0) small regions removed and NMS
    again at max(box_nms_thresh, AMG's crop_nms_thresh 0.7), as AMG."""
    survivors = [kept[index] for index in box_nms(kept, query.box_nms_thresh)]
    if query.min_mask_region_area > 0 and survivors:
        survivors = remove_small_parts(
            survivors, query.min_mask_region_area, max(query.box_nms_thresh, AMG_CROP_NMS_THRESH)
        )
    return survivors


def reencoded_masks(
    kept: Sequence[tuple[EncodedMask, tuple[float, float]]], query: EverythingQuery
) -> list[EverythingMask]:
    """Masks (kept as RLE while the batches ran) in the requested encoding."""
    return [EverythingMask(reencoded(mask, query), point) for mask, point in kept]


def reencoded(mask: EncodedMask, query: EverythingQuery) -> EncodedMask:
    if query.encoding is MaskEncoding.RLE:
        return mask
    assert mask.rle_counts is not None
    pixels = np.ascontiguousarray(decode_rle(mask.rle_counts, mask.size))
    summary = MaskSummary(pixels, mask.stability_score, mask.area, mask.bbox)  # the same pixels: nothing to recount
    return encode_mask(summary, mask.score, query.encoding, query.polygon_tolerance)


def message_chunks(masks: Sequence[EverythingMask]) -> list[tuple[EverythingMask, ...]]:
    """`masks` in groups of about MESSAGE_MASK_BYTES at most (one mask at least)."""
    chunks: list[tuple[EverythingMask, ...]] = []
    current: list[EverythingMask] = []
    size = 0
    for mask in masks:
        if current and size + mask.mask.wire_bytes > MESSAGE_MASK_BYTES:
            chunks.append(tuple(current))
            current, size = [], 0
        current.append(mask)
        size += mask.mask.wire_bytes
    if current:
        chunks.append(tuple(current))
    return chunks
