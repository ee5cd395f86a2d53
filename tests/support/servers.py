"""Settings and health helpers for tests that start the real services (fixtures live in the conftest files)."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.cache.codec import StoredEmbedding, decode_embedding
from service.cache.store import EmbeddingStore, RedisClient, connect_redis
from service.decoder.settings import DecoderSettings
from service.encoder.settings import EncoderSettings
from service.runtime.checkpoint import CheckpointInfo
from service.triton.launcher import TritonServer
from service.triton.model_config import TritonModel

# The Triton model name the encoder's single-model flags use by default.
SINGLE_MODEL_NAME = "sam_image_encoder"


def make_triton_server(*checkpoints: CheckpointInfo, names: tuple[str, ...] = ()) -> TritonServer:
    """A local CPU tritonserver serving one model per checkpoint (not started), named `names` or, for a single
    checkpoint, as the encoder's single-model flags expect."""
    names = names or (SINGLE_MODEL_NAME,)
    # No model id given: model.py hashes the checkpoint itself, so tests prove both sides agree on the id.
    return TritonServer(
        models=[
            TritonModel(name, checkpoint.arch, str(checkpoint.path))
            for name, checkpoint in zip(names, checkpoints, strict=True)
        ]
    )


def encoder_settings(redis_url: str, triton_url: str, model_id: str | None, **overrides: object) -> EncoderSettings:
    """Settings for a test encoder on a free loopback port, without a metrics port."""
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        "metrics_port": 0,
        "redis_url": redis_url,
        "triton_url": triton_url,
        "model_id": model_id,
        "health_check_seconds": 0.25,
        "triton_timeout_seconds": 30.0,
        "single_flight_wait_seconds": 30.0,
    }
    values.update(overrides)
    return EncoderSettings(**values)  # type: ignore[arg-type]


# Decoder graphs exported by tests: one directory for every test run of this user (a graph's file name names the
# weights, the graph's version and torch's, so a file from an earlier run is the same graph).
TEST_GRAPH_DIR = Path(tempfile.gettempdir()) / f"samsvc-test-decoder-graphs-{os.getuid()}"


def decoder_settings(served: CheckpointInfo, redis_url: str, **overrides: object) -> DecoderSettings:
    """Settings for a test decoder of `served` on a free loopback port, without a metrics port."""
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        "metrics_port": 0,
        "redis_url": redis_url,
        "checkpoint": served.path,
        "model_id": served.model_id,
        "decoder_graph_dir": TEST_GRAPH_DIR,
    }
    values.update(overrides)
    return DecoderSettings(**values)  # type: ignore[arg-type]


async def health_status(address: str, service: str = "") -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service))
        return int(response.status)


async def wait_for_health(address: str, serving: bool, timeout_seconds: float = 30.0) -> None:
    """Return once the server's overall health is SERVING (or NOT_SERVING); fail after the timeout."""
    wanted = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    deadline = time.monotonic() + timeout_seconds
    status = None
    while time.monotonic() < deadline:
        status = await health_status(address)
        if status == wanted:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"health of {address} stayed {status}, wanted {wanted}, for {timeout_seconds} s")


async def read_stored(redis_url: str, image_key: str, model_id: str) -> StoredEmbedding:
    """The embedding stored under `image_key`, read and checked with the service's own store and codec."""
    store = EmbeddingStore(connect_redis(redis_url), ttl_seconds=0)
    try:
        value = await store.get(image_key)
    finally:
        await store.close()
    assert value is not None and value.header is not None, f"nothing stored under {image_key}"
    return decode_embedding(value.header, value.chunks, model_id)


async def damage_a_chunk(redis_client: RedisClient, image_key: str, junk: bytes) -> None:
    """Overwrite bytes in the middle of the first payload chunk, leaving the header as it was."""
    chunk = await redis_client.hget(image_key, "0")
    assert isinstance(chunk, bytes) and len(chunk) > 100_000
    await redis_client.hset(image_key, "0", chunk[:100_000] + junk + chunk[100_000 + len(junk) :])
