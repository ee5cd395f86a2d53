"""One Segment request inside the engine: what it asks, the pieces it is cut into, and what is done of it.

A request is cut into pieces small enough that no piece holds a worker long: decode pieces (at most the engine's
batch of prompts) and mask pieces (upscaling, statistics and encoding of a few masks, at most `piece_pixels` mask
pixels, or one mask when a single mask is bigger). A decode piece carries its objects' mask work itself when that
fits in `piece_pixels`: an ordinary request is one piece.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from service.cache.codec import StoredEmbedding
from service.constants import STABILITY_SCORE_OFFSET
from service.decoder.mask_encoding import EncodedMask, encode_mask
from service.decoder.query import SegmentQuery
from service.errors import ResourceExhausted, ServiceError
from service.runtime.decoder_backend import DecodeItem, DecoderBackend
from service.runtime.families.spec import Arch
from service.runtime.mask_summary import summarize_mask
from service.runtime.postprocess import returned_low_res_logits, upscale_logits
from service.runtime.prompt_decoder import LowResPrediction

MaskIndex = tuple[int, int]  # (object, mask)


@dataclass(frozen=True)
class MaskFilter:
    """Which masks a request keeps, as SamAutomaticMaskGenerator filters them: predicted IoU above `min_score`
    (checked before upscaling: a dropped mask costs nothing more) and stability score at least `min_stability`
    (each test off at 0), the stability score taken at ±`stability_offset`."""

    min_score: float
    min_stability: float
    stability_offset: float

    def keeps_score(self, score: float) -> bool:
        return self.min_score <= 0.0 or score > self.min_score

    def keeps_stability(self, stability: float) -> bool:
        return self.min_stability <= 0.0 or stability >= self.min_stability


class _Dropped:
    """The marker of a mask a MaskFilter dropped."""

    def __repr__(self) -> str:
        return "DROPPED"


DROPPED = _Dropped()


@dataclass(eq=False)
class SegmentWork:
    """A request's state in the engine. Changed only under the engine's lock (by whichever worker runs a piece)."""

    query: SegmentQuery
    embedding_key: str
    stored: StoredEmbedding
    backend: DecoderBackend
    answer_limit_bytes: int
    keep: MaskFilter | None = None  # None: every mask is kept
    decode_batch: int = 0  # prompts per decode piece; 0: the engine's batch
    arrived: float = field(default_factory=time.perf_counter)
    attained_seconds: float = 0.0  # worker time spent on it so far: the least served request goes first
    outstanding: int = 0  # its pieces queued or running
    cancelled: bool = False
    failure: ServiceError | None = None
    answer_bytes: int = 0
    low_res: list[LowResPrediction | None] = field(default_factory=list)
    masks: list[list[EncodedMask | _Dropped | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.low_res = [None] * len(self.query.prompts)
        self.masks = [[None] * self.masks_per_object for _ in self.query.prompts]

    @property
    def masks_per_object(self) -> int:
        return 3 if self.query.multimask_output else 1

    @property
    def mask_pixels(self) -> int:
        rows, columns = self.stored.info.original_size
        return rows * columns

    @property
    def finished(self) -> bool:
        return self.outstanding == 0 and (self.failure is not None or self.cancelled or self._complete())

    def _complete(self) -> bool:
        return all(mask is not None for masks in self.masks for mask in masks)

    def returned_logits(self, index: int) -> np.ndarray:
        """(C, 256, 256) low-res logits of object `index` as the family's predictor returns them."""
        low_res = self.low_res[index]
        assert low_res is not None
        return returned_low_res_logits(torch.from_numpy(low_res.logits), self.arch).numpy()

    @property
    def arch(self) -> Arch:
        return self.backend.checkpoint.arch

    def decode_item(self, index: int) -> DecodeItem:
        return DecodeItem(self.embedding_key, self.stored.tensors, self.stored.info, self.query.prompts[index])


@dataclass(eq=False)
class DecodePiece:
    """Prompts of one request to run through the mask decoder (with others' prompts, in a micro-batch)."""

    work: SegmentWork
    objects: tuple[int, ...]
    queued_at: float = field(default_factory=time.perf_counter)
    kind = "decode"


