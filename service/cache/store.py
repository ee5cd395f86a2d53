"""Embeddings in Redis: the one module that sends Redis commands. Each embedding is one Redis hash under its image
key (field "h" its header, fields "0".."n-1" its payload chunks: see service.cache.codec), so its TTL, its
eviction and its deletion are atomic for the whole value; header reads refresh the TTL; the single-flight lock is
a side key in the same hash slot, and so is its failure record. A damaged value is removed by the reader that
finds it, unless it was replaced meanwhile. Every failure to reach Redis is Unavailable.

A key that holds something else (a value of the previous codec, a plain string) reads as absent and is replaced
whole by the next put.

One Redis or a Redis Cluster (`redis+cluster://` URLs): every command here names keys of one image only, and those
share a hash tag (service.cache.keys), so each pipeline and script runs on one node and nothing here is a
cross-slot operation.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.cache.codec import EncodedEmbedding
from service.errors import Unavailable
from service.metrics import REDIS_ERRORS, REDIS_SECONDS

log = logging.getLogger(__name__)

# How long close() waits for the client to let go of its connections.
CLOSE_SECONDS: Final = 5.0

# Take the lock (SET PX) when nobody holds it; else answer the holder's token, so a waiter can tell whose
# failure (below) it is reading.
_TAKE_LOCK_SCRIPT = """
local holder = redis.call('get', KEYS[1])
if holder then return holder end
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
# Delete the lock only if it still holds our token: an expired lock may already belong to another replica. With a
# failure record (KEYS[2], ARGV[2]), leave it for the waiters in the same step, so none finds the lock gone without it.
_RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  if #KEYS > 1 then redis.call('set', KEYS[2], ARGV[2], 'PX', ARGV[3]) end
  return redis.call('del', KEYS[1])
