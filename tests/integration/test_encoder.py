"""The encoder service against a real redis-server and a real tritonserver (tiny checkpoint, CPU)."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest
import redis.asyncio as aioredis
import torch
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from PIL import Image
from prometheus_client import REGISTRY
from segment_anything import SamPredictor

from service._proto.sam.v1 import sam_pb2, sam_pb2_grpc
from service.cache.keys import image_key_of, parse_image_key
from service.cache.single_flight import FAILURE_RECORD_TTL_MS
from service.encoder.server import EncoderServer, start_encoder
from service.errors import MAX_ECHOED_CHARACTERS
from service.local.redis_server import RedisServer
from service.model_identity import ModelIdentity
from service.rpc.channel import channel_options
from service.runtime.checkpoint import CheckpointInfo
from service.runtime.image_file import decode_image
from service.triton.launcher import TritonServer
from tests.numerical_contract import reference_sam
from tests.support.polling import wait_until_async
from tests.support.servers import (
    SINGLE_MODEL_NAME,
    encoder_settings,
    health_status,
    make_triton_server,
    read_stored,
    wait_for_health,
)

pytestmark = pytest.mark.slow

_SEEDS = iter(range(10_000, 20_000))


def new_image_bytes(rows: int = 120, columns: int = 160, fmt: str = "PNG") -> bytes:
    """An image no test has embedded before (fresh random pixels)."""
    pixels = np.random.default_rng(next(_SEEDS)).integers(0, 256, (rows, columns, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
async def encoder_stub(encoder_server: EncoderServer) -> AsyncIterator[sam_pb2_grpc.EncoderStub]:
    async with grpc.aio.insecure_channel(encoder_server.address, options=channel_options()) as channel:
        yield sam_pb2_grpc.EncoderStub(channel)


async def embed(
    stub: sam_pb2_grpc.EncoderStub, image: bytes, timeout: float = 60.0, model: str = ""
) -> sam_pb2.EmbedResponse:
    return await stub.Embed(sam_pb2.EmbedRequest(image=image, model=model), timeout=timeout)


async def embed_status(stub: sam_pb2_grpc.EncoderStub, image: bytes, **kwargs: object) -> tuple[grpc.StatusCode, str]:
    try:
        await embed(stub, image, **kwargs)  # type: ignore[arg-type]
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


async def test_first_embed_misses_and_second_hits_without_triton(
    encoder_stub: sam_pb2_grpc.EncoderStub, triton_server: TritonServer, encoder_model_id: str
) -> None:
    image = new_image_bytes(90, 200)
    before = triton_server.inference_count()
    hits_before, misses_before, stored_before = _cache_metrics()

    first = await embed(encoder_stub, image)
    after_first = triton_server.inference_count()
    second = await embed(encoder_stub, image)
    after_second = triton_server.inference_count()

    assert (first.cached, second.cached) == (False, True)
    assert after_first == before + 1
    assert after_second == after_first  # the hit never reached Triton
    assert first.image_key == second.image_key
    key = parse_image_key(first.image_key)
    assert (key.model_id, key.digest, key.tenant) == (encoder_model_id, hashlib.sha256(image).hexdigest(), None)
    assert (first.original_size.height, first.original_size.width) == (90, 200)
    assert (second.original_size.height, second.original_size.width) == (90, 200)
    assert first.model == second.model == encoder_model_id
    hits, misses, stored = _cache_metrics()
    assert (hits - hits_before, misses - misses_before) == (1, 1)
    assert stored - stored_before > 2 * 256 * 64 * 64  # one float16 embedding and its header


def _cache_metrics() -> tuple[float, float, float]:
    """The encoder's hit, miss and bytes-stored counters (the server runs in this process)."""

    def sample(name: str, labels: dict[str, str] | None = None) -> float:
        return REGISTRY.get_sample_value(name, labels or {}) or 0.0

    return (
        sample("sam_encoder_cache_requests_total", {"result": "hit"}),
        sample("sam_encoder_cache_requests_total", {"result": "miss"}),
        sample("sam_encoder_embedding_bytes_stored_total"),
    )


async def test_eight_concurrent_embeds_of_one_new_image_run_one_inference(
    encoder_stub: sam_pb2_grpc.EncoderStub, triton_server: TritonServer
) -> None:
    image = new_image_bytes()
    before = triton_server.inference_count()

    answers = await asyncio.gather(*(embed(encoder_stub, image) for _ in range(8)))

    assert triton_server.inference_count() - before == 1
    assert len({answer.image_key for answer in answers}) == 1
    assert sorted(answer.cached for answer in answers) == [False] + [True] * 7


