"""The blocking client: for the CLI and scripts."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator, Sequence
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


class SamClient:
    """Blocking client. Targets are "host:port"; either may be None when only the other service is used."""

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

    def embed(
        self, image_bytes: bytes, timeout_seconds: float = DEFAULT_EMBED_TIMEOUT_SECONDS, bulk: bool = False
    ) -> EmbeddedImage:
        """Embed an image (Encoder/Embed); `bulk` for pre-embedding, which Triton serves after interactive work."""
        if self._encoder_channel is None:
            raise ValueError("this client has no encoder target")
        stub = sam_pb2_grpc.EncoderStub(self._encoder_channel)
        priority = sam_pb2.EMBED_PRIORITY_BULK if bulk else sam_pb2.EMBED_PRIORITY_INTERACTIVE
        response = stub.Embed(
            sam_pb2.EmbedRequest(image=image_bytes, model=self.model, priority=priority),
            timeout=timeout_seconds,
            metadata=self.metadata,
        )
        return embedded_image_of(image_bytes, response)

    def segment_everything(
        self,
        image: ImageRef,
        *,
        timeout_seconds: float | None = None,
        on_progress: Callable[[sam_pb2.EverythingProgress], None] | None = None,
        **parameters: Any,
    ) -> list[sam_pb2.EverythingMask]:
        """As AsyncSamClient.segment_everything; errors raise grpc.RpcError."""
        if self._decoder_channel is None:
            raise ValueError("this client has no decoder target")
        call = sam_pb2_grpc.DecoderStub(self._decoder_channel).SegmentEverything(
            make_everything_request(image, **parameters), timeout=timeout_seconds, metadata=self.metadata
        )
        responses = []
        for response in call:
            if response.HasField("progress") and on_progress is not None:
                on_progress(response.progress)
            responses.append(response)
        return everything_masks_of(responses)

    def get_embedding(self, image_key: str, timeout_seconds: float = DEFAULT_EMBED_TIMEOUT_SECONDS) -> CachedEmbedding:
        """The stored tensors and sizes of a cached embedding (Encoder/GetEmbedding), for running the mask decoder
        on this side; grpc.RpcError NOT_FOUND when the key is unknown, expired or another tenant's."""
        if self._encoder_channel is None:
            raise ValueError("this client has no encoder target")
        stub = sam_pb2_grpc.EncoderStub(self._encoder_channel)
        response = stub.GetEmbedding(
            sam_pb2.GetEmbeddingRequest(image_key=image_key), timeout=timeout_seconds, metadata=self.metadata
        )
        return cached_embedding_of(response)

    def open_stream(
        self, timeout_seconds: float | None = None, reopen_attempts: int = DEFAULT_REOPEN_ATTEMPTS
    ) -> SegmentStream:
        """A Segment stream; `timeout_seconds` bounds it (re-opened streams included)."""
        if self._decoder_channel is None:
            raise ValueError("this client has no decoder target")
        return SegmentStream(self, sam_pb2_grpc.DecoderStub(self._decoder_channel), timeout_seconds, reopen_attempts)

    def close(self) -> None:
        for channel in (self._encoder_channel, self._decoder_channel):
            if channel is not None:
                channel.close()

    def __enter__(self) -> SamClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_END_OF_STREAM = None


class SegmentStream:
    """One blocking Segment stream: each `segment` call sends one request and waits for its answer.

    A stream lives on one decoder replica, and so does its session (the `previous` masks). When the stream ends
    UNAVAILABLE (that replica stopped, closed an old connection, or lost Redis), `segment` opens a new one, on
    whichever replica the channel picks, and sends the request again (a request only reads, so sending it twice
    is safe), with each `previous` prior replaced by the logits this stream last received (see SessionMirror:
    ask `return_logits=True` for a session that survives its replica).
    """

    def __init__(
        self,
        client: SamClient,
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
        self._open()

    def _open(self) -> None:
        self._requests: queue.Queue[sam_pb2.SegmentRequest | None] = queue.Queue()
        timeout = None if self._deadline is None else max(0.0, self._deadline - time.monotonic())
        self._call: Any = self._stub.Segment(
            self._request_iterator(self._requests), timeout=timeout, metadata=self._client.metadata
        )

    @staticmethod
    def _request_iterator(
        requests: queue.Queue[sam_pb2.SegmentRequest | None],
    ) -> Iterator[sam_pb2.SegmentRequest]:
        while (request := requests.get()) is not _END_OF_STREAM:
            yield request

    def exchange(self, request: sam_pb2.SegmentRequest) -> sam_pb2.SegmentResponse:
        """Send one request as is and return its answer (no retry, errors in-band; grpc.RpcError when the
        stream ends)."""
        self._requests.put(request)
        return next(self._call)

    def segment(
        self, image: ImageRef, prompts: Sequence[sam_pb2.Prompt], *, raise_on_error: bool = True, **options: Any
    ) -> sam_pb2.SegmentResponse:
        """Answer `prompts` on `image`; embeds the image again and retries once when its embedding is not found or
        was damaged (in-band NOT_FOUND or DATA_LOSS), and opens the stream again when it ends UNAVAILABLE (up to
        `reopen_attempts` times).

        Options are make_request's: multimask_output, mask_format, return_logits, request_id.
        """
        request, response = self._send(make_request(image, prompts, **options))
        if wants_reembedding(image, response) and self._client._encoder_channel is not None:
            assert isinstance(image, EmbeddedImage)
            fresh = self._client.embed(image.image_bytes)
            self._client.reembeddings += 1
            request.image_key = fresh.image_key
            request, response = self._send(request)
        self.session.remember(request, response)
        return checked(response, raise_on_error)

    def _send(self, request: sam_pb2.SegmentRequest) -> tuple[sam_pb2.SegmentRequest, sam_pb2.SegmentResponse]:
        """exchange(), opening the stream again on UNAVAILABLE; the request as last sent, and its answer."""
        for attempt in range(self.reopen_attempts + 1):
            try:
                return request, self.exchange(request)
            except grpc.RpcError as error:
                if not should_reopen(error) or attempt == self.reopen_attempts:
                    raise
            time.sleep(reopen_delay_seconds(attempt))
            self._reopen()
            request = self.session.rebuilt(request)
        raise AssertionError("unreachable")

    def _reopen(self) -> None:
        self._requests.put(_END_OF_STREAM)
        self._call.cancel()
        self._open()
        self.reopens += 1

    def close(self) -> None:
        self._requests.put(_END_OF_STREAM)
        self._call.cancel()

    def __enter__(self) -> SegmentStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _channel(target: str, credentials: grpc.ChannelCredentials | None) -> grpc.Channel:
    if credentials is None:
        return grpc.insecure_channel(target, options=client_channel_options())
    return grpc.secure_channel(target, credentials, options=client_channel_options())
