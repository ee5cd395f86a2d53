"""Real servers for integration tests: tritonserver with model_repo/ and the tiny checkpoint, and the encoder.

Reused by the decoder's end-to-end tests: `triton_server` (a TritonServer: `.grpc_url`,
`.inference_count()`), `encoder_server` (`.address` = "127.0.0.1:PORT"), `encoder_model_id`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from service.encoder.server import EncoderServer, start_encoder
from service.local.redis_cluster import LocalRedisCluster
from service.local.redis_server import RedisServer
from service.runtime.checkpoint import CheckpointInfo
from service.triton.launcher import TritonServer
from tests.support.servers import encoder_settings, make_triton_server, wait_for_health


@pytest.fixture(scope="session")
def encoder_model_id(tiny_checkpoint: CheckpointInfo) -> str:
    """The model id of the tiny checkpoint: what Triton reports and what encoder keys carry."""
    return tiny_checkpoint.model_id


@pytest.fixture(scope="session")
def triton_server(tiny_checkpoint: CheckpointInfo) -> Iterator[TritonServer]:
    """A real tritonserver (pytriton's binary, CPU config) serving the tiny checkpoint for the session."""
    with make_triton_server(tiny_checkpoint) as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalRedisCluster]:
    """A real Redis Cluster (3 masters, 3 replicas, 24 MB per node so eviction shows) for the session; tests
    that kill a node use `failover_cluster`."""
    with LocalRedisCluster(maxmemory="24mb") as cluster:
        yield cluster


@pytest.fixture
def failover_cluster() -> Iterator[LocalRedisCluster]:
    """A Redis Cluster of the test's own, to crash a master in."""
    with LocalRedisCluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
async def encoder_server(
    redis_server: RedisServer, triton_server: TritonServer, encoder_model_id: str
) -> AsyncIterator[EncoderServer]:
    """The encoder service on a free loopback port, SERVING (Triton model ready, Redis answering)."""
    server = await start_encoder(encoder_settings(redis_server.url, triton_server.grpc_url, encoder_model_id))
    try:
        await wait_for_health(server.address, serving=True)
        yield server
    finally:
        await server.stop(grace_seconds=1.0)