end
return 0
"""

# Delete the embedding only if it is still the one the caller read (the SHA-1 of its header then its chunks 0..n-1,
# missing fields as empty): a replica may have written a good value since, and that one must stay. Runs on the rare
# damaged value only (hashing 2 MiB takes Redis about 2 ms).
_DELETE_IF_UNCHANGED_SCRIPT = """
if redis.call('type', KEYS[1])['ok'] ~= 'hash' then return 0 end
local parts = {redis.call('hget', KEYS[1], 'h') or ''}
for index = 0, tonumber(ARGV[2]) - 1 do
  parts[#parts + 1] = redis.call('hget', KEYS[1], tostring(index)) or ''
end
if redis.sha1hex(table.concat(parts)) == ARGV[1] then return redis.call('del', KEYS[1]) end
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


def connect_redis(
    url: str, password: str | None = None, timeout_seconds: float = 5.0, ca_file: Path | None = None
) -> RedisClient:
    """A client for `redis://` or `rediss://` (TLS, the server's certificate checked against `ca_file` or the
    system's roots) URLs, or a Redis Cluster client for `redis+cluster://` or `rediss+cluster://` URLs listing seed
    nodes; `password` overrides one in the URL."""
    options: dict[str, object] = {
        "socket_timeout": timeout_seconds,
        "socket_connect_timeout": timeout_seconds,
        "health_check_interval": 30,
    }
    if password:
        options["password"] = password
    if ca_file is not None:
        if not url.startswith(("rediss://", "rediss+cluster://")):
            raise ValueError("--redis-tls-ca-file is for rediss:// URLs (Redis over TLS)")
        options["ssl_ca_certs"] = str(ca_file)
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


HEADER_FIELD = "h"


def chunk_field(index: int) -> str:
    return str(index)


@dataclass(frozen=True)
class StoredValue:
    """An embedding's fields as stored: its header and its payload chunks in order (None where one is missing)."""

    header: bytes | None
    chunks: list[bytes | None]


@dataclass(frozen=True)
class StoredFields:
    """What a header read finds: the header (None when the key holds no embedding) and how many fields it has."""

    header: bytes | None
    field_count: int


def _is_wrong_type(error: BaseException) -> bool:
    return isinstance(error, ResponseError) and str(error).startswith("WRONGTYPE")


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

    async def get(self, key: str) -> StoredValue | None:
        """The embedding under `key` (one HGETALL), or None when there is none."""
        async with self._timed("get"):
            try:
                fields = await self._client.hgetall(key)
            except ResponseError as error:
                if _is_wrong_type(error):
                    return None
                raise
        if not fields:
            return None
        by_name = {_text(name): _bytes(value) for name, value in fields.items()}
        indexes = [int(name) for name in by_name if name.isdigit()]
        chunks = [by_name.get(chunk_field(index)) for index in range(max(indexes) + 1 if indexes else 0)]
        return StoredValue(by_name.get(HEADER_FIELD), chunks)

    async def get_text(self, key: str) -> str | None:
        """A small text value (a lock's failure record), or None."""
        async with self._timed("get"):
            value = await self._client.get(key)
        return None if value is None else _text(value)

    async def put(self, key: str, value: EncodedEmbedding) -> None:
        """Replace whatever `key` holds by `value`, with the store's TTL (0 means no expiry), in one transaction."""
        mapping: dict[str, bytes] = {HEADER_FIELD: value.header}
        mapping.update({chunk_field(index): chunk for index, chunk in enumerate(value.chunks)})
        async with self._timed("set"):
            async with self._client.pipeline(transaction=True) as pipeline:
                pipeline.delete(key)
                pipeline.hset(key, mapping=mapping)  # type: ignore[arg-type]
                if self.ttl_seconds:
                    pipeline.expire(key, self.ttl_seconds)
                await pipeline.execute()

    async def delete(self, key: str) -> bool:
        """Remove `key`; True when it existed."""
        async with self._timed("delete"):
            return bool(await self._client.delete(key))

    async def delete_if_unchanged(self, key: str, value: StoredValue) -> bool:
        """Remove the embedding under `key` if it still holds `value` (a damaged value its reader found); True when
        removed."""
        content = b"".join((value.header or b"", *(chunk or b"" for chunk in value.chunks)))
        async with self._timed("delete"):
            removed = await self._client.eval(
                _DELETE_IF_UNCHANGED_SCRIPT, 1, key, hashlib.sha1(content).hexdigest(), len(value.chunks)
            )
        return bool(removed)

    async def read_header(self, key: str) -> StoredFields:
        """The embedding's header and field count, refreshing its TTL, in one round trip."""
        async with self._timed("get_header"):
            async with self._client.pipeline(transaction=False) as pipeline:
                pipeline.hget(key, HEADER_FIELD)
                pipeline.hlen(key)
                if self.ttl_seconds:
                    pipeline.expire(key, self.ttl_seconds)
                header, field_count, *_ = await pipeline.execute(raise_on_error=False)
            for result in (header, field_count):
                if _is_wrong_type(result):
                    return StoredFields(None, 0)
                if isinstance(result, Exception):
                    raise result
        return StoredFields(None if header is None else _bytes(header), int(field_count or 0))

    async def take_lock(self, lock_key: str, token: str, ttl_ms: int) -> str | None:
        """Take `lock_key` for `ttl_ms` if it is free: None when this caller now holds it, else the holder's token."""
        async with self._timed("lock"):
            holder = await self._client.eval(_TAKE_LOCK_SCRIPT, 1, lock_key, token, ttl_ms)
        return None if holder is None else _text(holder)

    async def release_lock(self, lock_key: str, token: str, failure: tuple[str, str, int] | None = None) -> None:
        """Delete `lock_key` only if it still holds `token`; with `failure` (key, record, TTL in ms), store that
        record in the same step."""
        async with self._timed("unlock"):
            if failure is None:
                await self._client.eval(_RELEASE_SCRIPT, 1, lock_key, token)
            else:
                failure_key, record, ttl_ms = failure
                await self._client.eval(_RELEASE_SCRIPT, 2, lock_key, failure_key, token, record, ttl_ms)

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
        """Close the connections; a close stuck on a connection still in use is given up after CLOSE_SECONDS."""
        try:
            await asyncio.wait_for(self._client.aclose(), CLOSE_SECONDS)
        except TimeoutError:
            log.warning("the Redis client did not close within %.0f s; leaving its connections", CLOSE_SECONDS)


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()
