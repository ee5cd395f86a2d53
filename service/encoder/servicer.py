"""The gRPC face of Embed: messages in and out, domain errors to status codes; the logic is in embed.py."""

from __future__ import annotations

import logging
import time

import grpc

from service._proto.sam.v1 import sam_pb2, sam_pb2_grpc
from service.encoder.embed import DeadlineExceeded, Embedder
from service.errors import ServiceError
from service.grpc_status import abort_with

log = logging.getLogger(__name__)


class EncoderServicer(sam_pb2_grpc.EncoderServicer):
    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    async def Embed(  # noqa: N802 - the generated base class's name
        self, request: sam_pb2.EmbedRequest, context: grpc.aio.ServicerContext
    ) -> sam_pb2.EmbedResponse:
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        try:
            result = await self.embedder.embed(request.image, request.model, deadline)
        except DeadlineExceeded as error:
            # service.grpc_status knows no deadline error; the caller's deadline is ours to report.
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(error))
        except ServiceError as error:
            await abort_with(context, error)
        except Exception:
            # A bug, not a foreseeable failure: log it whole, answer INTERNAL rather than UNKNOWN.
            log.exception("Embed failed unexpectedly")
            await context.abort(grpc.StatusCode.INTERNAL, "internal error in the encoder; see its log")
        rows, columns = result.original_size
        return sam_pb2.EmbedResponse(
            image_key=result.image_key,
            cached=result.cached,
            original_size=sam_pb2.ImageSize(height=rows, width=columns),
            model=result.model_id,
        )
