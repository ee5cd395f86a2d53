"""The Segment logic as plain code: a query in, a result out (or a domain error naming its field).

Knows nothing of gRPC: service.rpc.decoder_servicer converts messages and decides, with `is_in_band`, which
errors are answered in the stream and which end it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass

from service.cache.codec import StoredEmbedding
from service.cache.keys import parse_image_key
from service.decoder.embedding_source import EmbeddingSource
from service.decoder.mask_encoding import ObjectResult, encode_object
from service.decoder.metrics import BATCH_SIZE, DECODE_SECONDS, PROMPTS
from service.decoder.query import SegmentQuery
from service.errors import CorruptEmbedding, InvalidArgument, NotFound, ResourceExhausted, ServiceError
from service.logs import log_context
from service.runtime.prompt_decoder import ObjectPrediction, PromptDecoderRole
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
    """The answer to one query: one ObjectResult per prompt, in order, and the predictions behind them."""

    request_id: str
    image_key: str
    objects: tuple[ObjectResult, ...]
    predictions: tuple[ObjectPrediction, ...]


class Segmenter:
    """Answers queries with the decoder of the model each key names: embedding lookup, validation, decoding and
    mask encoding on `executor`."""

    def __init__(
        self,
        source: EmbeddingSource,
        decoders: Mapping[str, PromptDecoderRole],
        limits: PromptLimits,
        executor: Executor,
    ) -> None:
        self.source = source
        self.decoders = decoders
        self.limits = limits
        self.executor = executor

    async def answer(self, query: SegmentQuery, tenant: str | None = None) -> SegmentResult:
        """The result of `query` for a caller of `tenant` (its token's; None: shared keys only); domain errors name
        the field at fault."""
        image_key = parse_image_key(query.image_key)
        with log_context(image_key=image_key.short):
            stored = await self.source.get(image_key, tenant=tenant)
            validate_prompts(list(query.prompts), stored.info, self.limits)
            loop = asyncio.get_running_loop()
            predictions, objects = await loop.run_in_executor(
                self.executor, decode_and_encode, self.decoders[image_key.model_id], stored, query
            )
        return SegmentResult(query.request_id, query.image_key, objects, predictions)


def decode_and_encode(
    decoder: PromptDecoderRole, stored: StoredEmbedding, query: SegmentQuery
) -> tuple[tuple[ObjectPrediction, ...], tuple[ObjectResult, ...]]:
    """The heavy part, run in a worker thread: the mask decoder, postprocessing and mask encoding."""
    started = time.perf_counter()
    predictions = tuple(decoder.decode(stored.tensors, stored.info, list(query.prompts), query.multimask_output))
    objects = tuple(encode_object(prediction, query.encoding, query.return_logits) for prediction in predictions)
    DECODE_SECONDS.observe(time.perf_counter() - started)
    BATCH_SIZE.observe(len(query.prompts))
    PROMPTS.inc(len(query.prompts))
    return predictions, objects
