"""Connecting to Redis: single-node and Redis Cluster URLs (seed nodes, credentials, options), and a connection
lost under a command, which is Unavailable."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from service.cache.store import ClusterUrl, EmbeddingStore, connect_redis, parse_cluster_url
from service.errors import Unavailable


def test_single_node_urls_are_not_cluster_urls() -> None:
    assert parse_cluster_url("redis://127.0.0.1:6379/0") is None
    assert parse_cluster_url("rediss://user:secret@redis.example:6380/0") is None
    assert isinstance(connect_redis("redis://127.0.0.1:6379/0"), Redis)


def test_seed_nodes_credentials_and_options() -> None:
    parsed = parse_cluster_url("rediss+cluster://user:p%40ss@node-a:7000,node-b:7001,[::1]:7002/0?ssl_cert_reqs=none")
    assert parsed == ClusterUrl(
        seeds=(("node-a", 7000), ("node-b", 7001), ("::1", 7002)),
        node_url="rediss://user:p%40ss@node-a:7000?ssl_cert_reqs=none",
    )
    assert parse_cluster_url("redis+cluster://node-a") == ClusterUrl((("node-a", 6379),), "redis://node-a")


def test_a_cluster_client_knows_every_seed_and_the_password() -> None:
    client = connect_redis("redis+cluster://127.0.0.1:7000,127.0.0.1:7001", password="secret")
    assert isinstance(client, RedisCluster)
    assert sorted(node.name for node in client.startup_nodes) == ["127.0.0.1:7000", "127.0.0.1:7001"]
    assert client.connection_kwargs["password"] == "secret"


@pytest.mark.parametrize(
    ("url", "message"),
    [("redis+cluster://node-a:7000/1", "database 0 only"), ("redis+cluster://node-a:7000,,node-b", "has no host")],
)
def test_malformed_cluster_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_cluster_url(url)


class _ClosedUnderTheCommand:
    """A client whose connection was closed under a command, as redis-py 8.1 reports it (redis-py#4287): an
    AttributeError from inside asyncio's stream writer."""

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        asyncio.StreamWriter.writelines(None, [b"HGETALL", key.encode()])  # type: ignore[arg-type]
        return {}


class _Buggy:
    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        return key.not_a_method()  # type: ignore[attr-defined,no-any-return]


async def test_a_connection_closed_under_a_command_is_unavailable_but_our_own_bugs_are_not() -> None:
    with pytest.raises(Unavailable, match="Redis connection lost"):
        await EmbeddingStore(_ClosedUnderTheCommand(), ttl_seconds=60).get("key")  # type: ignore[arg-type]
    with pytest.raises(AttributeError, match="not_a_method"):
        await EmbeddingStore(_Buggy(), ttl_seconds=60).get("key")  # type: ignore[arg-type]
