"""The Segment logic as plain code: one request in, one answer out, knowing nothing of gRPC.

Request-content failures (InvalidArgument, NotFound, ResourceExhausted) become in-band errors in the
answer; anything else (Unavailable, CorruptEmbedding, bugs) propagates, and the servicer ends the stream.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from concurrent.futures import Executor

from service._proto.sam.v1 import sam_pb2
from service.decoder.convert import SegmentQuery, error_message, object_masks_message, query_of_request
from service.decoder.embedding_source import EmbeddingSource
from service.decoder.metrics import BATCH_SIZE, DECODE_SECONDS, PROMPTS, REQUEST_ERRORS
from service.decoder.session import StreamSession
from service.embedding_codec import StoredEmbedding
from service.errors import InvalidArgument, NotFound, ResourceExhausted, ServiceError
from service.grpc_status import status_code_of
from service.runtime.prompt_decoder import ObjectPrediction, PromptDecoderRole
from service.runtime.prompts import Prompt, PromptLimits, validate_prompts

# The failures caused by what a request says; answered in-band so the stream (an interactive session) lives on.
REQUEST_ERRORS_IN_BAND: tuple[type[ServiceError], ...] = (InvalidArgument, NotFound, ResourceExhausted)


def record_error(error: ServiceError) -> None:
    REQUEST_ERRORS.labels(status_code_of(error).name).inc()


class Segmenter:
    """Answers SegmentRequests: embedding lookup, validation, decoding on `executor`, encoding of the masks."""

    def __init__(
        self, source: EmbeddingSource, decoder: PromptDecoderRole, limits: PromptLimits, executor: Executor
    ) -> None:
        self.source = source
        self.decoder = decoder
        self.limits = limits
        self.executor = executor

    async def answer(self, request: sam_pb2.SegmentRequest, session: StreamSession) -> sam_pb2.SegmentResponse:
        """The answer to `request`, with `error` set when the request itself is at fault."""
        try:
            query = query_of_request(request)
            stored = await self.source.get(query.image_key)
            prompts = resolve_prompts(query, session)
            validate_prompts(prompts, stored.info, self.limits)
            loop = asyncio.get_running_loop()
            predictions, objects = await loop.run_in_executor(
                self.executor, decode_and_encode, self.decoder, stored, prompts, query
            )
        except REQUEST_ERRORS_IN_BAND as error:
            record_error(error)
            return sam_pb2.SegmentResponse(
                request_id=request.request_id, image_key=request.image_key, error=error_message(error)
            )
        session.remember(query.image_key, predictions)
        return sam_pb2.SegmentResponse(request_id=query.request_id, image_key=query.image_key, objects=objects)


def resolve_prompts(query: SegmentQuery, session: StreamSession) -> list[Prompt]:
    """The query's prompts with the session's previous best masks filled in where asked for."""
    prompts = list(query.prompts)
    for index in query.reuse_previous:
        mask_input = session.previous_mask(query.image_key, index, f"prompts[{index}].mask_input.previous")
        prompts[index] = dataclasses.replace(prompts[index], mask_input=mask_input)
    return prompts


def decode_and_encode(
    decoder: PromptDecoderRole, stored: StoredEmbedding, prompts: list[Prompt], query: SegmentQuery
) -> tuple[list[ObjectPrediction], list[sam_pb2.ObjectMasks]]:
    """The heavy part, run in a worker thread: the mask decoder, postprocessing and mask encoding."""
    started = time.perf_counter()
    predictions = decoder.decode(stored.embedding, stored.info, prompts, query.multimask_output)
    objects = [object_masks_message(prediction, query.encoding, query.return_logits) for prediction in predictions]
    DECODE_SECONDS.observe(time.perf_counter() - started)
    BATCH_SIZE.observe(len(prompts))
    PROMPTS.inc(len(prompts))
    return predictions, objects