async def test_single_flight_spans_replicas(
    encoder_server: EncoderServer, redis_server: RedisServer, triton_server: TritonServer, encoder_model_id: str
) -> None:
    second = await start_encoder(encoder_settings(redis_server.url, triton_server.grpc_url, encoder_model_id))
    try:
        image = new_image_bytes()
        before = triton_server.inference_count()
        async with (
            grpc.aio.insecure_channel(encoder_server.address, options=channel_options()) as first_channel,
            grpc.aio.insecure_channel(second.address, options=channel_options()) as second_channel,
        ):
            stubs = [sam_pb2_grpc.EncoderStub(first_channel), sam_pb2_grpc.EncoderStub(second_channel)]
            answers = await asyncio.gather(*(embed(stubs[index % 2], image) for index in range(8)))
        assert triton_server.inference_count() - before == 1
        assert [answer.cached for answer in answers].count(False) == 1
    finally:
        await second.stop(grace_seconds=1.0)


async def test_stored_embedding_equals_reference_encoder(
    encoder_stub: sam_pb2_grpc.EncoderStub, redis_server: RedisServer, tiny_checkpoint: CheckpointInfo
) -> None:
    # A JPEG of a non-square size exercises decoding, resizing and padding.
    image = new_image_bytes(300, 200, fmt="JPEG")
    answer = await embed(encoder_stub, image)
    stored = await read_stored(redis_server.url, answer.image_key, answer.model)

    predictor = SamPredictor(reference_sam(tiny_checkpoint))
    with torch.inference_mode():
        predictor.set_image(decode_image(image), image_format="RGB")
    reference = predictor.features[0].numpy()

    assert stored.info.original_size == (300, 200)
    assert stored.info.input_size == tuple(predictor.input_size)
    embedding = stored.tensors["image_embeddings"]
    assert embedding.dtype == np.float16 and embedding.shape == reference.shape
    # float16 keeps 11 significant bits: rounding moves each value by at most 2^-11 of itself; allow 1e-4
    # absolute on top for float32 noise between Triton's process and this one (measured: max diff 0.0019 at
    # values up to 4.7, i.e. exactly float16 rounding).
    difference = np.abs(embedding.astype(np.float32) - reference)
    bound = np.abs(reference) * 2.0**-11 + 1e-4
    assert np.all(difference <= bound), float((difference - bound).max())
    assert float(difference.max()) <= 1e-3 * float(np.abs(reference).max())


async def test_a_damaged_cached_value_is_a_miss_and_gets_repaired(
    encoder_stub: sam_pb2_grpc.EncoderStub, redis_server: RedisServer
) -> None:
    image = new_image_bytes()
    answer = await embed(encoder_stub, image)
    client = aioredis.from_url(redis_server.url)
    try:
        assert await client.hdel(answer.image_key, "0") == 1  # a chunk lost: the header alone looks fine

        again = await embed(encoder_stub, image)

        assert again.cached is False
        assert (await read_stored(redis_server.url, answer.image_key, answer.model)).info.original_size == (120, 160)
        assert await client.ttl(answer.image_key) > 0
    finally:
        await client.aclose()


def _truncated_png() -> bytes:
    return new_image_bytes(64, 64)[:200]


def _blank_png(columns: int, rows: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (columns, rows)).save(buffer, format="PNG")
    return buffer.getvalue()


_EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n%%EOF\n"


@pytest.mark.parametrize(
    ("image", "code", "message"),
    [
        (b"", grpc.StatusCode.INVALID_ARGUMENT, "image: is empty"),
        (b"this is not an image, just text", grpc.StatusCode.INVALID_ARGUMENT, "image: is not an image format"),
        (_truncated_png(), grpc.StatusCode.INVALID_ARGUMENT, "image: could not be decoded"),
        # Issue 10, finding 7: refused from its first bytes, before any Pillow plugin (Ghostscript's) sees it.
        (_EPS, grpc.StatusCode.INVALID_ARGUMENT, "image: is not an image format this service reads"),
        # Issue 10, finding 2: these ended in INTERNAL (the resize gave a side of 0 pixels).
        (_blank_png(2049, 1), grpc.StatusCode.INVALID_ARGUMENT, "image: is 2049x1 pixels"),
        (_blank_png(1, 3000), grpc.StatusCode.INVALID_ARGUMENT, "image: is 1x3000 pixels"),
        (_blank_png(100_000, 1), grpc.StatusCode.INVALID_ARGUMENT, "image: is 100000x1 pixels"),
    ],
    ids=["empty", "not-an-image", "truncated", "eps", "2049x1", "1x3000", "100000x1"],
)
async def test_bad_images_are_invalid_argument(
    encoder_stub: sam_pb2_grpc.EncoderStub, image: bytes, code: grpc.StatusCode, message: str
) -> None:
    status, details = await embed_status(encoder_stub, image)
    assert status == code
    assert details.startswith(message), details


