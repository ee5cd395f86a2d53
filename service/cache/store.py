"""Embeddings in Redis: the one module that sends Redis commands. Values under their keys with a TTL, header
reads that refresh the TTL, and the single-flight lock; every failure to reach Redis is Unavailable.

One Redis or a Redis Cluster (`redis+cluster://` URLs): every command here names keys of one image only, and
those share a hash tag (service.cache.keys), so each pipeline and script runs on one node and nothing here is
a cross-slot operation.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.errors import Unavailable
from service.metrics import REDIS_ERRORS, REDIS_SECONDS

# Delete the lock only if it still holds our token: an expired lock may already belong to another replica.
_RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


RedisClient: TypeAlias = aioredis.Redis | RedisCluster

# Redis Cluster: the scheme names the mode, the seed nodes are a comma-separated list (any one reachable node
# is enough; the client learns the others and the slot map from it, and again after a failover).
CLUSTER_SCHEMES: Final = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
DEFAULT_REDIS_PORT: Final = 6379


@dataclass(frozen=True)
class ClusterUrl:
    """A `redis+cluster://[user:password@]host:port[,host:port...][?options]` URL taken apart: the seed nodes, and
    the first seed as a plain `redis://` (or `rediss://`) URL carrying the credentials and options."""

    seeds: tuple[tuple[str, int], ...]
    node_url: str


def parse_cluster_url(url: str) -> ClusterUrl | None:
    """The parts of a Redis Cluster URL; None for a single-node URL; ValueError for a malformed one."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() not in CLUSTER_SCHEMES:
        return None
    parts = urlsplit(f"{CLUSTER_SCHEMES[scheme.lower()]}://{rest}")
    credentials, _, hosts = parts.netloc.rpartition("@")
    seeds = []
    for seed in hosts.split(","):
        node = urlsplit(f"//{seed.strip()}")
        if not node.hostname:
            raise ValueError(f"Redis Cluster URL: seed node {seed!r} has no host (expected host:port[,host:port...])")
        seeds.append((node.hostname, node.port or DEFAULT_REDIS_PORT))
    if parts.path.strip("/") not in ("", "0"):
        raise ValueError("Redis Cluster URL: a cluster has database 0 only (drop the /N path)")
    first = hosts.split(",")[0].strip()
    netloc = f"{credentials}@{first}" if credentials else first
    return ClusterUrl(tuple(seeds), urlunsplit(parts._replace(netloc=netloc, path="")))


def connect_redis(url: str, password: str | None = None, timeout_seconds: float = 5.0) -> RedisClient:
    """A client for `redis://` or `rediss://` (TLS) URLs, or a Redis Cluster client for `redis+cluster://` or
    `rediss+cluster://` URLs listing seed nodes; `password` overrides one in the URL."""
    options: dict[str, object] = {
        "socket_timeout": timeout_seconds,
        "socket_connect_timeout": timeout_seconds,
        "health_check_interval": 30,
    }
    if password:
        options["password"] = password
    cluster = parse_cluster_url(url)
    if cluster is None:
        return aioredis.from_url(url, **options)
    # MOVED and ASK redirections are followed by the client. On a connection error or CLUSTERDOWN (a master
    # gone, its replica not promoted yet) it reloads the slot map and retries a few times (redis-py's default
    # retry count), then raises: the caller sees Unavailable within about a second and may try again, and
    # once a replica is promoted the reloaded map sends the slot's commands to it. Reads go to masters only:
    # a replica may not have a value its master has just acknowledged.
    return RedisCluster.from_url(
        cluster.node_url,
        startup_nodes=[ClusterNode(host, port) for host, port in cluster.seeds[1:]],
        **options,
    )


def _raised_in_a_connection(error: BaseException) -> bool:
    """True when `error` was raised inside redis-py's or asyncio's connection code (its innermost frame)."""
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and any(part in frames[-1].filename for part in ("/redis/", "/asyncio/"))


