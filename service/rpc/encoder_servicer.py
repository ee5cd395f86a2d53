"""The gRPC face of Embed and GetEmbedding: messages in and out, errors through the one status table; the logic is in
service.encoder.embed and service.encoder.get_embedding."""

from __future__ import annotations

import time

import grpc

from service._proto.sam.v1 import sam_pb2, sam_pb2_grpc
from service.encoder.embed import Embedder
from service.encoder.get_embedding import EmbeddingReader
from service.errors import InvalidArgument
from service.rpc.auth import current_caller
from service.rpc.encoder_convert import embedding_response
from service.rpc.status import abort_with


class EncoderServicer(sam_pb2_grpc.EncoderServicer):
    def __init__(self, embedder: Embedder, reader: EmbeddingReader) -> None:
        self.embedder = embedder
        self.reader = reader

    async def Embed(  # noqa: N802 - the generated base class's name
        self, request: sam_pb2.EmbedRequest, context: grpc.aio.ServicerContext
    ) -> sam_pb2.EmbedResponse:
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        try:
            bulk = bulk_of(request.priority)
            result = await self.embedder.embed(
                request.image, request.model, deadline, current_caller().tenant, bulk=bulk
            )
        except Exception as error:
            await abort_with(context, error)
        rows, columns = result.original_size
        return sam_pb2.EmbedResponse(
            image_key=str(result.image_key),
            cached=result.cached,
            original_size=sam_pb2.ImageSize(height=rows, width=columns),
            model=result.model_id,
        )

    async def GetEmbedding(  # noqa: N802 - the generated base class's name
        self, request: sam_pb2.GetEmbeddingRequest, context: grpc.aio.ServicerContext
    ) -> sam_pb2.GetEmbeddingResponse:
        try:
            image_key, stored = await self.reader.read(request.image_key, current_caller().tenant)
        except Exception as error:
            await abort_with(context, error)
        return embedding_response(image_key, stored)


def bulk_of(priority: int) -> bool:
    """Whether an EmbedRequest's priority is bulk; InvalidArgument for a value this server does not know."""
    if priority not in (sam_pb2.EMBED_PRIORITY_INTERACTIVE, sam_pb2.EMBED_PRIORITY_BULK):
        raise InvalidArgument(f"is {priority}, not one of the EmbedPriority values", "priority")
    return priority == sam_pb2.EMBED_PRIORITY_BULK


def add_encoder_servicer(server: grpc.aio.Server, embedder: Embedder, reader: EmbeddingReader) -> None:
    sam_pb2_grpc.add_EncoderServicer_to_server(EncoderServicer(embedder, reader), server)