async def test_the_most_elongated_accepted_image_embeds(encoder_stub: sam_pb2_grpc.EncoderStub) -> None:
    answer = await embed(encoder_stub, _blank_png(2048, 1))
    assert (answer.original_size.height, answer.original_size.width) == (1, 2048)


async def test_oversized_images_are_resource_exhausted(
    redis_server: RedisServer, triton_server: TritonServer, encoder_model_id: str
) -> None:
    settings = encoder_settings(
        redis_server.url, triton_server.grpc_url, encoder_model_id, max_image_bytes=50_000, max_image_pixels=100_000
    )
    server = await start_encoder(settings)
    try:
        async with grpc.aio.insecure_channel(server.address, options=channel_options()) as channel:
            stub = sam_pb2_grpc.EncoderStub(channel)
            too_many_bytes = new_image_bytes(200, 200)  # ~120 kB of noise
            status, details = await embed_status(stub, too_many_bytes)
            assert status == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert details == f"image: is {len(too_many_bytes)} bytes, over the limit of 50000"

            buffer = io.BytesIO()
            Image.new("L", (1000, 1000)).save(buffer, format="PNG")  # tiny file, 1 megapixel
            status, details = await embed_status(stub, buffer.getvalue())
            assert status == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert details == "image: is 1000x1000 = 1000000 pixels, over the limit of 100000"
    finally:
        await server.stop(grace_seconds=1.0)


async def test_unknown_model_is_invalid_argument(encoder_stub: sam_pb2_grpc.EncoderStub, encoder_model_id: str) -> None:
    status, details = await embed_status(encoder_stub, new_image_bytes(), model="vit_h")
    assert status == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(f"model: this server embeds with {encoder_model_id!r}, not 'vit_h'"), details
    for accepted in ("tiny", encoder_model_id):
        assert (await embed_status(encoder_stub, new_image_bytes(), model=accepted))[0] == grpc.StatusCode.OK


async def test_a_long_model_is_echoed_cut(encoder_stub: sam_pb2_grpc.EncoderStub) -> None:
    """Issue 10, finding 3: a 10 KB `model` came back whole in the status message."""
    status, details = await embed_status(encoder_stub, new_image_bytes(), model="m" * 10_000)
    assert status == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("model: this server embeds with ") and len(details) < 2 * MAX_ECHOED_CHARACTERS


async def test_triton_model_id_mismatch_is_refused_and_not_stored(
    redis_server: RedisServer, triton_server: TritonServer
) -> None:
    wrong_id = "sam-tiny-0000000000000000"
    settings = encoder_settings(redis_server.url, triton_server.grpc_url, wrong_id)
    server = await start_encoder(settings, models=[ModelIdentity(wrong_id, "tiny", SINGLE_MODEL_NAME)])
    client = aioredis.from_url(redis_server.url)
    try:
        async with grpc.aio.insecure_channel(server.address, options=channel_options()) as channel:
            status, details = await embed_status(sam_pb2_grpc.EncoderStub(channel), new_image_bytes())
        assert status == grpc.StatusCode.UNAVAILABLE
        assert "refusing to store" in details
        # Neither a value nor a lock left; only the failure record for waiters, which expires by itself.
        left = await client.keys(f"sam:{wrong_id}:*")
        assert all(key.endswith(b":lock:failed") for key in left), left
        assert all(0 < ttl <= FAILURE_RECORD_TTL_MS for ttl in [await client.pttl(key) for key in left])
    finally:
        await client.aclose()
        await server.stop(grace_seconds=1.0)


async def test_deadline_is_honoured_and_leaves_no_stale_lock(
    encoder_stub: sam_pb2_grpc.EncoderStub, redis_server: RedisServer, encoder_model_id: str
) -> None:
    image = new_image_bytes(600, 800)
    lock_key = image_key_of(encoder_model_id, image).lock_key
    waits_before = _single_flight_waits()
    status, _ = await embed_status(encoder_stub, image, timeout=0.02)
    assert status == grpc.StatusCode.DEADLINE_EXCEEDED
    # The abandoned attempt releases its single-flight lock (the lock's own expiry is 60 s away) ...
    client = aioredis.from_url(redis_server.url)
    try:
        await wait_until_async(lambda: _gone(client, lock_key), 10, "the abandoned attempt's lock released")
    finally:
        await client.aclose()
    # ... so the next call leads the encode itself instead of waiting for a holder that is gone.
    answer = await embed(encoder_stub, image)
    assert answer.cached is False
    assert _single_flight_waits() == waits_before