@dataclass(frozen=True)
class ValuePrefix:
    """The first bytes of a stored value and the whole value's length (0 when there is no value)."""

    prefix: bytes
    value_bytes: int


class EmbeddingStore:
    """GET, SET, DEL and header reads of encoded embeddings (see service.cache.codec), and the lock of
    service.cache.single_flight. Keys are strings built by service.cache.keys."""

    def __init__(self, client: RedisClient, ttl_seconds: int) -> None:
        self._client = client
        self.ttl_seconds = ttl_seconds

    @asynccontextmanager
    async def _timed(self, operation: str) -> AsyncIterator[None]:
        """Time a Redis call and turn Redis failures into Unavailable."""
        started = time.perf_counter()
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError, OSError) as error:
            REDIS_ERRORS.labels(operation).inc()
            raise Unavailable(f"Redis cannot be reached ({operation}): {error}") from error
        except RedisError as error:
            REDIS_ERRORS.labels(operation).inc()
            raise Unavailable(f"Redis failed ({operation}): {error}") from error
        except (AttributeError, TypeError) as error:
            # redis-py 8.1 lets a connection closed under a command (a node killed, the cluster client dropping
            # its connections on a failover) surface as these from inside its connection code (redis-py#4287,
            # fixed after 8.1.0): a lost connection, not a bug of ours. Anything else is re-raised.
            if not _raised_in_a_connection(error):
                raise
            REDIS_ERRORS.labels(operation).inc()
            raise Unavailable(f"Redis connection lost ({operation}): {error!r}") from error
        finally:
            REDIS_SECONDS.labels(operation).observe(time.perf_counter() - started)

    async def get(self, key: str) -> bytes | None:
        async with self._timed("get"):
            value = await self._client.get(key)
        return value if value is None or isinstance(value, bytes) else str(value).encode()

    async def put(self, key: str, value: bytes) -> None:
        """Store `value` under `key` with the store's TTL (0 means no expiry)."""
        async with self._timed("set"):
            await self._client.set(key, value, ex=self.ttl_seconds or None)

    async def delete(self, key: str) -> bool:
        """Remove `key`; True when it existed."""
        async with self._timed("delete"):
            return bool(await self._client.delete(key))

    async def read_prefix(self, key: str, prefix_bytes: int) -> ValuePrefix:
        """The value's first `prefix_bytes` and its length, refreshing its TTL, in one round trip."""
        async with self._timed("get_header"):
            async with self._client.pipeline(transaction=False) as pipeline:
                pipeline.getrange(key, 0, prefix_bytes - 1)
                pipeline.strlen(key)
                if self.ttl_seconds:
                    pipeline.expire(key, self.ttl_seconds)
                prefix, value_bytes, *_ = await pipeline.execute()
        return ValuePrefix(bytes(prefix or b""), int(value_bytes or 0))

    async def take_lock(self, lock_key: str, token: str, ttl_ms: int) -> bool:
        """SET NX PX: True when this caller now holds `lock_key`."""
        async with self._timed("lock"):
            return bool(await self._client.set(lock_key, token, nx=True, px=ttl_ms))

    async def release_lock(self, lock_key: str, token: str) -> None:
        """Delete `lock_key` only if it still holds `token`."""
        async with self._timed("unlock"):
            await self._client.eval(_RELEASE_SCRIPT, 1, lock_key, token)

    async def ping(self) -> bool:
        """True when Redis answers (in a cluster: the node the client asks first; a cluster missing one master
        still serves the other masters' slots, so its clients should not all turn NOT_SERVING)."""
        try:
            async with self._timed("ping"):
                if isinstance(self._client, RedisCluster):
                    return bool(await self._client.ping(target_nodes=RedisCluster.DEFAULT_NODE))
                return bool(await self._client.ping())
        except Unavailable:
            return False

    async def close(self) -> None:
        await self._client.aclose()
