"""Bounded fuzzing (issue 10, deliverable 9): mutated SegmentRequests on live streams and mutated image files on Embed,
with valid ones mixed in that must succeed, so a server that refused everything would fail here too.

What must hold: no call ends INTERNAL or UNKNOWN; a stream answers every parseable request (in-band errors are
INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED or DATA_LOSS) and answers a good request afterwards; bytes that are
no SegmentRequest end their stream INVALID_ARGUMENT; Embed answers OK, INVALID_ARGUMENT or RESOURCE_EXHAUSTED.
Hypothesis runs derandomized (the same examples on every run, so CI is repeatable) and without its database.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from service._proto.sam.v1 import sam_pb2
from service.cache.keys import image_key_of, parse_image_key
from service.decoder.server import DecoderServer
from service.encoder.server import EncoderServer
from service.rpc.channel import channel_options
from tests.support.images import encode, smooth_rgb
from tests.support.reference import StoredImage, StoreImage

pytestmark = pytest.mark.slow

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)
IN_BAND_CODES = {code.value[0] for code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                                            grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DATA_LOSS)}  # fmt: skip
EMBED_CODES = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}
SEGMENT = "/sam.v1.Decoder/Segment"
T = TypeVar("T")


async def run_examples(
    check: Callable[[T], Awaitable[None]], examples: st.SearchStrategy[T], max_examples: int
) -> None:
    """Hypothesis over `check` of each example, run on this event loop (where the servers live) from a worker thread
    that Hypothesis drives synchronously."""
    loop = asyncio.get_running_loop()

    @settings(FUZZ, max_examples=max_examples)
    @given(example=examples)
    def run(example: T) -> None:
        asyncio.run_coroutine_threadsafe(check(example), loop).result()

    await asyncio.to_thread(run)


EMBED = "/sam.v1.Encoder/Embed"


# ---------------------------------------------------------------------------------------------- Segment


@dataclass(frozen=True)
class Target:
    """A stored image the fuzzer aims at: its key and size (rows, columns)."""

    image_key: str
    rows: int
    columns: int


@pytest.fixture(scope="module")
async def targets(store_image: StoreImage) -> list[Target]:
    """A small photo-like image and a 1 x 2048 one (the thinnest the encoder takes), stored as the encoder would."""
    stored: list[StoredImage] = [(await store_image(60, 80, seed=1))[0], (await store_image(1, 2048, seed=5))[0]]
    return [Target(image.image_key, *image.rgb.shape[:2]) for image in stored]


def _floats(limit: float) -> st.SearchStrategy[float]:
    """Mostly coordinates near the image, sometimes anything a float32 holds (NaN, infinities, huge, tiny)."""
    return st.one_of(
        st.floats(min_value=-5, max_value=limit + 5, width=32),
        st.floats(width=32, allow_nan=True, allow_infinity=True),
        st.sampled_from([0.0, -0.0, limit, limit - 0.5, 3.4e38, -3.4e38, 1e-45]),
    )


def _labels() -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from([0, 1]), st.integers(-(2**31), 2**31 - 1))


def _logits() -> st.SearchStrategy[sam_pb2.LowResLogits]:
    good = np.zeros(256 * 256, "<f4").tobytes()
    sizes = st.one_of(st.sampled_from([0, 1, 255, 256, 257]), st.integers(0, 2**32 - 1))
    return st.builds(
        sam_pb2.LowResLogits,
        size=st.builds(sam_pb2.ImageSize, height=sizes, width=sizes),
        count=st.one_of(st.sampled_from([0, 1, 2, 3]), st.integers(0, 2**32 - 1)),
        data=st.one_of(
            st.binary(max_size=64),
            st.just(good),
            st.just(np.full(256 * 256, np.nan, "<f4").tobytes()),
            st.just(np.full(256 * 256, 1e38, "<f4").tobytes()),
            st.just(good[:-4]),
        ),
    )


def _mask_inputs() -> st.SearchStrategy[sam_pb2.MaskInput | None]:
    return st.one_of(
        st.none(),
        st.builds(sam_pb2.MaskInput, previous=st.booleans()),
        st.builds(sam_pb2.MaskInput, logits=_logits()),
    )


def _prompts(limit: float, max_points: int = 6) -> st.SearchStrategy[sam_pb2.Prompt]:
    @st.composite
    def prompt(draw: st.DrawFn) -> sam_pb2.Prompt:
        message = sam_pb2.Prompt()
        count = draw(st.one_of(st.integers(0, max_points), st.just(65)))
        for _ in range(count):
            message.points.add(x=draw(_floats(limit)), y=draw(_floats(limit)), label=draw(_labels()))
        if draw(st.booleans()):
            message.box.CopyFrom(sam_pb2.Box(x0=draw(_floats(limit)), y0=draw(_floats(limit)),
                                             x1=draw(_floats(limit)), y1=draw(_floats(limit))))  # fmt: skip
        mask_input = draw(_mask_inputs())
        if mask_input is not None:
            message.mask_input.CopyFrom(mask_input)
        return message

    return prompt()


def _keys(targets: list[Target]) -> st.SearchStrategy[str]:
    real = [target.image_key for target in targets]
    parsed = parse_image_key(real[0])
    return st.one_of(
        st.sampled_from(real),
        st.sampled_from(real),  # twice as likely: most mutations then reach the prompts
        st.text(max_size=80),
        st.just(""),
        st.just("sam:" + "k" * 10_000),
        st.just(str(image_key_of(parsed.model_id, b"never embedded"))),
        st.just(str(image_key_of(parsed.model_id, b"x", tenant="someone-else"))),
        st.just(str(image_key_of("vit_h-0123456789abcdef", b"x"))),
        st.builds(
            lambda key, index, char: key[:index] + char + key[index + 1 :],
            st.sampled_from(real),
            st.integers(0, 80),
            st.characters(),
        ),  # fmt: skip
    )


def _mutated_requests(targets: list[Target]) -> st.SearchStrategy[sam_pb2.SegmentRequest]:
    return st.builds(
        sam_pb2.SegmentRequest,
        request_id=st.text(max_size=40),
        image_key=_keys(targets),
        prompts=st.lists(_prompts(limit=2048), max_size=4),
        multimask_output=st.booleans(),
        format=st.one_of(st.sampled_from(list(sam_pb2.MaskFormat.values())), st.integers(-(2**31), 2**31 - 1)),
        return_logits=st.booleans(),
    )


def _valid_requests(targets: list[Target]) -> st.SearchStrategy[sam_pb2.SegmentRequest]:
    """Requests that must be answered without error: points and boxes inside the image, labels 0 or 1."""

    @st.composite
    def request(draw: st.DrawFn) -> sam_pb2.SegmentRequest:
        target = draw(st.sampled_from(targets))
        xs = st.floats(min_value=0, max_value=target.columns - 1, width=32)
        ys = st.floats(min_value=0, max_value=target.rows - 1, width=32)
        prompts = []
        for _ in range(draw(st.integers(1, 2))):
            prompt = sam_pb2.Prompt()
            for _ in range(draw(st.integers(1, 3))):
                prompt.points.add(x=draw(xs), y=draw(ys), label=draw(st.sampled_from([0, 1])))
            if draw(st.booleans()):  # on a quarter-pixel grid (exact in float32), x0 < x1 <= columns
                left, top = draw(st.integers(0, 4 * target.columns - 4)), draw(st.integers(0, 4 * target.rows - 4))
                right = draw(st.integers(left + 2, 4 * target.columns))
                bottom = draw(st.integers(top + 2, 4 * target.rows))
                prompt.box.CopyFrom(sam_pb2.Box(x0=left / 4, y0=top / 4, x1=right / 4, y1=bottom / 4))
            prompts.append(prompt)
        return sam_pb2.SegmentRequest(
            request_id=draw(st.text(max_size=20)),
            image_key=target.image_key,
            prompts=prompts,
            multimask_output=draw(st.booleans()),
            format=draw(st.sampled_from(list(sam_pb2.MaskFormat.values()))),
            return_logits=draw(st.booleans()),
        )

    return request()


@st.composite
def _damaged_bytes(draw: st.DrawFn, requests: st.SearchStrategy[sam_pb2.SegmentRequest]) -> bytes:
    """A request's wire bytes with bytes flipped, inserted or cut: some still parse, some do not."""
    wire = bytearray(draw(requests).SerializeToString())
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["flip", "insert", "cut"]))
        position = draw(st.integers(0, max(len(wire) - 1, 0)))
        if operation == "flip" and wire:
            wire[position] = draw(st.integers(0, 255))
        elif operation == "insert":
            wire[position:position] = draw(st.binary(min_size=1, max_size=8))
        else:
            del wire[position:]
    return bytes(wire)


