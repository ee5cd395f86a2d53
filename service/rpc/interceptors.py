"""Server interceptors: RED metrics per RPC, labelled with the final status code (go-grpc-prometheus names), and
INVALID_ARGUMENT for request bytes that are no message of the method's type (gRPC would answer UNKNOWN)."""

from __future__ import annotations

import asyncio
import collections
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.descriptor_pool import DescriptorPool

from service.errors import InvalidArgument
from service.metrics import (
    RPC_HANDLED,
    RPC_MESSAGES_RECEIVED,
    RPC_MESSAGES_SENT,
    RPC_SECONDS,
    RPC_STARTED,
    RPC_STREAM_RESPONSE_SECONDS,
)
from service.rpc.status import abort_with


def _status_name(context: grpc.aio.ServicerContext, fallback: grpc.StatusCode) -> str:
    code = context.code() if hasattr(context, "code") else None
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        return next((status.name for status in grpc.StatusCode if status.value[0] == code), fallback.name)
    return fallback.name


class RpcMetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts and times every unary and bidirectional-stream RPC, labelled with its final status code."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        service_name, _, method_name = handler_call_details.method.lstrip("/").rpartition("/")
        if handler.unary_unary is not None:
            labels = (service_name, method_name, "unary")
            return grpc.unary_unary_rpc_method_handler(
                _timed_unary(handler.unary_unary, labels),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            labels = (service_name, method_name, "bidi_stream")
            return grpc.stream_stream_rpc_method_handler(
                _timed_stream(handler.stream_stream, labels),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def _timed_unary(behavior: Callable[..., Awaitable[Any]], labels: tuple[str, str, str]) -> Callable[..., Any]:
    async def timed(request: Any, context: grpc.aio.ServicerContext) -> Any:
        RPC_STARTED.labels(*labels).inc()
        started = time.perf_counter()
        fallback = grpc.StatusCode.UNKNOWN
        try:
            response = await behavior(request, context)
            fallback = grpc.StatusCode.OK
            return response
        except BaseException as error:
            fallback = _fallback_code(error)
            raise
        finally:
            RPC_HANDLED.labels(*labels, _status_name(context, fallback)).inc()
            RPC_SECONDS.labels(*labels).observe(time.perf_counter() - started)

    return timed


def _timed_stream(behavior: Callable[..., AsyncIterator[Any]], labels: tuple[str, str, str]) -> Callable[..., Any]:
    async def timed(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        RPC_STARTED.labels(*labels).inc()
        started = time.perf_counter()
        fallback = grpc.StatusCode.UNKNOWN
        # Arrival times of the requests not answered yet, oldest first: a stream's answers come one per request,
        # in order, so each answer's latency is measured from its own request, not from the stream's start.
        arrivals: collections.deque[float] = collections.deque()

        async def counted(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
            async for request in requests:
                RPC_MESSAGES_RECEIVED.labels(*labels).inc()
                arrivals.append(time.perf_counter())
                yield request

        try:
            async for response in behavior(counted(requests), context):
                RPC_MESSAGES_SENT.labels(*labels).inc()
                if arrivals:
                    RPC_STREAM_RESPONSE_SECONDS.labels(*labels).observe(time.perf_counter() - arrivals.popleft())
                yield response
            fallback = grpc.StatusCode.OK
        except BaseException as error:
            fallback = _fallback_code(error)
            raise
        finally:
            RPC_HANDLED.labels(*labels, _status_name(context, fallback)).inc()
            RPC_SECONDS.labels(*labels).observe(time.perf_counter() - started)

    return timed


def _fallback_code(error: BaseException) -> grpc.StatusCode:
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN


def create_rpc_series(service_full_name: str, pool: DescriptorPool) -> None:
    """Create every method's RPC series of a service at 0, so dashboards read 0 before the first call."""
    for method in pool.FindServiceByName(service_full_name).methods:
        streaming = method.client_streaming or method.server_streaming
        labels = (service_full_name, method.name, "bidi_stream" if streaming else "unary")
        RPC_STARTED.labels(*labels)
        RPC_HANDLED.labels(*labels, grpc.StatusCode.OK.name)
        RPC_SECONDS.labels(*labels)
        if streaming:
            RPC_MESSAGES_RECEIVED.labels(*labels)
            RPC_MESSAGES_SENT.labels(*labels)
            RPC_STREAM_RESPONSE_SECONDS.labels(*labels)


class _Unreadable:
    """What a request's bytes become when they do not parse as the method's request message."""


_UNREADABLE = _Unreadable()


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def read(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except Exception:  # protobuf's DecodeError and whatever a parser of caller bytes raises
            return _UNREADABLE

    return read


def _unreadable_error(method: str) -> InvalidArgument:
    return InvalidArgument(f"the bytes sent are not a request message of {method}", "request")


class ReadableRequestsInterceptor(grpc.aio.ServerInterceptor):
    """INVALID_ARGUMENT for request bytes that do not parse as the method's request message (a hand-made or damaged
    client), where gRPC itself would end the call UNKNOWN. On a request stream, the servicer sees the stream end
    there (it answers the requests before), then the call ends INVALID_ARGUMENT."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        error = _unreadable_error(handler_call_details.method)
        deserializer = _tolerant(handler.request_deserializer)
        if handler.unary_unary is not None:
            inner_unary = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                if request is _UNREADABLE:
                    await abort_with(context, error)
                return await inner_unary(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary, request_deserializer=deserializer, response_serializer=handler.response_serializer
            )
        if handler.unary_stream is not None:
            inner_unary_stream = handler.unary_stream
            # In the behavior's own style: health's Watch writes with context.write() instead of yielding.
            if inspect.isasyncgenfunction(inner_unary_stream):

                async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                    if request is _UNREADABLE:
                        await abort_with(context, error)
                    async for response in inner_unary_stream(request, context):
                        yield response

            else:

                async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:  # type: ignore[misc]
                    if request is _UNREADABLE:
                        await abort_with(context, error)
                    return await inner_unary_stream(request, context)

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, request_deserializer=deserializer, response_serializer=handler.response_serializer
            )
        if handler.stream_stream is not None:
            inner_stream = handler.stream_stream

            async def stream_stream(
                requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
            ) -> AsyncIterator[Any]:
                unreadable = False

                async def readable() -> AsyncIterator[Any]:
                    nonlocal unreadable
                    async for request in requests:
                        if request is _UNREADABLE:
                            unreadable = True
                            return
                        yield request

                async for response in inner_stream(readable(), context):
                    yield response
                if unreadable:
                    await abort_with(context, error)

            return grpc.stream_stream_rpc_method_handler(
                stream_stream, request_deserializer=deserializer, response_serializer=handler.response_serializer
            )
        return handler
