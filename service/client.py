"""A Python client for both services: embed an image, stream prompts, re-embed automatically on NOT_FOUND.

Two flavours over the same request building: `SamClient` (blocking, for the CLI and scripts) and
`AsyncSamClient` (grpc.aio, for asyncio code and the tests). A Segment stream is a session: open one per
interactive user, send a request, read its answer; `previous` refers to that stream's last answer.

    with SamClient(encoder_target="host:50051", decoder_target="host:50052") as client:
        image = client.embed(open("photo.jpg", "rb").read())
        with client.open_stream() as stream:
            answer = stream.segment(image, [make_prompt(points=[(120, 80, 1)])], multimask_output=True)
            best = mask_of(max(answer.objects[0].masks, key=lambda mask: mask.score))
"""

from __future__ import annotations

import queue
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np

from service._proto.sam.v1 import sam_pb2, sam_pb2_grpc
from service.constants import LOW_RES_MASK_SIZE
from service.grpc_server import channel_options
from service.runtime.mask_formats import decode_packed_bits, decode_png, decode_rle

DEFAULT_EMBED_TIMEOUT_SECONDS = 300.0
_NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]


class RequestError(Exception):
    """A request answered with an in-band error (the stream lives on)."""

    def __init__(self, error: sam_pb2.Error, request_id: str = "") -> None:
        self.code = _status_code_of_number(error.code)
        self.message = error.message
        self.field = error.field
        self.request_id = request_id
        super().__init__(f"{self.code.name}: {error.message}")


@dataclass(frozen=True)
class EmbeddedImage:
    """An image the encoder has embedded; keeps its bytes so the client can embed it again if needed."""

    image_bytes: bytes
    image_key: str
    original_size: tuple[int, int]  # rows, columns
    cached: bool
    model: str


Point = tuple[float, float, int]  # x, y, label (1 foreground, 0 background)
ImageRef = EmbeddedImage | str  # an embedded image, or a bare image_key (no re-embedding possible)


def make_prompt(
    points: Sequence[Point] = (),
    box: Sequence[float] | None = None,
    previous: bool = False,
    logits: np.ndarray | None = None,
) -> sam_pb2.Prompt:
    """One object's prompt: clicks, a box (x0, y0, x1, y1), and a mask prior (the stream's previous best mask,
    or explicit (256, 256) / (1, 256, 256) logits)."""
    prompt = sam_pb2.Prompt(points=[sam_pb2.Point(x=x, y=y, label=label) for x, y, label in points])
    if box is not None:
        x0, y0, x1, y1 = box
        prompt.box.CopyFrom(sam_pb2.Box(x0=x0, y0=y0, x1=x1, y1=y1))
    if previous:
        prompt.mask_input.previous = True
    elif logits is not None:
        array = np.ascontiguousarray(np.asarray(logits, dtype="<f4").reshape(-1, LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE))
        prompt.mask_input.logits.CopyFrom(
            sam_pb2.LowResLogits(
                size=sam_pb2.ImageSize(height=LOW_RES_MASK_SIZE, width=LOW_RES_MASK_SIZE),
                count=array.shape[0],
                data=array.tobytes(),
            )
        )
    return prompt


def make_request(
    image: ImageRef,
    prompts: Sequence[sam_pb2.Prompt],
    *,
    multimask_output: bool = False,
    mask_format: int = sam_pb2.MASK_FORMAT_RLE,
    return_logits: bool = False,
    request_id: str = "",
) -> sam_pb2.SegmentRequest:
    return sam_pb2.SegmentRequest(
        request_id=request_id,
        image_key=_key_of(image),
        prompts=list(prompts),
        multimask_output=multimask_output,
        format=mask_format,  # type: ignore[arg-type]
        return_logits=return_logits,
    )


def mask_of(mask: sam_pb2.Mask) -> np.ndarray:
    """The full-resolution (H, W) boolean mask, whichever encoding it came in."""
    encoding = mask.WhichOneof("encoding")
    if encoding == "rle":
        return decode_rle(list(mask.rle.counts), (mask.rle.size.height, mask.rle.size.width))
    if encoding == "png":
        return decode_png(mask.png)
    if encoding == "packed_bits":
        return decode_packed_bits(mask.packed_bits.bits, (mask.packed_bits.size.height, mask.packed_bits.size.width))
    raise ValueError("the mask carries no pixels (MASK_FORMAT_NONE)")


def logits_of(object_masks: sam_pb2.ObjectMasks) -> np.ndarray:
    """(C, 256, 256) float32 low-res logits of an answer asked with return_logits."""
    logits = object_masks.low_res_logits
    if not logits.count:
        raise ValueError("the answer carries no logits (ask with return_logits=True)")
    return np.frombuffer(logits.data, dtype="<f4").reshape(logits.count, logits.size.height, logits.size.width)


def best_logits_of(object_masks: sam_pb2.ObjectMasks) -> np.ndarray:
    """(256, 256) logits of the highest-scoring mask: what to send back as an explicit prior."""
    best = int(np.argmax([mask.score for mask in object_masks.masks]))
    return logits_of(object_masks)[best]


