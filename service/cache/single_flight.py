"""One computation per key across every replica: a Redis `SET NX PX` lock, the others poll for the value.

The holder of the lock (an image key's side key, service.cache.keys) computes and stores the value, then
deletes the lock (only if it still holds its own token). Waiters poll for a usable value (the caller's cheap `ready` check, so a damaged value left
in Redis does not count); when the lock disappears without one (the holder failed, or died and its lock
expired) one waiter takes the lock over and computes. Waits are bounded.
"""

from __future__ import annotations

import asyncio
import enum
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from service.cache.store import EmbeddingStore
from service.encoder.metrics import SINGLE_FLIGHT_WAIT_SECONDS, SINGLE_FLIGHT_WAITS
from service.errors import Unavailable

T = TypeVar("T")


class Outcome(enum.Enum):
    LED = "led"  # this call took the lock at once and computed
    VALUE = "value"  # another call computed; the value is in Redis now
    TOOK_OVER = "took_over"  # the holder went away without a value; this call computed
    TIMEOUT = "timeout"  # the bounded wait ran out first


@dataclass(frozen=True)
class FlightResult(Generic[T]):
    outcome: Outcome
    value: T | None  # what `compute` (LED, TOOK_OVER) or `ready` (VALUE) returned; None on TIMEOUT


class SingleFlight:
    """Runs `compute` under a lock key at most once at a time across every process sharing the Redis."""

    def __init__(self, store: EmbeddingStore, lock_ttl_seconds: float, poll_seconds: float = 0.05) -> None:
        self.store = store
        # The lock outlives the longest legitimate computation, and no longer: a dead holder blocks others
        # for at most this long.
        self.lock_ttl_ms = max(1, int(lock_ttl_seconds * 1000))
        self.poll_seconds = poll_seconds

    async def run(
        self,
        lock_key: str,
        compute: Callable[[], Awaitable[T]],
        ready: Callable[[], Awaitable[T | None]],
        wait_seconds: float,
    ) -> FlightResult[T]:
        """Compute under the lock, or wait up to `wait_seconds` until `ready()` gives the value someone computed."""
        token = secrets.token_hex(16)
        if await self.store.take_lock(lock_key, token, self.lock_ttl_ms):
            return FlightResult(Outcome.LED, await self._compute_and_release(lock_key, token, compute))
        started = time.monotonic()
        outcome, value = await self._wait(lock_key, token, compute, ready, started + max(wait_seconds, 0.0))
        SINGLE_FLIGHT_WAITS.labels(outcome.value).inc()
        SINGLE_FLIGHT_WAIT_SECONDS.observe(time.monotonic() - started)
        return FlightResult(outcome, value)

    async def _wait(
        self,
        lock_key: str,
        token: str,
        compute: Callable[[], Awaitable[T]],
        ready: Callable[[], Awaitable[T | None]],
        deadline: float,
    ) -> tuple[Outcome, T | None]:
        while True:
            # `ready` must be cheap (the encoder reads a header, not megabytes): it runs every poll.
            if (value := await ready()) is not None:
                return Outcome.VALUE, value
            if await self.store.take_lock(lock_key, token, self.lock_ttl_ms):
                # The lock was gone; the value may have landed just before it was released.
                if (value := await ready()) is not None:
                    await self.store.release_lock(lock_key, token)
                    return Outcome.VALUE, value
                return Outcome.TOOK_OVER, await self._compute_and_release(lock_key, token, compute)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Outcome.TIMEOUT, None
            await asyncio.sleep(min(self.poll_seconds, remaining))

    async def _compute_and_release(self, lock_key: str, token: str, compute: Callable[[], Awaitable[T]]) -> T:
        try:
            return await compute()
        finally:
            # Shielded so a cancelled caller still frees the lock for the waiters at once.
            await asyncio.shield(self._release_quietly(lock_key, token))

    async def _release_quietly(self, lock_key: str, token: str) -> None:
        try:
            await self.store.release_lock(lock_key, token)
        except Unavailable:
            pass  # Redis gone: the lock expires by itself
