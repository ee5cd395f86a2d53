"""The thin gRPC edge of the decoder: a stream of requests in, answers out in order, statuses mapped once."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc

from service._proto.sam.v1 import sam_pb2, sam_pb2_grpc
from service.decoder.metrics import REQUEST_ERRORS, STREAMS_IN_FLIGHT
from service.decoder.segment import Segmenter, record_error
from service.decoder.session import StreamSession
from service.errors import ServiceError
from service.grpc_status import abort_with

log = logging.getLogger(__name__)


class DecoderServicer(sam_pb2_grpc.DecoderServicer):
    def __init__(self, segmenter: Segmenter) -> None:
        self.segmenter = segmenter

    async def Segment(  # noqa: N802 - the gRPC method name
        self, request_iterator: AsyncIterator[sam_pb2.SegmentRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[sam_pb2.SegmentResponse]:
        """Requests are answered one after another, which keeps the order and lets `previous` see the last answer.

        Streams run concurrently with each other; a cancelled stream's pending decode is dropped with it.
        """
        STREAMS_IN_FLIGHT.inc()
        session = StreamSession()
        try:
            async for request in request_iterator:
                try:
                    response = await self.segmenter.answer(request, session)
                except ServiceError as error:
                    record_error(error)
                    log.warning("Segment stream ends: %s", error)
                    await abort_with(context, error)
                    return
                except Exception:
                    REQUEST_ERRORS.labels(grpc.StatusCode.INTERNAL.name).inc()
                    log.exception("Segment failed")
                    await context.abort(grpc.StatusCode.INTERNAL, "internal error in the decoder (see its log)")
                    return
                yield response
        finally:
            STREAMS_IN_FLIGHT.dec()