def _parses(wire: bytes) -> sam_pb2.SegmentRequest | None:
    try:
        return sam_pb2.SegmentRequest.FromString(wire)
    except Exception:  # DecodeError, and anything protobuf raises on garbage
        return None


@st.composite
def _batches(draw: st.DrawFn, targets: list[Target]) -> list[tuple[str, bytes]]:
    """What one stream gets: valid, mutated and damaged requests, as (kind, wire bytes)."""
    kinds = {
        "valid": _valid_requests(targets).map(lambda request: request.SerializeToString()),
        "mutated": _mutated_requests(targets).map(lambda request: request.SerializeToString()),
        "damaged": _damaged_bytes(st.one_of(_valid_requests(targets), _mutated_requests(targets))),
    }
    batch = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["mutated", "damaged", "mutated", "valid"]))
        batch.append((kind, draw(kinds[kind])))
    return batch


@pytest.fixture
async def raw_channel(decoder_server: DecoderServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(decoder_server.target, options=channel_options()) as channel:
        yield channel


def _good(target: Target) -> bytes:
    prompt = sam_pb2.Prompt(points=[sam_pb2.Point(x=0, y=0, label=1)])
    request = sam_pb2.SegmentRequest(
        request_id="good", image_key=target.image_key, prompts=[prompt], format=sam_pb2.MASK_FORMAT_NONE
    )
    return request.SerializeToString()


class Counts:
    """What the fuzzer sent and how it was answered, for the closing checks."""

    def __init__(self) -> None:
        self.sent: dict[str, int] = {"valid": 0, "mutated": 0, "damaged": 0}
        self.answered_ok = 0
        self.in_band: set[int] = set()
        self.unparseable = 0


COUNTS = Counts()
SEGMENT_EXAMPLES = 110


async def test_fuzzed_segment_streams_answer_cleanly_and_live_on(
    targets: list[Target], raw_channel: grpc.aio.Channel
) -> None:
    segment = raw_channel.stream_stream(SEGMENT, response_deserializer=sam_pb2.SegmentResponse.FromString)

    async def check(batch: list[tuple[str, bytes]]) -> None:
        call = segment(timeout=120)
        ended = False
        for kind, wire in batch:
            COUNTS.sent[kind] += 1
            request = _parses(wire)
            await call.write(wire)
            try:
                answer = await call.read()
            except grpc.aio.AioRpcError as error:
                # Only bytes that are no SegmentRequest may end a stream, and then as INVALID_ARGUMENT.
                assert request is None, (kind, error.code(), error.details())
                assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
                COUNTS.unparseable += 1
                ended = True
                break
            assert answer is not grpc.aio.EOF and request is not None, kind
            assert answer.request_id == request.request_id
            if answer.HasField("error"):
                assert answer.error.code in IN_BAND_CODES, (kind, answer.error)
                assert kind != "valid", (request, answer.error)  # a valid request must succeed
                COUNTS.in_band.add(answer.error.code)
            else:
                assert len(answer.objects) == len(request.prompts), kind
                COUNTS.answered_ok += 1
        if ended:
            call = segment(timeout=120)
        # The stream (or, after unparseable bytes, a new one) answers a good request.
        await call.write(_good(targets[0]))
        answer = await call.read()
        assert not answer.HasField("error") and len(answer.objects) == 1, answer.error
        call.cancel()

    await run_examples(check, _batches(targets), max_examples=SEGMENT_EXAMPLES)
    # The corpus did reach every branch: valid requests answered, in-band errors of several kinds, dead bytes.
    assert sum(COUNTS.sent.values()) >= 200, COUNTS.sent
    assert COUNTS.answered_ok >= COUNTS.sent["valid"] > 20
    assert {3, 5} <= COUNTS.in_band, COUNTS.in_band
    assert COUNTS.unparseable > 0


# ---------------------------------------------------------------------------------------------- Embed


def _seed_images() -> dict[str, bytes]:
    """Small decodable files of every accepted format and several modes."""
    rgb = smooth_rgb(24, 32, seed=50)
    image = Image.fromarray(rgb)
    return {
        "png": encode(image, "PNG"),
        "jpeg": encode(image, "JPEG", quality=80),
        "gif": encode(image.convert("P"), "GIF"),
        "bmp": encode(image, "BMP"),
        "tiff": encode(image, "TIFF"),
        "webp": encode(image, "WEBP"),
        "gray_png": encode(image.convert("L"), "PNG"),
        "rgba_png": encode(image.convert("RGBA"), "PNG"),
        "sixteen_bit_tiff": encode(Image.fromarray(rgb[..., 0].astype(np.uint16) * 257), "TIFF"),
    }


SEEDS = _seed_images()


def _with_png_size(png: bytes, width: int, height: int) -> bytes:
    """The PNG with its IHDR's size replaced and its CRC made right again, so the size is what gets checked."""
    ihdr = bytearray(png[12:29])  # type (4) + data (13)
    ihdr[4:12] = struct.pack(">II", width, height)
    return png[:8] + png[8:12] + bytes(ihdr) + struct.pack(">I", zlib.crc32(bytes(ihdr))) + png[33:]


@st.composite
def _mutated_images(draw: st.DrawFn) -> bytes:
    image = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    operation = draw(st.sampled_from(["header", "header", "truncate", "insert", "png_size", "garbage", "anywhere"]))
    if operation == "header":  # mostly damaged headers: cheap to refuse, and where parsers go wrong
        for _ in range(draw(st.integers(1, 4))):
            image[draw(st.integers(0, min(len(image), 64) - 1))] = draw(st.integers(0, 255))
    elif operation == "truncate":
        del image[draw(st.integers(0, len(image) - 1)) :]
    elif operation == "insert":
        position = draw(st.integers(0, len(image)))
        image[position:position] = draw(st.binary(min_size=1, max_size=32))
    elif operation == "png_size":
        sizes = st.one_of(st.sampled_from([0, 1, 2049, 3000, 100_000, 2**31 - 1, 2**32 - 1]), st.integers(0, 2**32 - 1))
        return _with_png_size(SEEDS["png"], draw(sizes), draw(sizes))
    elif operation == "garbage":
        signature = draw(st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"II*\x00",
                                          b"MM\x00*", b"RIFF\x00\x00\x00\x00WEBP"]))  # fmt: skip
        return signature + draw(st.binary(max_size=200))
    else:  # anywhere, pixels included: these often still decode, and cost an encode each
        image[draw(st.integers(0, len(image) - 1))] = draw(st.integers(0, 255))
    return bytes(image)


