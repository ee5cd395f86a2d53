"""The Segment logic as plain code: a query in, a result out (or a domain error naming its field).

Knows nothing of gRPC: service.rpc.decoder_servicer converts messages and decides, with `is_in_band`, which
errors are answered in the stream and which end it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from service.cache.keys import parse_image_key
from service.decoder.embedding_source import EmbeddingSource
from service.decoder.engine.limits import CostLimits, cost_refusal
from service.decoder.engine.scheduler import DecodeEngine
from service.decoder.engine.work import SegmentWork
from service.decoder.mask_encoding import EncodedMask, ObjectResult
from service.decoder.metrics import REQUESTS_REFUSED
from service.decoder.query import SegmentQuery
from service.errors import CorruptEmbedding, InvalidArgument, NotFound, ResourceExhausted, ServiceError
from service.logs import log_context
from service.runtime.decoder_backend import DecoderBackend
from service.runtime.prompts import PromptLimits, validate_prompts

# The failures of one request, caused by what it says or by the one key it names (a damaged value is that key's
# fault, not the service's: it is removed, and the client re-embeds); answered in-band so the stream (an interactive
# session, its `previous` masks) lives on.
_IN_BAND_ERRORS: tuple[type[ServiceError], ...] = (InvalidArgument, NotFound, ResourceExhausted, CorruptEmbedding)


def is_in_band(error: ServiceError) -> bool:
    """True when `error` is the request's own fault or its key's: answer it in that request's answer, keep the stream."""
    return isinstance(error, _IN_BAND_ERRORS)


@dataclass(frozen=True, eq=False)
class SegmentResult:
    """The answer to one query: one ObjectResult per prompt, in order, and each object's best mask's low-res logits
    (for the stream's `previous`)."""

    request_id: str
    image_key: str
    objects: tuple[ObjectResult, ...]
    best_logits: tuple[np.ndarray, ...]


class Segmenter:
    """Answers queries with the decoder backend of the model each key names: embedding lookup, validation and the
    cost bounds here, decoding and mask encoding in the process's decode engine."""

    def __init__(
        self,
        source: EmbeddingSource,
        backends: Mapping[str, DecoderBackend],
        limits: PromptLimits,
        costs: CostLimits,
        engine: DecodeEngine,
    ) -> None:
        self.source = source
        self.backends = backends
        self.limits = limits
        self.costs = costs
        self.engine = engine

    async def answer(self, query: SegmentQuery, tenant: str | None = None) -> SegmentResult:
        """The result of `query` for a caller of `tenant` (its token's; None: shared keys only); domain errors name
        the field at fault."""
        image_key = parse_image_key(query.image_key)
        with log_context(image_key=image_key.short):
            stored = await self.source.get(image_key, tenant=tenant)
            validate_prompts(list(query.prompts), stored.info, self.limits)
            masks_per_object = 3 if query.multimask_output else 1
            refusal = cost_refusal(
                len(query.prompts), masks_per_object, stored.info.original_size, query.encoding, query.return_logits,
                self.costs,
            )  # fmt: skip
            if refusal is not None:
                bound, error = refusal
                REQUESTS_REFUSED.labels(bound).inc()
                raise error
            work = SegmentWork(
                query, str(image_key), stored, self.backends[image_key.model_id], self.costs.max_answer_bytes
            )
            try:
                await self.engine.run(work)
            except ResourceExhausted:
                REQUESTS_REFUSED.labels("answer_bytes").inc()
                raise
        return result_of_work(work)


def result_of_work(work: SegmentWork) -> SegmentResult:
    """The encoded masks and logits of finished `work`, as the answer carries them."""
    objects = []
    best_logits = []
    for index, masks in enumerate(work.masks):
        logits = work.returned_logits(index)
        low_res = work.low_res[index]
        assert low_res is not None
        best_logits.append(np.ascontiguousarray(logits[int(np.argmax(low_res.scores))]))
        encoded = tuple(mask for mask in masks if isinstance(mask, EncodedMask))
        objects.append(ObjectResult(encoded, logits if work.query.return_logits else None))
    return SegmentResult(work.query.request_id, work.query.image_key, tuple(objects), tuple(best_logits))