async def _gone(client: aioredis.Redis, key: str) -> bool:
    return await client.exists(key) == 0


def _single_flight_waits() -> float:
    return sum(
        REGISTRY.get_sample_value("sam_encoder_single_flight_waits_total", {"outcome": outcome}) or 0.0
        for outcome in ("value", "timeout", "took_over")
    )


async def test_health_serving_and_reflection_off_unless_asked(encoder_server: EncoderServer) -> None:
    assert await health_status(encoder_server.address) == health_pb2.HealthCheckResponse.SERVING
    assert await health_status(encoder_server.address, "sam.v1.Encoder") == health_pb2.HealthCheckResponse.SERVING
    async with grpc.aio.insecure_channel(encoder_server.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            _ = [response async for response in responses]
    # Issue 10, finding 4: reflection was always on (tests/integration/decoder/test_security.py turns it on).
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_triton_runs_the_cpu_config(triton_server: TritonServer) -> None:
    config = triton_server.model_config()
    assert [group["kind"] for group in config["instance_group"]] == ["KIND_CPU"]
    assert config["max_batch_size"] == 4
    batching = config["dynamic_batching"]
    assert batching["max_queue_delay_microseconds"] == 5000
    # Two queues, interactive (1, the default) before bulk (2), each bounded and with a timeout the caller can cut.
    assert (batching["priority_levels"], batching["default_priority_level"]) == (2, 1)
    interactive, bulk = batching["default_queue_policy"], batching["priority_queue_policy"]["2"]
    assert (int(interactive["max_queue_size"]), int(bulk["max_queue_size"])) == (64, 32)
    assert interactive["timeout_action"] == bulk["timeout_action"] == "REJECT"
    assert interactive["allow_timeout_override"] and bulk["allow_timeout_override"]
    assert (int(interactive["default_timeout_microseconds"]), int(bulk["default_timeout_microseconds"])) == (
        60_000_000,
        300_000_000,
    )


async def test_redis_stopped_is_unavailable_and_recovers_without_restart(
    triton_server: TritonServer, encoder_model_id: str
) -> None:
    with RedisServer() as redis_server:
        server = await start_encoder(encoder_settings(redis_server.url, triton_server.grpc_url, encoder_model_id))
        try:
            await wait_for_health(server.address, serving=True)
            async with grpc.aio.insecure_channel(server.address, options=channel_options()) as channel:
                stub = sam_pb2_grpc.EncoderStub(channel)
                assert (await embed_status(stub, new_image_bytes()))[0] == grpc.StatusCode.OK

                redis_server.stop()
                status, details = await embed_status(stub, new_image_bytes())
                assert status == grpc.StatusCode.UNAVAILABLE
                assert "Redis" in details
                await wait_for_health(server.address, serving=False, timeout_seconds=10)

                redis_server.start()
                await wait_for_health(server.address, serving=True, timeout_seconds=10)
                answer = await embed(stub, new_image_bytes())
                assert answer.cached is False
        finally:
            await server.stop(grace_seconds=1.0)


async def test_triton_stopped_is_unavailable_and_recovers_without_restart(
    redis_server: RedisServer, tiny_checkpoint: CheckpointInfo, encoder_model_id: str
) -> None:
    with make_triton_server(tiny_checkpoint) as triton_server:
        server = await start_encoder(encoder_settings(redis_server.url, triton_server.grpc_url, encoder_model_id))
        try:
            await wait_for_health(server.address, serving=True)
            async with grpc.aio.insecure_channel(server.address, options=channel_options()) as channel:
                stub = sam_pb2_grpc.EncoderStub(channel)
                assert (await embed_status(stub, new_image_bytes()))[0] == grpc.StatusCode.OK

                await asyncio.to_thread(triton_server.stop)
                status, details = await embed_status(stub, new_image_bytes())
                assert status == grpc.StatusCode.UNAVAILABLE
                assert "Triton" in details
                await wait_for_health(server.address, serving=False, timeout_seconds=10)

                await asyncio.to_thread(triton_server.start)
                await wait_for_health(server.address, serving=True, timeout_seconds=15)
                answer = await embed(stub, new_image_bytes())
                assert answer.cached is False
        finally:
            await server.stop(grace_seconds=1.0)
