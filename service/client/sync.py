"""The blocking client: for the CLI and scripts."""

from __future__ import annotations

import queue
from collections.abc import Iterator, Sequence
from typing import Any

import grpc

from service._proto.sam.v1 import sam_pb2, sam_pb2_grpc
from service.client.messages import (
    DEFAULT_EMBED_TIMEOUT_SECONDS,
    EmbeddedImage,
    ImageRef,
    call_metadata,
    checked,
    embedded_image_of,
    make_request,
    wants_reembedding,
)
from service.rpc.channel import channel_options


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

    def embed(self, image_bytes: bytes, timeout_seconds: float = DEFAULT_EMBED_TIMEOUT_SECONDS) -> EmbeddedImage:
        if self._encoder_channel is None:
            raise ValueError("this client has no encoder target")
        stub = sam_pb2_grpc.EncoderStub(self._encoder_channel)
        response = stub.Embed(
            sam_pb2.EmbedRequest(image=image_bytes, model=self.model), timeout=timeout_seconds, metadata=self.metadata
        )
        return embedded_image_of(image_bytes, response)

    def open_stream(self, timeout_seconds: float | None = None) -> SegmentStream:
        if self._decoder_channel is None:
            raise ValueError("this client has no decoder target")
        return SegmentStream(self, sam_pb2_grpc.DecoderStub(self._decoder_channel), timeout_seconds)

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
    """One blocking Segment stream: each `segment` call sends one request and waits for its answer."""

    def __init__(self, client: SamClient, stub: sam_pb2_grpc.DecoderStub, timeout_seconds: float | None) -> None:
        self._client = client
        self._requests: queue.Queue[sam_pb2.SegmentRequest | None] = queue.Queue()
        self._call: Any = stub.Segment(self._request_iterator(), timeout=timeout_seconds, metadata=client.metadata)

    def _request_iterator(self) -> Iterator[sam_pb2.SegmentRequest]:
        while (request := self._requests.get()) is not _END_OF_STREAM:
            yield request

    def exchange(self, request: sam_pb2.SegmentRequest) -> sam_pb2.SegmentResponse:
        """Send one request as is and return its answer (no retry, errors in-band)."""
        self._requests.put(request)
        return next(self._call)

    def segment(
        self, image: ImageRef, prompts: Sequence[sam_pb2.Prompt], *, raise_on_error: bool = True, **options: Any
    ) -> sam_pb2.SegmentResponse:
        """Answer `prompts` on `image`; embeds the image again and retries once when its embedding is not found or
        was damaged (in-band NOT_FOUND or DATA_LOSS).

        Options are make_request's: multimask_output, mask_format, return_logits, request_id.
        """
        request = make_request(image, prompts, **options)
        response = self.exchange(request)
        if wants_reembedding(image, response) and self._client._encoder_channel is not None:
            assert isinstance(image, EmbeddedImage)
            fresh = self._client.embed(image.image_bytes)
            self._client.reembeddings += 1
            request.image_key = fresh.image_key
            response = self.exchange(request)
        return checked(response, raise_on_error)

    def close(self) -> None:
        self._requests.put(_END_OF_STREAM)
        self._call.cancel()

    def __enter__(self) -> SegmentStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _channel(target: str, credentials: grpc.ChannelCredentials | None) -> grpc.Channel:
    if credentials is None:
        return grpc.insecure_channel(target, options=channel_options())
    return grpc.secure_channel(target, credentials, options=channel_options())