@dataclass(eq=False)
class MaskPiece:
    """Masks of one request to upscale, summarise and encode."""

    work: SegmentWork
    masks: tuple[MaskIndex, ...]
    queued_at: float = field(default_factory=time.perf_counter)
    kind = "masks"


Piece = DecodePiece | MaskPiece


def decode_pieces(work: SegmentWork, max_batch: int) -> list[DecodePiece]:
    """The request's prompts in pieces of at most `max_batch` (or the request's own decode batch)."""
    max_batch = work.decode_batch or max_batch
    objects = range(len(work.query.prompts))
    return [DecodePiece(work, tuple(objects[start : start + max_batch])) for start in range(0, len(objects), max_batch)]


def mask_groups(work: SegmentWork, objects: Sequence[int], piece_pixels: int) -> list[tuple[MaskIndex, ...]]:
    """The masks of `objects` in groups of at most `piece_pixels` pixels (one mask each when a mask is bigger)."""
    per_group = max(1, piece_pixels // max(work.mask_pixels, 1))
    masks = [(index, mask) for index in objects for mask in range(work.masks_per_object)]
    return [tuple(masks[start : start + per_group]) for start in range(0, len(masks), per_group)]


def split_masks(masks: tuple[MaskIndex, ...], parts: int) -> list[tuple[MaskIndex, ...]]:
    """`masks` in at most `parts` runs of nearly equal length, the longer first."""
    parts = max(1, min(parts, len(masks)))
    size, longer = divmod(len(masks), parts)
    bounds = [0]
    for part in range(parts):
        bounds.append(bounds[-1] + size + (part < longer))
    return [masks[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]


def encode_masks(work: SegmentWork, masks: Sequence[MaskIndex]) -> list[tuple[MaskIndex, EncodedMask | _Dropped]]:
    """Upscale, summarise and encode `masks` (run on a worker, outside the engine's lock): one full-size float map at
    a time, dropped as soon as its mask is encoded; masks the request's filter drops are not encoded."""
    info = work.stored.info
    arch = work.arch
    keep = work.keep
    offset = keep.stability_offset if keep is not None else STABILITY_SCORE_OFFSET
    encoded: list[tuple[MaskIndex, EncodedMask | _Dropped]] = []
    for index, mask in masks:
        low_res = work.low_res[index]
        assert low_res is not None
        score = float(low_res.scores[mask])
        if keep is not None and not keep.keeps_score(score):
            encoded.append(((index, mask), DROPPED))
            continue
        logits = torch.from_numpy(low_res.logits[None, mask : mask + 1])
        full = upscale_logits(logits, info, arch)[0, 0].numpy()
        summary = summarize_mask(full, offset)
        del full
        if keep is not None and not keep.keeps_stability(summary.stability_score):
            encoded.append(((index, mask), DROPPED))
            continue
        value = encode_mask(summary, score, work.query.encoding, work.query.polygon_tolerance)
        encoded.append(((index, mask), value))
    return encoded


def record_masks(work: SegmentWork, encoded: Sequence[tuple[MaskIndex, EncodedMask | _Dropped]]) -> None:
    """Keep encoded masks (under the engine's lock); the answer-size bound fails the request once it is passed."""
    for (index, mask), value in encoded:
        work.masks[index][mask] = value
        if isinstance(value, EncodedMask):
            work.answer_bytes += value.wire_bytes
    if work.failure is None and work.answer_bytes > work.answer_limit_bytes:
        work.failure = ResourceExhausted(
            f"the answer passed {work.answer_limit_bytes} bytes (the message size limit) after "
            f"{sum(mask is not None for masks in work.masks for mask in masks)} of "
            f"{len(work.masks) * work.masks_per_object} masks of {info_text(work)}; ask for fewer objects, "
            "single-mask output, or MASK_FORMAT_NONE / a smaller image",
            "prompts",
        )


def info_text(work: SegmentWork) -> str:
    rows, columns = work.stored.info.original_size
    return f"{columns}x{rows} pixels"
