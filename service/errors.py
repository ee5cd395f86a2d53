"""Domain errors: raised where a problem is found, mapped to gRPC status codes in one table at the edge only
(service.rpc.status). Every foreseeable failure is one of these; anything else is a bug, answered INTERNAL."""

from __future__ import annotations

from typing import Final

# Longest stretch of caller input an error message repeats: a message never carries a request's payload.
MAX_ECHOED_CHARACTERS: Final = 200


def echo(value: object) -> str:
    """`value` as repr(), cut to MAX_ECHOED_CHARACTERS, for quoting caller input in an error message."""
    text = repr(value)
    if len(text) <= MAX_ECHOED_CHARACTERS:
        return text
    return f"{text[: MAX_ECHOED_CHARACTERS - 1]}… ({len(text)} characters)"


def cut(text: str) -> str:
    """`text` as it is when it fits in MAX_ECHOED_CHARACTERS, else its start and "…": for a field that echoes
    caller input verbatim (an answer's `image_key`), where the input is usually short and exact."""
    if len(text) <= MAX_ECHOED_CHARACTERS:
        return text
    return text[: MAX_ECHOED_CHARACTERS - 1] + "…"


class ServiceError(Exception):
    """Base of every foreseeable failure; `field` names the request field at fault, if any.

    Raised as itself it means the service failed in a way it can name but a caller cannot fix (INTERNAL).
    """

    def __init__(self, reason: str, field: str = "") -> None:
        self.reason = reason
        self.field = field
        super().__init__(f"{field}: {reason}" if field else reason)


class InvalidArgument(ServiceError):
    """The request is malformed: a bad image, prompt or parameter."""


class ResourceExhausted(ServiceError):
    """The request is over a configured size limit."""


class NotFound(ServiceError):
    """The thing named by the request (an image key) does not exist or has expired."""


class Unavailable(ServiceError):
    """A dependency (Triton, Redis) cannot be reached or did not answer in time; retrying later may succeed."""


class CorruptEmbedding(ServiceError):
    """A stored embedding value is damaged or was written by something else (DATA_LOSS)."""


class DeadlineExceeded(ServiceError):
    """The caller's deadline passed before the answer was ready."""


class Unauthenticated(ServiceError):
    """The call carries no credentials, or unknown ones."""


class Internal(ServiceError):
    """The service or a dependency failed in a way no retry by the caller fixes (a bug, a broken model)."""
