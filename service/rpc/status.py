"""The one table from domain errors to gRPC status codes, and the one way an RPC ends on an error."""

from __future__ import annotations

import logging

import grpc

from service.errors import (
    CorruptEmbedding,
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    ServiceError,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger(__name__)

# Longest status message sent: messages are for people, and a long one overflows some clients' trailers (which
# then read RESOURCE_EXHAUSTED instead of the real status). Input quoted in messages is cut far shorter (echo()).
MAX_MESSAGE_CHARACTERS = 1000

STATUS_OF_ERROR: dict[type[ServiceError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    NotFound: grpc.StatusCode.NOT_FOUND,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    CorruptEmbedding: grpc.StatusCode.DATA_LOSS,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    Internal: grpc.StatusCode.INTERNAL,
    # A bare ServiceError is a failure the service can name but the caller cannot fix.
    ServiceError: grpc.StatusCode.INTERNAL,
}


def status_code_of(error: ServiceError) -> grpc.StatusCode:
    """The status of the nearest class in `error`'s ancestry that the table names."""
    for error_type in type(error).__mro__:
        if error_type in STATUS_OF_ERROR:
            return STATUS_OF_ERROR[error_type]
    return grpc.StatusCode.INTERNAL


def domain_error_of(error: Exception) -> ServiceError:
    """A domain error as it is; anything else is a bug, logged whole and answered as Internal."""
    if isinstance(error, ServiceError):
        return error
    log.error("unexpected error", exc_info=error)
    return Internal("internal error (see the service's log)")


def message_of(error: ServiceError) -> str:
    """The message a caller reads for `error`, at most MAX_MESSAGE_CHARACTERS long."""
    message = str(error)
    if len(message) <= MAX_MESSAGE_CHARACTERS:
        return message
    return message[: MAX_MESSAGE_CHARACTERS - 1] + "…"


async def abort_with(context: grpc.aio.ServicerContext, error: Exception) -> None:
    """End the RPC with the status and message of `error` (never returns)."""
    domain_error = domain_error_of(error)
    await context.abort(status_code_of(domain_error), message_of(domain_error))
