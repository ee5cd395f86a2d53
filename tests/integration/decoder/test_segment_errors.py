"""Bad requests are answered in-band with their status, field and message, and the stream lives on;
failures of the service itself (Redis down, a corrupt cache entry) end the stream with their status."""

from __future__ import annotations

import asyncio
import math

import grpc
import numpy as np
import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from service._proto.sam.v1 import sam_pb2
from service.cache.keys import image_key_of
from service.cache.store import EmbeddingStore, StoredValue, connect_redis
from service.client import AsyncSamClient, make_prompt, make_request
from service.decoder.server import start_decoder_server
from service.errors import MAX_ECHOED_CHARACTERS
from service.local.redis_server import RedisServer
from service.runtime.checkpoint import CheckpointInfo
from service.runtime.prompt_decoder import PromptDecoderRole
from tests.support.reference import StoreImage
from tests.support.servers import decoder_settings, wait_for_health

INVALID = grpc.StatusCode.INVALID_ARGUMENT.value[0]
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
DATA_LOSS = grpc.StatusCode.DATA_LOSS.value[0]

GOOD = make_prompt(points=[(20, 20, 1)])


def _logits(height: int = 256, width: int = 256, count: int = 1, data: bytes | None = None) -> sam_pb2.Prompt:
    prompt = make_prompt(points=[(20, 20, 1)])
    logits = prompt.mask_input.logits
    logits.size.height, logits.size.width, logits.count = height, width, count
    logits.data = data if data is not None else np.zeros(count * height * width, "<f4").tobytes()
    return prompt


# (case, prompts, code, field, words in the message); the image is 60 x 80 (rows x columns).
BAD_PROMPTS = [
    ("no prompts", [], INVALID, "prompts", "at least one"),
    ("no point and no box", [sam_pb2.Prompt()], INVALID, "prompts[0]", "point or a box"),
    ("NaN x", [make_prompt(points=[(math.nan, 5, 1)])], INVALID, "prompts[0].points[0].x", "finite"),
    ("infinite y", [GOOD, make_prompt(points=[(5, math.inf, 1)])], INVALID, "prompts[1].points[0].y", "finite"),
    ("infinite box", [make_prompt(box=(0, 0, math.inf, 10))], INVALID, "prompts[0].box.x1", "finite"),
    ("label 2", [make_prompt(points=[(5, 5, 1), (6, 6, 2)])], INVALID, "prompts[0].points[1].label", "must be 1"),
    ("label -1", [make_prompt(points=[(5, 5, -1)])], INVALID, "prompts[0].points[0].label", "must be 1"),
    ("inverted box", [make_prompt(box=(50, 10, 20, 40))], INVALID, "prompts[0].box", "inverted"),
    ("x outside", [make_prompt(points=[(85, 5, 1)])], INVALID, "prompts[0].points[0].x", "outside"),
    ("y below zero", [make_prompt(points=[(5, -3, 1)])], INVALID, "prompts[0].points[0].y", "outside"),
    ("box outside", [make_prompt(box=(0, 0, 40, 70))], INVALID, "prompts[0].box.y1", "outside"),
    ("too many points", [make_prompt(points=[(5, 5, 1)] * 65)], EXHAUSTED, "prompts[0].points", "limit of 64"),
    ("too many objects", [GOOD] * 17, EXHAUSTED, "prompts", "limit of 16"),
    ("logits 128x128", [_logits(128, 128)], INVALID, "prompts[0].mask_input.logits.size", "256x256"),
    ("logits count 3", [_logits(count=3)], INVALID, "prompts[0].mask_input.logits.count", "exactly 1"),
    ("logits short", [_logits(data=b"\0" * 1000)], INVALID, "prompts[0].mask_input.logits.data", "1000 bytes"),
    (
        "logits NaN",
        [_logits(data=np.full(256 * 256, np.nan, "<f4").tobytes())],
        INVALID,
        "prompts[0].mask_input",
        "NaN",
    ),
    ("previous, object 1 of 1", [GOOD, make_prompt(points=[(5, 5, 1)], previous=True)], INVALID,
     "prompts[1].mask_input.previous", "object 1"),
]  # fmt: skip


