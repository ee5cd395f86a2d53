"""The token check at the edge: a server interceptor that lets health through, refuses every other call without a
known bearer token (UNAUTHENTICATED, through the one status table) and hands the servicers who is calling."""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Final

import grpc

from service.errors import Unauthenticated
from service.rpc.status import abort_with
from service.security.tokens import ANONYMOUS, BearerTokens, Caller

# Open to everyone: probes carry no token. Health says SERVING or not, nothing about anyone's data.
OPEN_METHOD_PREFIXES: Final = ("/grpc.health.v1.Health/",)
AUTHORIZATION: Final = "authorization"

_CALLER: contextvars.ContextVar[Caller] = contextvars.ContextVar("samsvc_caller", default=ANONYMOUS)


def current_caller() -> Caller:
    """Who is calling the RPC being served (ANONYMOUS when the server asks no token)."""
    return _CALLER.get()


def authorization_of(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    """The first `authorization` value of a call's metadata, if any."""
    for key, value in metadata or ():
        if key.lower() == AUTHORIZATION:
            return value.decode(errors="replace") if isinstance(value, bytes) else value
    return None


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """UNAUTHENTICATED for every call but health without a known bearer token; the caller of the others is what
    current_caller() returns while they are served."""

    def __init__(self, tokens: BearerTokens) -> None:
        self.tokens = tokens

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(OPEN_METHOD_PREFIXES):
            return handler
        try:
            caller = self.tokens.authenticate(authorization_of(handler_call_details.invocation_metadata))
        except Unauthenticated as error:
            return _refusing(handler, error)
        return _as_caller(handler, caller)


def _ignore_request(_: bytes) -> None:
    """The deserializer of a refused call: its payload is never parsed."""
    return None


def _refusing(handler: grpc.RpcMethodHandler, error: Unauthenticated) -> grpc.RpcMethodHandler:
    if handler.response_streaming:

        async def refuse_streaming(_: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await abort_with(context, error)
            return
            yield  # an async generator, as every streaming behavior here (the RPC metrics iterate it)

        return _handler_like(handler, refuse_streaming, request_deserializer=_ignore_request)

    async def refuse(_: Any, context: grpc.aio.ServicerContext) -> None:
        await abort_with(context, error)

    return _handler_like(handler, refuse, request_deserializer=_ignore_request)


def _as_caller(handler: grpc.RpcMethodHandler, caller: Caller) -> grpc.RpcMethodHandler:
    behavior = _behavior_of(handler)
    if handler.response_streaming and inspect.isasyncgenfunction(behavior):

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            _CALLER.set(caller)  # this RPC's own task: nothing else sees it
            async for response in behavior(request, context):
                yield response

        return _handler_like(handler, streaming)

    # A unary response, or a stream the behavior writes with context.write(): one coroutine either way.
    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        token = _CALLER.set(caller)
        try:
            return await behavior(request, context)
        finally:
            _CALLER.reset(token)

    return _handler_like(handler, unary)


def _behavior_of(handler: grpc.RpcMethodHandler) -> Callable[..., Any]:
    return handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream  # type: ignore[no-any-return]


def _handler_like(
    handler: grpc.RpcMethodHandler,
    behavior: Callable[..., Any],
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler:
    """A handler of the same kind and serializers as `handler`, running `behavior`."""
    make = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(handler.request_streaming, handler.response_streaming)]
    return make(
        behavior,
        request_deserializer=request_deserializer or handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