def embedded_image_of(image_bytes: bytes, response: sam_pb2.EmbedResponse) -> EmbeddedImage:
    return EmbeddedImage(
        image_bytes=image_bytes,
        image_key=response.image_key,
        original_size=(response.original_size.height, response.original_size.width),
        cached=response.cached,
        model=response.model,
    )


def wants_reembedding(image: ImageRef, response: sam_pb2.SegmentResponse) -> bool:
    """True when the key is unknown or expired and we hold the image to embed again."""
    return isinstance(image, EmbeddedImage) and response.HasField("error") and response.error.code == _NOT_FOUND


def checked(response: sam_pb2.SegmentResponse, raise_on_error: bool) -> sam_pb2.SegmentResponse:
    if raise_on_error and response.HasField("error"):
        raise RequestError(response.error, response.request_id)
    return response


def _key_of(image: ImageRef) -> str:
    return image.image_key if isinstance(image, EmbeddedImage) else image


def _status_code_of_number(number: int) -> grpc.StatusCode:
    return next((code for code in grpc.StatusCode if code.value[0] == number), grpc.StatusCode.UNKNOWN)


class SamClient:
    """Blocking client. Targets are "host:port"; either may be None when only the other service is used."""

    def __init__(self, encoder_target: str | None = None, decoder_target: str | None = None, model: str = "") -> None:
        self.model = model
        self._encoder_channel = (
            grpc.insecure_channel(encoder_target, options=channel_options()) if encoder_target else None
        )
        self._decoder_channel = (
            grpc.insecure_channel(decoder_target, options=channel_options()) if decoder_target else None
        )
        self.reembeddings = 0

    def embed(self, image_bytes: bytes, timeout_seconds: float = DEFAULT_EMBED_TIMEOUT_SECONDS) -> EmbeddedImage:
        if self._encoder_channel is None:
            raise ValueError("this client has no encoder target")
        stub = sam_pb2_grpc.EncoderStub(self._encoder_channel)
        response = stub.Embed(sam_pb2.EmbedRequest(image=image_bytes, model=self.model), timeout=timeout_seconds)
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
        self._call: Any = stub.Segment(self._request_iterator(), timeout=timeout_seconds)

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
        """Answer `prompts` on `image`; embeds the image again and retries once when its key is not found.

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


class AsyncSamClient:
    """The asyncio client; the same API as SamClient with awaitables."""

    def __init__(self, encoder_target: str | None = None, decoder_target: str | None = None, model: str = "") -> None:
        self.model = model
        self._encoder_channel = (
            grpc.aio.insecure_channel(encoder_target, options=channel_options()) if encoder_target else None
        )
        self._decoder_channel = (
            grpc.aio.insecure_channel(decoder_target, options=channel_options()) if decoder_target else None
        )
        self.reembeddings = 0

    async def embed(self, image_bytes: bytes, timeout_seconds: float = DEFAULT_EMBED_TIMEOUT_SECONDS) -> EmbeddedImage:
        if self._encoder_channel is None:
            raise ValueError("this client has no encoder target")
        stub = sam_pb2_grpc.EncoderStub(self._encoder_channel)
        response = await stub.Embed(sam_pb2.EmbedRequest(image=image_bytes, model=self.model), timeout=timeout_seconds)
        return embedded_image_of(image_bytes, response)

    def open_stream(self, timeout_seconds: float | None = None) -> AsyncSegmentStream:
        if self._decoder_channel is None:
            raise ValueError("this client has no decoder target")
        return AsyncSegmentStream(self, sam_pb2_grpc.DecoderStub(self._decoder_channel), timeout_seconds)

    async def close(self) -> None:
        for channel in (self._encoder_channel, self._decoder_channel):
            if channel is not None:
                await channel.close()

    async def __aenter__(self) -> AsyncSamClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class AsyncSegmentStream:
    """One asyncio Segment stream: each `segment` call sends one request and awaits its answer."""

    def __init__(self, client: AsyncSamClient, stub: sam_pb2_grpc.DecoderStub, timeout_seconds: float | None) -> None:
        self._client = client
        self.call: Any = stub.Segment(timeout=timeout_seconds)

    async def exchange(self, request: sam_pb2.SegmentRequest) -> sam_pb2.SegmentResponse:
        """Send one request as is and return its answer; grpc.aio.AioRpcError when the stream ends."""
        await self.call.write(request)
        response = await self.call.read()
        if response is grpc.aio.EOF:
            # A failed stream raises from read(); EOF means the server closed it cleanly, unasked.
            raise ConnectionError("the decoder closed the stream without answering")
        return response  # type: ignore[no-any-return]

    async def segment(
        self, image: ImageRef, prompts: Sequence[sam_pb2.Prompt], *, raise_on_error: bool = True, **options: Any
    ) -> sam_pb2.SegmentResponse:
        """As SegmentStream.segment."""
        request = make_request(image, prompts, **options)
        response = await self.exchange(request)
        if wants_reembedding(image, response) and self._client._encoder_channel is not None:
            assert isinstance(image, EmbeddedImage)
            fresh = await self._client.embed(image.image_bytes)
            self._client.reembeddings += 1
            request.image_key = fresh.image_key
            response = await self.exchange(request)
        return checked(response, raise_on_error)

    async def close(self) -> None:
        if not self.call.done():
            self.call.cancel()

    async def __aenter__(self) -> AsyncSegmentStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
