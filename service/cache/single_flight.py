"""One computation per key across every replica: a Redis `SET NX PX` lock, the others poll for the value.

The holder of the lock (an image key's side key, service.cache.keys) computes and stores the value, then
deletes the lock (only if it still holds its own token). Waiters poll for a usable value (the caller's cheap `ready`
check, so a damaged value left in Redis does not count). When the holder fails with an error the caller says others
share (Triton did not answer, the image cannot be decoded), it leaves a failure record beside the lock as it releases
it, and the calls that were waiting for it raise that same error at once instead of computing again: a hung
dependency costs each waiter one wait, not two. When the lock disappears without a value or a record (the holder was
cancelled, its caller's own deadline passed, or it died and its lock expired) one waiter takes the lock over and
computes. Waits are bounded.
"""

from __future__ import annotations

import asyncio
import enum
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

import service.errors as errors
from service.cache.store import EmbeddingStore
from service.encoder.metrics import SINGLE_FLIGHT_WAIT_SECONDS, SINGLE_FLIGHT_WAITS
from service.errors import ServiceError, Unavailable

T = TypeVar("T")


class Outcome(enum.Enum):
    LED = "led"  # this call took the lock at once and computed
    VALUE = "value"  # another call computed; the value is in Redis now
    TOOK_OVER = "took_over"  # the holder went away without a value; this call computed
    TIMEOUT = "timeout"  # the bounded wait ran out first
    FAILED = "failed"  # the holder failed with a shared error; this call raised it too


# How long a holder's failure record stays for the calls that were waiting on it: they look at least every poll.
FAILURE_RECORD_TTL_MS: Final = 30_000


@dataclass(frozen=True)
class FlightResult(Generic[T]):
    outcome: Outcome
    value: T | None  # what `compute` (LED, TOOK_OVER) or `ready` (VALUE) returned; None on TIMEOUT


@dataclass(frozen=True)
class _Waited(Generic[T]):
    outcome: Outcome
    value: T | None = None
    failure: ServiceError | None = None


class SingleFlight:
    """Runs `compute` under a lock key at most once at a time across every process sharing the Redis."""

    def __init__(
        self,
        store: EmbeddingStore,
        lock_ttl_seconds: float,
        poll_seconds: float = 0.05,
        is_shared: Callable[[ServiceError], bool] = lambda error: False,
    ) -> None:
        self.store = store
        # Which failures of a holder its waiters raise too, rather than computing again themselves.
        self.is_shared = is_shared
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
        """Compute under the lock, or wait up to `wait_seconds` until `ready()` gives the value someone computed.

        Raises what `compute` raises, and, in a waiting call, the holder's failure when `is_shared` says so.
        """
        token = secrets.token_hex(16)
        holder = await self.store.take_lock(lock_key, token, self.lock_ttl_ms)
        if holder is None:
            return FlightResult(Outcome.LED, await self._compute_and_release(lock_key, token, compute))
        started = time.monotonic()
        waited = await self._wait(lock_key, token, {holder}, ready, started + max(wait_seconds, 0.0))
        SINGLE_FLIGHT_WAITS.labels(waited.outcome.value).inc()
        SINGLE_FLIGHT_WAIT_SECONDS.observe(time.monotonic() - started)
        if waited.failure is not None:
            raise waited.failure
        if waited.outcome is Outcome.TOOK_OVER:
            return FlightResult(Outcome.TOOK_OVER, await self._compute_and_release(lock_key, token, compute))
        return FlightResult(waited.outcome, waited.value)

    async def _wait(
        self,
        lock_key: str,
        token: str,
        holders: set[str],
        ready: Callable[[], Awaitable[T | None]],
        deadline: float,
    ) -> _Waited[T]:
        """Poll until the value is ready, the holder's shared failure is there, this call holds the lock (TOOK_OVER:
        compute now) or the wait runs out. `holders` collects the tokens of the holders seen meanwhile."""
        while True:
            # `ready` must be cheap (the encoder reads a header, not megabytes): it runs every poll.
            if (value := await ready()) is not None:
                return _Waited(Outcome.VALUE, value)
            holder = await self.store.take_lock(lock_key, token, self.lock_ttl_ms)
            if holder is None:
                # The lock was gone; the value may have landed just before it was released.
                if (value := await ready()) is not None:
                    await self.store.release_lock(lock_key, token)
                    return _Waited(Outcome.VALUE, value)
                failure = await self._failure_of(lock_key, holders)
                if failure is not None:
                    await self.store.release_lock(lock_key, token)
                    return _Waited(Outcome.FAILED, failure=failure)
                return _Waited(Outcome.TOOK_OVER)
            holders.add(holder)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return _Waited(Outcome.TIMEOUT)
            await asyncio.sleep(min(self.poll_seconds, remaining))

    async def _failure_of(self, lock_key: str, holders: set[str]) -> ServiceError | None:
        """The failure a holder this call waited on left, if any (one left by an earlier holder does not count)."""
        record = await self.store.get_text(failure_key_of(lock_key))
        if record is None:
            return None
        holder, _, error = record.partition("\n")
        return error_of_record(error) if holder in holders else None

    async def _compute_and_release(self, lock_key: str, token: str, compute: Callable[[], Awaitable[T]]) -> T:
        try:
            value = await compute()
        except BaseException as error:
            shared = isinstance(error, ServiceError) and self.is_shared(error)
            failure = (failure_key_of(lock_key), f"{token}\n{record_of_error(error)}", FAILURE_RECORD_TTL_MS)
            # Shielded so a cancelled caller still frees the lock for the waiters at once.
            await asyncio.shield(self._release_quietly(lock_key, token, failure if shared else None))
            raise
        await asyncio.shield(self._release_quietly(lock_key, token))
        return value

    async def _release_quietly(self, lock_key: str, token: str, failure: tuple[str, str, int] | None = None) -> None:
        try:
            await self.store.release_lock(lock_key, token, failure)
        except Unavailable:
            pass  # Redis gone: the lock expires by itself


def failure_key_of(lock_key: str) -> str:
    """Where a holder of `lock_key` leaves its failure: beside the lock, in the same hash slot."""
    return f"{lock_key}:failed"


def record_of_error(error: BaseException) -> str:
    """A domain error as a small JSON record its waiters rebuild (kind, reason and field only)."""
    if not isinstance(error, ServiceError):
        return ""
    return json.dumps({"kind": type(error).__name__, "reason": error.reason, "field": error.field})


def error_of_record(record: str) -> ServiceError | None:
    """The domain error a record describes; None for one this version cannot read."""
    try:
        fields = json.loads(record)
        kind = getattr(errors, fields["kind"])
        if not (isinstance(kind, type) and issubclass(kind, ServiceError)):
            return None
        error: ServiceError = kind(str(fields["reason"]), str(fields["field"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return error
