"""The asyncio client (grpc.aio): the same API as SamClient with awaitables."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from service._proto.sam.v1 import sam_pb2, sam_pb2_grpc
from service.client.messages import (
    DEFAULT_EMBED_TIMEOUT_SECONDS,
    DEFAULT_REOPEN_ATTEMPTS,
    CachedEmbedding,
    EmbeddedImage,
    ImageRef,
    SessionMirror,
    cached_embedding_of,
    call_metadata,
    checked,
    embedded_image_of,
    everything_masks_of,
    make_everything_request,
    make_request,
    reopen_delay_seconds,
    should_reopen,
    wants_reembedding,
)
from service.rpc.channel import client_channel_options


class AsyncSamClient:
    """The asyncio client; the same API as SamClient with awaitables."""

    def __init__(
        self,
        encoder_target: str | None = None,
        decoder_target: str | None = None,
        model: str = "",
        *,
        token: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        """`token`: the bearer token every call sends (None: SAMSVC_AUTH_TOKEN, if set); `credentials`: TLS
        (service.rpc.tls.channel_credentials), else plaintext."""
        self.model = model
        self.metadata = call_metadata(token)
        self._encoder_channel = _channel(encoder_target, credentials) if encoder_target else None
        self._decoder_channel = _channel(decoder_target, credentials) if decoder_target else None
        self.reembeddings = 0

    async def embed(
        self, image_bytes: bytes, timeout_seconds: float = DEFAULT_EMBED_TIMEOUT_SECONDS, bulk: bool = False
    ) -> EmbeddedImage:
        """Embed an image (Encoder/Embed); `bulk` for pre-embedding, which Triton serves after interactive work."""
        if self._encoder_channel is None:
            raise ValueError("this client has no encoder target")
        stub = sam_pb2_grpc.EncoderStub(self._encoder_channel)
        priority = sam_pb2.EMBED_PRIORITY_BULK if bulk else sam_pb2.EMBED_PRIORITY_INTERACTIVE
        response = await stub.Embed(
            sam_pb2.EmbedRequest(image=image_bytes, model=self.model, priority=priority),
            timeout=timeout_seconds,
            metadata=self.metadata,
        )
        return embedded_image_of(image_bytes, response)

    async def segment_everything(
        self,
        image: ImageRef,
        *,
        timeout_seconds: float | None = None,
        on_progress: Callable[[sam_pb2.EverythingProgress], None] | None = None,
        **parameters: Any,
    ) -> list[sam_pb2.EverythingMask]:
        """Every mask of `image` (SamAutomaticMaskGenerator's; `parameters` as make_everything_request), in AMG's
        order; `on_progress` sees each progress message. Errors raise grpc.aio.AioRpcError."""
        if self._decoder_channel is None:
            raise ValueError("this client has no decoder target")
        call = sam_pb2_grpc.DecoderStub(self._decoder_channel).SegmentEverything(
            make_everything_request(image, **parameters), timeout=timeout_seconds, metadata=self.metadata
        )
        responses = []
        async for response in call:
            if response.HasField("progress") and on_progress is not None:
                on_progress(response.progress)
            responses.append(response)
        return everything_masks_of(responses)

    async def get_embedding(
        self, image_key: str, timeout_seconds: float = DEFAULT_EMBED_TIMEOUT_SECONDS
    ) -> CachedEmbedding:
        """The stored tensors and sizes of a cached embedding (Encoder/GetEmbedding), for running the mask decoder
        on this side; grpc.RpcError NOT_FOUND when the key is unknown, expired or another tenant's."""
        if self._encoder_channel is None:
            raise ValueError("this client has no encoder target")
        stub = sam_pb2_grpc.EncoderStub(self._encoder_channel)
        response = await stub.GetEmbedding(
            sam_pb2.GetEmbeddingRequest(image_key=image_key), timeout=timeout_seconds, metadata=self.metadata
        )
        return cached_embedding_of(response)

    def open_stream(
        self, timeout_seconds: float | None = None, reopen_attempts: int = DEFAULT_REOPEN_ATTEMPTS
    ) -> AsyncSegmentStream:
        """A Segment stream; `timeout_seconds` bounds it (re-opened streams included)."""
        if self._decoder_channel is None:
            raise ValueError("this client has no decoder target")
        return AsyncSegmentStream(
            self, sam_pb2_grpc.DecoderStub(self._decoder_channel), timeout_seconds, reopen_attempts
        )

    async def close(self) -> None:
        for channel in (self._encoder_channel, self._decoder_channel):
            if channel is not None:
                await channel.close()

    async def __aenter__(self) -> AsyncSamClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class AsyncSegmentStream:
    """One asyncio Segment stream: each `segment` call sends one request and awaits its answer; opened again on
    UNAVAILABLE with the session rebuilt, as SegmentStream."""

    def __init__(
        self,
        client: AsyncSamClient,
        stub: sam_pb2_grpc.DecoderStub,
        timeout_seconds: float | None,
        reopen_attempts: int = DEFAULT_REOPEN_ATTEMPTS,
    ) -> None:
        self._client = client
        self._stub = stub
        self._deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
        self.reopen_attempts = reopen_attempts
        self.reopens = 0  # streams opened again after UNAVAILABLE
        self.session = SessionMirror()
        self.call: Any = self._open_call()

    def _open_call(self) -> Any:
        timeout = None if self._deadline is None else max(0.0, self._deadline - time.monotonic())
        return self._stub.Segment(timeout=timeout, metadata=self._client.metadata)

    async def exchange(self, request: sam_pb2.SegmentRequest) -> sam_pb2.SegmentResponse:
        """Send one request as is and return its answer; grpc.aio.AioRpcError when the stream ends."""
        try:
            await self.call.write(request)
        except asyncio.InvalidStateError:
            # The stream had already ended (its replica went away while it was idle): raise its status.
            raise await self._ended_error() from None
        response = await self.call.read()
        if response is grpc.aio.EOF:
            # A failed stream raises from read(); EOF means the server closed it cleanly, unasked.
            raise ConnectionError("the decoder closed the stream without answering")
        return response  # type: ignore[no-any-return]

    async def _ended_error(self) -> grpc.aio.AioRpcError:
        return grpc.aio.AioRpcError(
            await self.call.code(),
            await self.call.initial_metadata(),
            await self.call.trailing_metadata(),
            await self.call.details(),
        )

    async def segment(
        self, image: ImageRef, prompts: Sequence[sam_pb2.Prompt], *, raise_on_error: bool = True, **options: Any
    ) -> sam_pb2.SegmentResponse:
        """As SegmentStream.segment."""
        request, response = await self._send(make_request(image, prompts, **options))
        if wants_reembedding(image, response) and self._client._encoder_channel is not None:
            assert isinstance(image, EmbeddedImage)
            fresh = await self._client.embed(image.image_bytes)
            self._client.reembeddings += 1
            request.image_key = fresh.image_key
            request, response = await self._send(request)
        self.session.remember(request, response)
        return checked(response, raise_on_error)

    async def burst(
        self, image: ImageRef, prompt_lists: Sequence[Sequence[sam_pb2.Prompt]], **options: Any
    ) -> list[sam_pb2.SegmentResponse]:
        """Send one request per prompt list without waiting for answers, each superseding the ones still queued (a
        dragged point, a slider): the decoder decodes the first and the newest, and answers the rest `superseded`.
        The answers, in order; the last is always decoded. Not re-sent if the stream ends: raises its status."""
        requests = [make_request(image, prompts, supersede_queued=True, **options) for prompts in prompt_lists]
        for request in requests:
            await self.call.write(request)
        answers = []
        for request in requests:
            response = await self.call.read()
            if response is grpc.aio.EOF:
                raise ConnectionError("the decoder closed the stream without answering")
            if not response.superseded:
                self.session.remember(request, response)
            answers.append(response)
        return answers

    async def _send(self, request: sam_pb2.SegmentRequest) -> tuple[sam_pb2.SegmentRequest, sam_pb2.SegmentResponse]:
        """exchange(), opening the stream again on UNAVAILABLE; the request as last sent, and its answer."""
        for attempt in range(self.reopen_attempts + 1):
            try:
                return request, await self.exchange(request)
            except grpc.RpcError as error:
                if not should_reopen(error) or attempt == self.reopen_attempts:
                    raise
            await asyncio.sleep(reopen_delay_seconds(attempt))
            await self.close()
            self.call = self._open_call()
            self.reopens += 1
            request = self.session.rebuilt(request)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if not self.call.done():
            self.call.cancel()

    async def __aenter__(self) -> AsyncSegmentStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _channel(target: str, credentials: grpc.ChannelCredentials | None) -> grpc.aio.Channel:
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=client_channel_options())
    return grpc.aio.secure_channel(target, credentials, options=client_channel_options())
