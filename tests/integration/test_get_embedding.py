"""Encoder/GetEmbedding through a real encoder, Triton and Redis: the stored tensors and sizes come back as stored,
behind the token, with another tenant's key answered exactly as an unknown key, and a damaged value as DATA_LOSS."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from service.cache.keys import parse_image_key
from service.client import AsyncSamClient, SamClient
from service.encoder.server import EncoderServer, start_encoder
from service.local.redis_server import RedisServer
from service.runtime.checkpoint import CheckpointInfo
from service.triton.launcher import TritonServer
from tests.support.reference import make_test_image
from tests.support.servers import damage_a_chunk, encoder_settings, read_stored, wait_for_health

pytestmark = pytest.mark.slow

RADIOLOGY, PATHOLOGY = "radiology-token-0c4d2e", "pathology-token-9f1a7b"


def _requests(result: str) -> float:
    return REGISTRY.get_sample_value("sam_encoder_get_embedding_requests_total", {"result": result}) or 0.0


async def _status(client: AsyncSamClient, image_key: str) -> tuple[grpc.StatusCode, str]:
    try:
        await client.get_embedding(image_key)
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


async def test_the_stored_tensors_and_sizes_come_back(
    encoder_server: EncoderServer, redis_server: RedisServer, encoder_model_id: str
) -> None:
    _, image_bytes = make_test_image(70, 110, seed=91)
    found_before = _requests("found")
    async with AsyncSamClient(encoder_server.address) as client:
        image = await client.embed(image_bytes)
        embedding = await client.get_embedding(image.image_key)
    stored = await read_stored(redis_server.url, image.image_key, encoder_model_id)
    assert (embedding.image_key, embedding.model) == (image.image_key, encoder_model_id)
    assert embedding.original_size == (70, 110) == stored.info.original_size
    assert (
        embedding.input_size == stored.info.input_size == (652, 1024)
    )  # tiny SAM: longest side to 1024, 70 x 1024 / 110 rounded
    assert list(embedding.tensors) == list(stored.tensors) == ["image_embeddings"]
    tensor = embedding.tensors["image_embeddings"]
    assert (tensor.dtype, tensor.shape) == (np.dtype("float16"), (256, 64, 64))
    assert np.array_equal(tensor, stored.tensors["image_embeddings"])
    assert _requests("found") == found_before + 1
    # The blocking client reads the same (from a thread: the server runs on this loop).

    def read_blocking() -> np.ndarray:
        with SamClient(encoder_server.address) as blocking:
            return blocking.get_embedding(image.image_key).tensors["image_embeddings"]

    assert np.array_equal(await asyncio.to_thread(read_blocking), tensor)


async def test_unknown_malformed_and_other_model_keys(encoder_server: EncoderServer, encoder_model_id: str) -> None:
    unknown = f"sam:{encoder_model_id}:{{{'ab' * 32}}}"
    other_model = f"sam:sam-vit_b-0123456789abcdef:{{{'ab' * 32}}}"
    not_found_before = _requests("not_found")
    async with AsyncSamClient(encoder_server.address) as client:
        code, details = await _status(client, unknown)
        assert code == grpc.StatusCode.NOT_FOUND and "not in the cache" in details
        assert (await _status(client, other_model))[0] == grpc.StatusCode.NOT_FOUND
        code, details = await _status(client, "not a key")
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "image_key" in details
    assert _requests("not_found") == not_found_before + 2


async def test_a_damaged_value_is_data_loss_and_removed(
    encoder_server: EncoderServer, redis_server: RedisServer
) -> None:
    _, image_bytes = make_test_image(40, 60, seed=92)
    async with AsyncSamClient(encoder_server.address) as client:
        image = await client.embed(image_bytes)
        redis_client = aioredis.from_url(redis_server.url)
        try:
            await damage_a_chunk(redis_client, image.image_key, b"\x00" * 64)
            damaged_before = _requests("damaged")
            code, details = await _status(client, image.image_key)
            assert code == grpc.StatusCode.DATA_LOSS and "embed the image again" in details
            assert _requests("damaged") == damaged_before + 1
            assert await redis_client.exists(image.image_key) == 0
        finally:
            await redis_client.aclose()
        assert (await _status(client, image.image_key))[0] == grpc.StatusCode.NOT_FOUND
        # Embedding the image again mends it.
        assert (await client.embed(image_bytes)).cached is False
        assert (await client.get_embedding(image.image_key)).tensors


@pytest.fixture(scope="module")
async def tenant_encoder(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServer,
    triton_server: TritonServer,
    tiny_checkpoint: CheckpointInfo,
) -> AsyncIterator[EncoderServer]:
    tokens_file: Path = tmp_path_factory.mktemp("get-embedding") / "tokens"
    tokens_file.write_text(f"{RADIOLOGY} radiology\n{PATHOLOGY} pathology\n")
    async with contextlib.AsyncExitStack() as running:
        server = await start_encoder(
            encoder_settings(
                redis_server.url, triton_server.grpc_url, tiny_checkpoint.model_id, auth_tokens_file=tokens_file
            )
        )
        running.push_async_callback(server.stop, grace_seconds=0.5)
        await wait_for_health(server.address, serving=True)
        yield server


async def test_another_tenants_key_is_not_found_as_an_unknown_key(tenant_encoder: EncoderServer) -> None:
    _, image_bytes = make_test_image(40, 60, seed=93)
    async with (
        AsyncSamClient(tenant_encoder.address, token=RADIOLOGY) as radiology,
        AsyncSamClient(tenant_encoder.address, token=PATHOLOGY) as pathology,
        AsyncSamClient(tenant_encoder.address, token="") as anonymous,
    ):
        image = await radiology.embed(image_bytes)
        assert parse_image_key(image.image_key).tenant == "radiology"
        assert (await radiology.get_embedding(image.image_key)).tensors
        # The same key text with one digit changed does not exist for anyone: pathology's answer for radiology's
        # real key is that answer, word for word (but for the key it quotes).
        digest_end = image.image_key.rindex("}")
        unknown = image.image_key[: digest_end - 1] + ("0" if image.image_key[digest_end - 1] != "0" else "1") + "}"
        other_code, other_details = await _status(pathology, image.image_key)
        unknown_code, unknown_details = await _status(radiology, unknown)
        assert other_code == unknown_code == grpc.StatusCode.NOT_FOUND
        assert other_details.replace(image.image_key, "KEY") == unknown_details.replace(unknown, "KEY")
        assert (await _status(anonymous, image.image_key))[0] == grpc.StatusCode.UNAUTHENTICATED