async def test_every_bad_prompt_is_answered_in_band_and_the_stream_lives_on(
    decoder_client: AsyncSamClient, store_image: StoreImage
) -> None:
    image, _ = await store_image(60, 80, seed=1)
    async with decoder_client.open_stream() as stream:
        # One good answer first, so `previous` has a last answer (with one object) to refer to.
        await stream.segment(image.image_key, [GOOD])
        for number, (case, prompts, code, field, words) in enumerate(BAD_PROMPTS):
            request_id = f"bad-{number}"
            answer = await stream.exchange(make_request(image.image_key, prompts, request_id=request_id))
            assert answer.request_id == request_id, case
            assert answer.HasField("error"), case
            assert (answer.error.code, answer.error.field) == (code, field), case
            assert words in answer.error.message, (case, answer.error.message)
            assert not answer.objects, case
            good = await stream.exchange(make_request(image.image_key, [GOOD], request_id=f"good-{number}"))
            assert not good.HasField("error") and len(good.objects) == 1, case
            assert good.request_id == f"good-{number}"


async def test_previous_without_an_answer_and_across_images(
    decoder_client: AsyncSamClient, store_image: StoreImage
) -> None:
    first, _ = await store_image(60, 80, seed=1)
    second, _ = await store_image(60, 80, seed=2)
    refine = make_prompt(points=[(20, 20, 1)], previous=True)
    async with decoder_client.open_stream() as stream:
        answer = await stream.exchange(make_request(first.image_key, [refine]))
        assert (answer.error.code, answer.error.field) == (INVALID, "prompts[0].mask_input.previous")
        assert "answered nothing" in answer.error.message
        await stream.segment(first.image_key, [GOOD])
        answer = await stream.exchange(make_request(second.image_key, [refine]))
        assert (answer.error.code, answer.error.field) == (INVALID, "prompts[0].mask_input.previous")
        assert first.image_key in answer.error.message
        # A failed request does not replace the session: refining the first image still works.
        assert not (await stream.exchange(make_request(first.image_key, [refine]))).HasField("error")


async def test_keys_unknown_malformed_of_another_model_and_bad_format(
    decoder_client: AsyncSamClient, store_image: StoreImage, tiny_checkpoint: CheckpointInfo
) -> None:
    image, _ = await store_image(60, 80, seed=1)
    unknown = str(image_key_of(tiny_checkpoint.model_id, b"never embedded"))
    other_model = str(image_key_of("vit_b-0123456789abcdef", image.image_bytes))
    before = REGISTRY.get_sample_value("sam_decoder_request_errors_total", {"code": "NOT_FOUND"}) or 0.0
    async with decoder_client.open_stream() as stream:
        answer = await stream.exchange(make_request(unknown, [GOOD], request_id="unknown"))
        assert (answer.error.code, answer.error.field, answer.request_id) == (NOT_FOUND, "image_key", "unknown")
        assert unknown in answer.error.message and answer.image_key == unknown
        answer = await stream.exchange(make_request("not-a-key", [GOOD]))
        assert (answer.error.code, answer.error.field) == (INVALID, "image_key")
        assert "not-a-key" in answer.error.message
        answer = await stream.exchange(make_request("", [GOOD]))
        assert (answer.error.code, answer.error.field) == (INVALID, "image_key")
        answer = await stream.exchange(make_request(other_model, [GOOD]))
        assert (answer.error.code, answer.error.field) == (NOT_FOUND, "image_key")
        assert "vit_b-0123456789abcdef" in answer.error.message and tiny_checkpoint.model_id in answer.error.message
        answer = await stream.exchange(make_request(image.image_key, [GOOD], mask_format=99))
        assert (answer.error.code, answer.error.field) == (INVALID, "format")
        assert not (await stream.exchange(make_request(image.image_key, [GOOD]))).HasField("error")
    after = REGISTRY.get_sample_value("sam_decoder_request_errors_total", {"code": "NOT_FOUND"})
    assert after == before + 2


async def test_a_long_image_key_is_echoed_cut(decoder_client: AsyncSamClient, store_image: StoreImage) -> None:
    """Issue 10, finding 3: a 10 KB image_key came back whole, in the answer's image_key and its message."""
    image, _ = await store_image(60, 80, seed=1)
    long_key = "sam:" + "k" * 10_000
    async with decoder_client.open_stream() as stream:
        answer = await stream.exchange(make_request(long_key, [GOOD], request_id="long"))
        assert (answer.error.code, answer.error.field, answer.request_id) == (INVALID, "image_key", "long")
        assert len(answer.image_key) <= MAX_ECHOED_CHARACTERS
        assert len(answer.error.message) < 2 * MAX_ECHOED_CHARACTERS + 100
        assert not (await stream.exchange(make_request(image.image_key, [GOOD]))).HasField("error")


