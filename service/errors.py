"""Domain errors: raised where a problem is found, mapped to gRPC status codes at the edge only."""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every foreseeable failure; `field` names the request field at fault, if any."""

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
    """A dependency (Triton, Redis) cannot be reached; retrying later may succeed."""


class CorruptEmbedding(ServiceError):
    """A stored embedding value is damaged or was written by something else."""
