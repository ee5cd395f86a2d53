"""Through both services with real Triton and Redis: the client embeds, the decoder answers, and a lost
embedding is re-embedded by the client without the caller noticing."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
import redis.asyncio as aioredis

from service.cache.codec import decode_embedding
from service.cache.store import EmbeddingStore
from service.client import AsyncSamClient, SamClient, make_prompt, make_request, mask_of
from service.decoder.server import DecoderServer
from service.encoder.server import EncoderServer
from service.local.redis_server import RedisServer
from service.runtime.checkpoint import CheckpointInfo
from service.runtime.image_file import decode_image
from tests.numerical_contract import reference_sam
from tests.support.amg import assert_matches_everything, reference_everything
from tests.support.oracles import Oracle
from tests.support.reference import Reference, assert_matches_reference, make_test_image
from tests.support.servers import damage_a_chunk, read_stored

pytestmark = pytest.mark.slow


async def _reference_of_stored(
    oracle: Oracle, store: EmbeddingStore, image_key: str, image_bytes: bytes, model_id: str
) -> Reference:
    """The reference on the decoded image, with the rounded tensors read back from what the encoder stored."""
    value = await store.get(image_key)
    assert value is not None and value.header is not None
    return Reference.of(oracle, decode_image(image_bytes), decode_embedding(value.header, value.chunks, model_id))


async def test_embed_then_segment_matches_reference(
    encoder_server: EncoderServer,
    decoder_server: DecoderServer,
    redis_client: aioredis.Redis,
    tiny_oracle: Oracle,
    embedding_store: EmbeddingStore,
) -> None:
    _, image_bytes = make_test_image(72, 96, seed=30)
    async with AsyncSamClient(encoder_server.address, decoder_server.target) as client:
        image = await client.embed(image_bytes)
        assert image.original_size == (72, 96) and image.model == decoder_server.model_id
        reference = await _reference_of_stored(
            tiny_oracle, embedding_store, image.image_key, image_bytes, decoder_server.model_id
        )
        clicks = np.array([[40.0, 30.0], [70.0, 50.0]])
        labels = np.array([1, 0])
        box = np.array([10.0, 10.0, 80.0, 60.0])
        async with client.open_stream() as stream:
            points_answer = await stream.segment(
                image,
                [make_prompt(points=[(40, 30, 1), (70, 50, 0)]), make_prompt(box=(10, 10, 80, 60))],
                multimask_output=True,
                return_logits=True,
            )
            refined = await stream.segment(
                image,
                [make_prompt(points=[(40, 30, 1), (70, 50, 0)], previous=True)],
                multimask_output=False,
                return_logits=True,
            )
    assert len(points_answer.objects[0].masks) == 3 and len(refined.objects[0].masks) == 1
    first_logits = assert_matches_reference(
        points_answer.objects[0], reference, point_coords=clicks, point_labels=labels, multimask_output=True
    )
    assert_matches_reference(points_answer.objects[1], reference, box=box, multimask_output=True)
    _, first_scores, _ = reference.predict(
        reference.rounded, point_coords=clicks, point_labels=labels, multimask_output=True
    )
    prior = first_logits[int(np.argmax(first_scores))][None]
    assert_matches_reference(
        refined.objects[0],
        reference,
        point_coords=clicks,
        point_labels=labels,
        mask_input=prior,
        multimask_output=False,
    )


async def test_client_reembeds_a_lost_embedding(
    encoder_server: EncoderServer, decoder_server: DecoderServer, redis_client: aioredis.Redis
) -> None:
    """The key is deleted from Redis (expired, evicted) and dropped from the decoder's LRU (another replica):
    the decoder answers NOT_FOUND in-band, the client embeds again and the caller gets the same answer."""
    _, image_bytes = make_test_image(50, 70, seed=31)
    prompt = [make_prompt(points=[(20, 25, 1)])]
    async with AsyncSamClient(encoder_server.address, decoder_server.target) as client:
        image = await client.embed(image_bytes)
        async with client.open_stream() as stream:
            before = await stream.segment(image, prompt, multimask_output=True)
            assert await redis_client.delete(image.image_key) == 1
            decoder_server.source.lru.discard(image.image_key)
            after = await stream.segment(image, prompt, multimask_output=True)
            assert client.reembeddings == 1
            assert await redis_client.exists(image.image_key) == 1
            # A bare key cannot be re-embedded: the client reports the NOT_FOUND as it came.
            await redis_client.delete(image.image_key)
            decoder_server.source.lru.discard(image.image_key)
            bare = await stream.segment(image.image_key, prompt, raise_on_error=False)
    assert after.objects == before.objects and after.image_key == image.image_key
    assert bare.error.code == 5 and image.image_key in bare.error.message


async def test_a_damaged_cache_entry_heals(
    encoder_server: EncoderServer,
    decoder_server: DecoderServer,
    redis_client: aioredis.Redis,
    redis_server: RedisServer,
) -> None:
    """Issue 10, finding 1: `SETRANGE <key> 100000 XXXX` (the header still fine) gave DATA_LOSS on Segment, Embed then
    answered `cached` from the header, and Segment failed again for as long as hits refreshed the TTL. Now the decoder
    answers DATA_LOSS in-band and removes the value, the next Embed encodes again, and Segment answers. (Values are
    hashes now: the damage goes into a payload chunk, the header field untouched.)"""
    _, image_bytes = make_test_image(48, 64, seed=33)
    prompt = [make_prompt(points=[(20, 25, 1)])]
    async with AsyncSamClient(encoder_server.address, decoder_server.target) as client:
        image = await client.embed(image_bytes)
        await damage_a_chunk(redis_client, image.image_key, b"XXXX")
        async with client.open_stream() as stream:
            damaged = await stream.exchange(make_request(image.image_key, prompt, request_id="1"))
            assert (damaged.error.code, damaged.error.field) == (grpc.StatusCode.DATA_LOSS.value[0], "image_key")
            assert "fails its checksum" in damaged.error.message
            again = await client.embed(image_bytes)
            assert again.cached is False and again.image_key == image.image_key
            healed = await stream.exchange(make_request(image.image_key, prompt, request_id="2"))
            assert not healed.HasField("error") and len(healed.objects) == 1

            # The client library does the same by itself: it re-embeds and retries once, as on NOT_FOUND.
            await damage_a_chunk(redis_client, image.image_key, b"YYYY")
            decoder_server.source.lru.discard(image.image_key)
            answer = await stream.segment(image, prompt)
            assert client.reembeddings == 1 and len(answer.objects) == 1
    stored = await read_stored(redis_server.url, image.image_key, decoder_server.model_id)
    assert stored.info.original_size == (48, 64)


async def test_blocking_client_through_both_services(
    encoder_server: EncoderServer, decoder_server: DecoderServer
) -> None:
    """The CLI's client: embed, then a stream of two requests, from a thread (the servers run on this loop)."""
    _, image_bytes = make_test_image(40, 60, seed=32)

    def use_blocking_client() -> tuple[list[np.ndarray], list[np.ndarray], str]:
        with SamClient(encoder_server.address, decoder_server.target) as client:
            image = client.embed(image_bytes)
            with client.open_stream(timeout_seconds=120) as stream:
                first = stream.segment(image, [make_prompt(points=[(30, 20, 1)])], multimask_output=True)
                second = stream.segment(image, [make_prompt(points=[(30, 20, 1)], previous=True)])
            return (
                [mask_of(mask) for mask in first.objects[0].masks],
                [mask_of(mask) for mask in second.objects[0].masks],
                image.image_key,
            )

    first, second, image_key = await asyncio.to_thread(use_blocking_client)
    assert len(first) == 3 and len(second) == 1 and first[0].shape == (40, 60)
    assert image_key.startswith(f"sam:{decoder_server.model_id}:")


async def test_segment_everything_through_both_services_matches_the_generator(
    encoder_server: EncoderServer,
    decoder_server: DecoderServer,
    embedding_store: EmbeddingStore,
    tiny_checkpoint: CheckpointInfo,
) -> None:
    """Embed through Triton, then SegmentEverything: AMG's masks on the embedding the encoder stored."""
    rgb, image_bytes = make_test_image(90, 120, seed=31)
    parameters = {"points_per_side": 5, "pred_iou_thresh": 0.05, "stability_score_thresh": 0.005, "box_nms_thresh": 1.0}
    async with AsyncSamClient(encoder_server.address, decoder_server.target) as client:
        image = await client.embed(image_bytes)
        value = await embedding_store.get(image.image_key)
        assert value is not None and value.header is not None
        stored = decode_embedding(value.header, value.chunks, decoder_server.model_id)
        expected = reference_everything(reference_sam(tiny_checkpoint), decode_image(image_bytes), stored, **parameters)
        ours = await client.segment_everything(image, timeout_seconds=120, **parameters)
    assert len(ours) >= 5
    assert_matches_everything(ours, expected)
