"""The gRPC face of Segment: a stream of requests in, answers out in order; a request's own fault (or its key's: a
damaged value) answered in-band, any other error ends the stream through the one status table. The logic is in
service.decoder.segment."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator

import grpc

from service._proto.sam.v1 import sam_pb2, sam_pb2_grpc
from service.decoder.everything import EverythingSegmenter
from service.decoder.metrics import EVERYTHING_CALLS, REQUEST_ERRORS, REQUESTS_SUPERSEDED, STREAMS_IN_FLIGHT
from service.decoder.pipeline import PipelinedRequests
from service.decoder.segment import Segmenter, is_in_band
from service.decoder.session import StreamSession
from service.errors import ResourceExhausted, ServiceError
from service.logs import bind_log_context, log_context
from service.rpc.auth import current_caller
from service.rpc.decoder_convert import error_response, query_of_request, response_of_result, superseded_response
from service.rpc.everything_convert import everything_query_of_request, everything_response
from service.rpc.status import abort_with, domain_error_of, status_code_of

log = logging.getLogger(__name__)


class DecoderServicer(sam_pb2_grpc.DecoderServicer):
    def __init__(self, segmenter: Segmenter, everything: EverythingSegmenter) -> None:
        self.segmenter = segmenter
        self.everything = everything

    async def Segment(  # noqa: N802 - the gRPC method name
        self, request_iterator: AsyncIterator[sam_pb2.SegmentRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[sam_pb2.SegmentResponse]:
        """Requests are answered one after another, which keeps the order and lets `previous` see the last answer;
        they are read ahead, so that one with `supersede_queued` answers those still queued at once, undecoded.

        Streams run concurrently with each other; a cancelled stream's pending decode is dropped with it.
        """
        STREAMS_IN_FLIGHT.inc()
        bind_log_context(stream=secrets.token_hex(4))
        session = StreamSession()
        tenant = current_caller().tenant
        try:
            async for request, superseded in PipelinedRequests(request_iterator, _supersedes):
                if superseded:
                    REQUESTS_SUPERSEDED.inc()
                    yield superseded_response(request)
                    continue
                try:
                    with log_context(request_id=request.request_id):
                        response = await self._answer(request, session, tenant)
                except ServiceError as error:
                    await abort_with(context, error)
                    return
                yield response
        finally:
            STREAMS_IN_FLIGHT.dec()

    async def _answer(
        self, request: sam_pb2.SegmentRequest, session: StreamSession, tenant: str | None
    ) -> sam_pb2.SegmentResponse:
        """The response to `request`, its own fault answered in-band; raises the error that ends the stream."""
        try:
            result = await self.segmenter.answer(query_of_request(request, session), tenant)
        except Exception as raised:
            error = domain_error_of(raised)
            REQUEST_ERRORS.labels(status_code_of(error).name).inc()
            if not is_in_band(error):
                log.warning("Segment stream ends: %s", error)
                if error is raised:
                    raise
                raise error from raised
            return error_response(request, error)
        session.remember(result.image_key, result.best_logits)
        return response_of_result(result)

    async def SegmentEverything(  # noqa: N802 - the gRPC method name
        self, request: sam_pb2.SegmentEverythingRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[sam_pb2.SegmentEverythingResponse]:
        """Progress, masks and the end as the dataplane yields them; any error ends the call with its status (a
        cancelled call's queued decodes are dropped by the engine)."""
        bind_log_context(stream=secrets.token_hex(4), request_id=request.request_id)
        outcome = "failed"
        try:
            query = everything_query_of_request(request)
            async for event in self.everything.run(query, current_caller().tenant):
                yield everything_response(request.request_id, event)
            outcome = "done"
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception as raised:
            error = domain_error_of(raised)
            outcome = "refused" if isinstance(error, ResourceExhausted) else "failed"
            REQUEST_ERRORS.labels(status_code_of(error).name).inc()
            log.warning("SegmentEverything ends: %s", error)
            await abort_with(context, error)
        finally:
            EVERYTHING_CALLS.labels(outcome).inc()


def _supersedes(request: sam_pb2.SegmentRequest) -> bool:
    return request.supersede_queued


def add_decoder_servicer(server: grpc.aio.Server, segmenter: Segmenter, everything: EverythingSegmenter) -> None:
    sam_pb2_grpc.add_DecoderServicer_to_server(DecoderServicer(segmenter, everything), server)
