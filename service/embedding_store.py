"""Embeddings in Redis: encoded values under their keys, with a TTL; every failure to reach Redis is Unavailable."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.errors import Unavailable
from service.metrics import REDIS_ERRORS, REDIS_SECONDS


def connect_redis(url: str, password: str | None = None, timeout_seconds: float = 5.0) -> aioredis.Redis:
    """A client for `redis://` or `rediss://` (TLS) URLs; `password` overrides one in the URL."""
    options: dict[str, object] = {
        "socket_timeout": timeout_seconds,
        "socket_connect_timeout": timeout_seconds,
        "health_check_interval": 30,
    }
    if password:
        options["password"] = password
    return aioredis.from_url(url, **options)


class EmbeddingStore:
    """GET and SET of encoded embeddings (see embedding_codec) in Redis."""

    def __init__(self, client: aioredis.Redis, ttl_seconds: int) -> None:
        self.client = client
        self.ttl_seconds = ttl_seconds

    @asynccontextmanager
    async def timed(self, operation: str) -> AsyncIterator[None]:
        """Time a Redis call and turn connection failures into Unavailable."""
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
        async with self.timed("get"):
            value = await self.client.get(key)
        return value if value is None or isinstance(value, bytes) else str(value).encode()

    async def put(self, key: str, value: bytes) -> None:
        """Store `value` under `key` with the store's TTL (0 means no expiry)."""
        async with self.timed("set"):
            await self.client.set(key, value, ex=self.ttl_seconds or None)

    async def ping(self) -> bool:
        """True when Redis answers."""
        try:
            async with self.timed("ping"):
                return bool(await self.client.ping())
        except Unavailable:
            return False

    async def close(self) -> None:
        await self.client.aclose()
