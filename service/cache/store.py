"""Embeddings in Redis: the one module that sends Redis commands. Values under their keys with a TTL, header
reads that refresh the TTL, the removal of a damaged value, and the single-flight lock; every failure to reach Redis
is Unavailable."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.errors import Unavailable
from service.metrics import REDIS_ERRORS, REDIS_SECONDS

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

# Delete the value only if it is still the one the caller read (same SHA-1): a replica may have written a good value
# since, and that one must stay. Runs on the rare damaged value only (hashing 2 MiB takes Redis about 2 ms).
_DELETE_IF_UNCHANGED_SCRIPT = """
local value = redis.call('get', KEYS[1])
if value and redis.sha1hex(value) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def connect_redis(
    url: str, password: str | None = None, timeout_seconds: float = 5.0, ca_file: Path | None = None
) -> aioredis.Redis:
    """A client for `redis://` or `rediss://` (TLS, the server's certificate checked against `ca_file` or the
    system's roots) URLs; `password` overrides one in the URL."""
    options: dict[str, object] = {
        "socket_timeout": timeout_seconds,
        "socket_connect_timeout": timeout_seconds,
        "health_check_interval": 30,
    }
    if password:
        options["password"] = password
    if ca_file is not None:
        if not url.startswith("rediss://"):
            raise ValueError("--redis-tls-ca-file is for rediss:// URLs (Redis over TLS)")
        options["ssl_ca_certs"] = str(ca_file)
    return aioredis.from_url(url, **options)


@dataclass(frozen=True)
class ValuePrefix:
    """The first bytes of a stored value and the whole value's length (0 when there is no value)."""

    prefix: bytes
    value_bytes: int


class EmbeddingStore:
    """GET, SET, DEL and header reads of encoded embeddings (see service.cache.codec), and the lock of
    service.cache.single_flight. Keys are strings built by service.cache.keys."""

    def __init__(self, client: aioredis.Redis, ttl_seconds: int) -> None:
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
        finally:
            REDIS_SECONDS.labels(operation).observe(time.perf_counter() - started)

    async def get(self, key: str) -> bytes | None:
        async with self._timed("get"):
            value = await self._client.get(key)
        return value if value is None or isinstance(value, bytes) else str(value).encode()

    async def get_text(self, key: str) -> str | None:
        """A small text value (a lock's failure record), or None."""
        value = await self.get(key)
        return None if value is None else _text(value)

    async def put(self, key: str, value: bytes) -> None:
        """Store `value` under `key` with the store's TTL (0 means no expiry)."""
        async with self._timed("set"):
            await self._client.set(key, value, ex=self.ttl_seconds or None)

    async def delete(self, key: str) -> bool:
        """Remove `key`; True when it existed."""
        async with self._timed("delete"):
            return bool(await self._client.delete(key))

    async def delete_if_unchanged(self, key: str, value: bytes) -> bool:
        """Remove `key` if it still holds `value` (a damaged value its reader found); True when removed."""
        async with self._timed("delete"):
            removed = await self._client.eval(_DELETE_IF_UNCHANGED_SCRIPT, 1, key, hashlib.sha1(value).hexdigest())
        return bool(removed)

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
        """True when Redis answers."""
        try:
            async with self._timed("ping"):
                return bool(await self._client.ping())
        except Unavailable:
            return False

    async def close(self) -> None:
        await self._client.aclose()


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