async def test_a_damaged_cache_entry_is_answered_in_band_and_removed(
    decoder_client: AsyncSamClient,
    redis_client: aioredis.Redis,
    tiny_checkpoint: CheckpointInfo,
    store_image: StoreImage,
) -> None:
    """Issue 10, deliverable 5: a damaged value is a fault of its key, not of the service: DATA_LOSS in-band, the value
    removed (so the next Embed encodes again), and the stream with its `previous` mask lives on."""
    image, _ = await store_image(60, 80, seed=1)
    key = str(image_key_of(tiny_checkpoint.model_id, b"corrupt entry"))
    await redis_client.hset(key, mapping={"h": b"SAMEMB\r\n garbage" + bytes(32), "0": b"x"})
    before = REGISTRY.get_sample_value("sam_decoder_redis_fetches_total", {"result": "damaged"}) or 0.0
    async with decoder_client.open_stream() as stream:
        await stream.segment(image.image_key, [GOOD])
        answer = await stream.exchange(make_request(key, [GOOD], request_id="damaged"))
        assert (answer.error.code, answer.error.field, answer.request_id) == (DATA_LOSS, "image_key", "damaged")
        assert "codec version" in answer.error.message and "removed" in answer.error.message
        assert await redis_client.exists(key) == 0
        refined = await stream.exchange(
            make_request(image.image_key, [make_prompt(points=[(20, 20, 1)], previous=True)])
        )
        assert not refined.HasField("error") and len(refined.objects) == 1
    after = REGISTRY.get_sample_value("sam_decoder_redis_fetches_total", {"result": "damaged"})
    assert after == before + 1


async def test_a_damaged_value_replaced_meanwhile_is_left_alone(
    redis_server: RedisServer, redis_client: aioredis.Redis, store_image: StoreImage
) -> None:
    """The reader removes the value it found damaged, never a good one a replica wrote since."""
    image, _ = await store_image(60, 80, seed=3)
    store = EmbeddingStore(connect_redis(redis_server.url), ttl_seconds=0)
    try:
        value = await store.get(image.image_key)
        assert value is not None
        damaged = StoredValue(value.header, [value.chunks[0][:-4] + b"XXXX", *value.chunks[1:]])  # type: ignore[index]
        assert await store.delete_if_unchanged(image.image_key, damaged) is False
        assert await redis_client.exists(image.image_key) == 1
        assert await store.delete_if_unchanged(image.image_key, value) is True
        assert await redis_client.exists(image.image_key) == 0
    finally:
        await store.close()


async def test_a_value_of_the_previous_codec_reads_as_not_found(
    decoder_client: AsyncSamClient, redis_client: aioredis.Redis, tiny_checkpoint: CheckpointInfo
) -> None:
    """Version 1 stored one string per key; it is a miss, never garbage, and the client's re-embed replaces it."""
    key = str(image_key_of(tiny_checkpoint.model_id, b"an old value"))
    await redis_client.set(key, b"SAMEMB\r\n\x01\x00" + bytes(100))
    async with decoder_client.open_stream() as stream:
        answer = await stream.exchange(make_request(key, [GOOD]))
        assert (answer.error.code, answer.error.field) == (NOT_FOUND, "image_key")


async def test_redis_down_ends_the_stream_unavailable(
    tiny_checkpoint: CheckpointInfo, decoder_role: PromptDecoderRole, store_image: StoreImage
) -> None:
    """A Redis of its own, stopped under a running decoder: the next lookup that misses the LRU ends the stream."""
    image, _ = await store_image(60, 80, seed=1)
    with RedisServer() as own_redis:
        server = await start_decoder_server(decoder_settings(tiny_checkpoint, own_redis.url), [decoder_role])
        try:
            own_redis.stop()
            async with AsyncSamClient(decoder_target=server.target) as client:
                stream = client.open_stream()
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await asyncio.wait_for(stream.exchange(make_request(image.image_key, [GOOD])), timeout=30)
                assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "Redis" in (raised.value.details() or "")
                await stream.close()
        finally:
            await server.stop(grace_seconds=1)


async def test_health_follows_redis(tiny_checkpoint: CheckpointInfo, decoder_role: PromptDecoderRole) -> None:
    """NOT_SERVING while Redis is down, SERVING again when it returns, without a restart."""
    with RedisServer() as own_redis:
        settings = decoder_settings(tiny_checkpoint, own_redis.url, health_check_seconds=0.2)
        server = await start_decoder_server(settings, [decoder_role])
        try:
            await wait_for_health(server.target, serving=True)
            own_redis.stop()
            await wait_for_health(server.target, serving=False)
            own_redis.start()
            await wait_for_health(server.target, serving=True)
        finally:
            await server.stop(grace_seconds=1)
