"""The one place where domain errors become gRPC status codes."""

from __future__ import annotations

import grpc

from service.errors import CorruptEmbedding, InvalidArgument, NotFound, ResourceExhausted, ServiceError, Unavailable

_STATUS_OF_ERROR: dict[type[ServiceError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    NotFound: grpc.StatusCode.NOT_FOUND,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    # A damaged cache entry is the service's fault, not the caller's: report it as internal data loss.
    CorruptEmbedding: grpc.StatusCode.DATA_LOSS,
}


def status_code_of(error: ServiceError) -> grpc.StatusCode:
    for error_type in type(error).__mro__:
        if error_type in _STATUS_OF_ERROR:
            return _STATUS_OF_ERROR[error_type]  # type: ignore[index]
    return grpc.StatusCode.INTERNAL


async def abort_with(context: grpc.aio.ServicerContext, error: ServiceError) -> None:
    """End the RPC with the status and message of `error` (never returns)."""
    await context.abort(status_code_of(error), str(error))