EMBED_EXAMPLES = 70


async def _embed_status(channel: grpc.aio.Channel, image: bytes, model: str = "") -> tuple[grpc.StatusCode, str]:
    embed = channel.unary_unary(EMBED, response_deserializer=sam_pb2.EmbedResponse.FromString)
    try:
        await embed(sam_pb2.EmbedRequest(image=image, model=model).SerializeToString(), timeout=120)
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


async def test_fuzzed_images_embed_or_are_refused_cleanly(encoder_server: EncoderServer) -> None:
    codes: dict[grpc.StatusCode, int] = {}
    async with grpc.aio.insecure_channel(encoder_server.address, options=channel_options()) as channel:
        for name, seed in SEEDS.items():  # the valid part of the corpus: each must embed
            assert await _embed_status(channel, seed) == (grpc.StatusCode.OK, ""), name

        async def check(example: tuple[bytes, str]) -> None:
            image, model = example
            code, details = await _embed_status(channel, image, model)
            assert code in EMBED_CODES, (code, details, image[:64])
            assert len(details) <= 1000
            codes[code] = codes.get(code, 0) + 1

        models = st.one_of(st.just(""), st.just(""), st.text(max_size=300))
        await run_examples(check, st.tuples(_mutated_images(), models), max_examples=EMBED_EXAMPLES)
        # Raw bytes that are no EmbedRequest at all: INVALID_ARGUMENT, not gRPC's UNKNOWN.
        raw = channel.unary_unary(EMBED)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await raw(b"\x0a\xff\xff\xff\xff\x0f", timeout=30)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert codes.get(grpc.StatusCode.INVALID_ARGUMENT, 0) > 10 and codes.get(grpc.StatusCode.OK, 0) > 0, codes
