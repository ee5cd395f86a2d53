"""Decoder fixtures: a real decoder server on a free loopback port over the session's real Redis.

Embeddings are put into Redis the way the encoder stores them (ImageEncoderRole + codec), so these tests
do not depend on the encoder service; the end-to-end tests through both services are in test_end_to_end.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from service.cache.store import EmbeddingStore, connect_redis
from service.client import AsyncSamClient
from service.decoder.server import DecoderServer, start_decoder_server
from service.local.redis_server import RedisServer
from service.runtime.checkpoint import CheckpointInfo
from service.runtime.image_encoder import ImageEncoderRole
from service.runtime.prompt_decoder import PromptDecoderRole
from tests.support.oracles import Oracle, oracle_for
from tests.support.reference import Reference, StoredImage, StoreImage, embed_for_redis, make_test_image
from tests.support.servers import decoder_settings


@pytest.fixture(scope="session")
def tiny_oracle(tiny_checkpoint: CheckpointInfo) -> Oracle:
    """The reference predictor of the tiny checkpoint (its model built once)."""
    return oracle_for(tiny_checkpoint)


@pytest.fixture(scope="session")
def image_encoder_role(tiny_checkpoint: CheckpointInfo) -> ImageEncoderRole:
    return ImageEncoderRole(tiny_checkpoint)


@pytest.fixture(scope="session")
def decoder_role(tiny_checkpoint: CheckpointInfo) -> PromptDecoderRole:
    return PromptDecoderRole(tiny_checkpoint)


@pytest.fixture(scope="session")
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A plain Redis client, for tests to put values in and look at them as the services cannot."""
    client = aioredis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
async def embedding_store(redis_server: RedisServer) -> AsyncIterator[EmbeddingStore]:
    """The service's own store over the session's Redis, for putting embeddings in as the encoder does."""
    store = EmbeddingStore(connect_redis(redis_server.url), ttl_seconds=0)
    yield store
    await store.close()


@pytest.fixture(scope="session")
def store_image(
    tiny_checkpoint: CheckpointInfo,
    image_encoder_role: ImageEncoderRole,
    tiny_oracle: Oracle,
    embedding_store: EmbeddingStore,
) -> StoreImage:
    """Embed a seeded image, put it into the real Redis, and return it with its reference predictors."""
    made: dict[tuple[int, int, int], tuple[StoredImage, Reference]] = {}

    async def store(height: int = 60, width: int = 80, seed: int = 0) -> tuple[StoredImage, Reference]:
        if (height, width, seed) not in made:
            rgb, image_bytes = make_test_image(height, width, seed)
            image = embed_for_redis(image_encoder_role, tiny_checkpoint.model_id, rgb, image_bytes)
            made[(height, width, seed)] = (image, Reference.of(tiny_oracle, rgb, image.stored))
        image, reference = made[(height, width, seed)]
        await embedding_store.put(image.image_key, image.encoded)
        return image, reference

    return store


@pytest.fixture(scope="session")
async def decoder_server(
    tiny_checkpoint: CheckpointInfo, redis_server: RedisServer, decoder_role: PromptDecoderRole
) -> AsyncIterator[DecoderServer]:
    server = await start_decoder_server(decoder_settings(tiny_checkpoint, redis_server.url), [decoder_role])
    yield server
    await server.stop(grace_seconds=1)


@pytest.fixture(scope="session")
async def torch_decoder_server(
    tiny_checkpoint: CheckpointInfo, redis_server: RedisServer, decoder_role: PromptDecoderRole
) -> AsyncIterator[DecoderServer]:
    """A decoder on the torch backend (the oracle's own modules), beside the default onnx one."""
    settings = decoder_settings(tiny_checkpoint, redis_server.url, decoder_backend="torch")
    server = await start_decoder_server(settings, [decoder_role])
    yield server
    await server.stop(grace_seconds=1)


@pytest.fixture
async def decoder_client(decoder_server: DecoderServer) -> AsyncIterator[AsyncSamClient]:
    async with AsyncSamClient(decoder_target=decoder_server.target) as client:
        yield client
