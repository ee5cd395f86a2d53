"""Single flight over a real redis-server: one computation per key, bounded waits, take-over after a holder dies.

Ordering between flights is driven by events (a waiter has looked for the value; the holder may go on), never
by sleeping and hoping the other side got there first.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from service.cache.codec import EncodedEmbedding
from service.cache.single_flight import Outcome, SingleFlight
from service.cache.store import EmbeddingStore, connect_redis
from service.errors import DeadlineExceeded, Unavailable
from service.local.redis_server import RedisServer

_KEYS = (f"test:single-flight:{index}" for index in itertools.count())
# Single flight does not look inside values: any stored header stands for "the value".
VALUE = EncodedEmbedding(b"value", ())


class Waiters:
    """The cheap `ready` check of the tests (the value, if a usable b"value" is stored), counting the flights
    that have looked, so a test can wait until every waiter is waiting."""

    def __init__(self, store: EmbeddingStore, key: str) -> None:
        self.store = store
        self.key = key
        self.looked: set[int] = set()
        self.changed = asyncio.Event()

    def ready_for(self, flight: int) -> Callable[[], Awaitable[str | None]]:
        async def check() -> str | None:
            self.looked.add(flight)
            self.changed.set()
            stored = await self.store.get(self.key)
            return "stored" if stored is not None and stored.header == b"value" else None

        return check

    async def until_looked(self, flights: set[int]) -> None:
        while not flights <= self.looked:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), timeout=10)


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[EmbeddingStore]:
    store = EmbeddingStore(connect_redis(redis_server.url), ttl_seconds=60)
    yield store
    await store.close()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A plain client, to play the other replicas' part (a dead holder's lock, a repair)."""
    client = aioredis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def test_concurrent_runs_compute_once_and_the_rest_get_the_value(
    store: EmbeddingStore, redis_client: aioredis.Redis
) -> None:
    key = next(_KEYS)
    waiters = Waiters(store, key)
    computing = asyncio.Event()
    go_on = asyncio.Event()
    calls = 0

    async def compute() -> str:
        nonlocal calls
        calls += 1
        computing.set()
        await go_on.wait()
        await store.put(key, VALUE)
        return "computed"

    flights = [SingleFlight(store, lock_ttl_seconds=10, poll_seconds=0.01) for _ in range(8)]  # 8 "replicas"
    leader = asyncio.create_task(flights[0].run(f"{key}:lock", compute, waiters.ready_for(0), wait_seconds=5))
    await computing.wait()
    others = [
        asyncio.create_task(flight.run(f"{key}:lock", compute, waiters.ready_for(number), wait_seconds=5))
        for number, flight in enumerate(flights[1:], start=1)
    ]
    await waiters.until_looked(set(range(1, 8)))
    go_on.set()
    results = [await leader, *[await other for other in others]]

    assert calls == 1
    assert [result.outcome.value for result in results] == ["led"] + ["value"] * 7
    assert [str(result.value) for result in results] == ["computed"] + ["stored"] * 7
    assert await redis_client.exists(f"{key}:lock") == 0  # released


async def test_a_dead_holders_lock_expires_and_a_waiter_takes_over(
    store: EmbeddingStore, redis_client: aioredis.Redis
) -> None:
    key = next(_KEYS)
    # A replica that took the lock and died: nobody will release it, it expires after 300 ms.
    await redis_client.set(f"{key}:lock", "dead-replica", nx=True, px=300)

    async def compute() -> str:
        await store.put(key, VALUE)
        return "computed"

    result = await SingleFlight(store, lock_ttl_seconds=10, poll_seconds=0.02).run(
        f"{key}:lock", compute, Waiters(store, key).ready_for(0), wait_seconds=5
    )
    assert (result.outcome, result.value) == (Outcome.TOOK_OVER, "computed")


async def test_a_failed_holder_releases_the_lock_for_the_next(store: EmbeddingStore) -> None:
    key = next(_KEYS)
    waiters = Waiters(store, key)
    started = asyncio.Event()

    async def failing() -> str:
        started.set()
        await waiters.until_looked({1})  # the follower is waiting before the holder fails
        raise RuntimeError("encode failed")

    async def succeeding() -> str:
        return "computed"

    flight = SingleFlight(store, lock_ttl_seconds=10, poll_seconds=0.01)
    leader = asyncio.create_task(flight.run(f"{key}:lock", failing, waiters.ready_for(0), wait_seconds=5))
    await started.wait()
    follower = await flight.run(f"{key}:lock", succeeding, waiters.ready_for(1), wait_seconds=5)
    with pytest.raises(RuntimeError, match="encode failed"):
        await leader
    assert (follower.outcome, follower.value) == (Outcome.TOOK_OVER, "computed")


async def test_wait_is_bounded(store: EmbeddingStore, redis_client: aioredis.Redis) -> None:
    key = next(_KEYS)
    await redis_client.set(f"{key}:lock", "busy-replica", px=10_000)

    async def compute() -> str:
        raise AssertionError("must not run while another holds the lock")

    started = time.monotonic()
    result = await SingleFlight(store, lock_ttl_seconds=10, poll_seconds=0.02).run(
        f"{key}:lock", compute, Waiters(store, key).ready_for(0), wait_seconds=0.3
    )
    assert result.outcome is Outcome.TIMEOUT
    # It waited its bound (never less) and gave up while the other lock still had seconds to live.
    assert time.monotonic() - started >= 0.3
    assert await redis_client.pttl(f"{key}:lock") > 0
    assert await redis_client.get(f"{key}:lock") == b"busy-replica"  # someone else's lock is left alone


async def test_a_damaged_value_does_not_count_as_ready(store: EmbeddingStore, redis_client: aioredis.Redis) -> None:
    key = next(_KEYS)
    waiters = Waiters(store, key)
    await store.put(key, EncodedEmbedding(b"damaged", ()))
    await redis_client.set(f"{key}:lock", "repairing-replica", px=10_000)

    async def repair() -> None:
        await waiters.until_looked({0})  # the waiter has seen the damaged value first
        await store.put(key, VALUE)
        await redis_client.delete(f"{key}:lock")

    async def compute() -> str:
        raise AssertionError("the holder repairs it")

    repairing = asyncio.create_task(repair())
    result = await SingleFlight(store, lock_ttl_seconds=10, poll_seconds=0.02).run(
        f"{key}:lock", compute, waiters.ready_for(0), wait_seconds=5
    )
    await repairing
    assert (result.outcome, result.value) == (Outcome.VALUE, "stored")


async def test_waiters_share_the_holders_failure_instead_of_computing_again(store: EmbeddingStore) -> None:
    """Issue 10, finding 5: each waiter on a hung encode ran it again when the holder gave up, so the second caller
    waited twice. A failure the caller marks as shared reaches every waiter at once, and compute runs once."""
    key = next(_KEYS)
    waiters = Waiters(store, key)
    calls = 0
    computing = asyncio.Event()

    async def failing() -> str:
        nonlocal calls
        calls += 1
        computing.set()
        await waiters.until_looked({1, 2})  # both followers wait before the holder fails
        raise Unavailable("Triton did not answer within 1 s")

    flight = SingleFlight(store, lock_ttl_seconds=10, poll_seconds=0.01, is_shared=lambda error: True)
    leader = asyncio.create_task(flight.run(f"{key}:lock", failing, waiters.ready_for(0), wait_seconds=5))
    await computing.wait()
    followers = [
        asyncio.create_task(flight.run(f"{key}:lock", failing, waiters.ready_for(number), wait_seconds=5))
        for number in (1, 2)
    ]
    results = await asyncio.gather(leader, *followers, return_exceptions=True)
    assert calls == 1
    assert [type(result) for result in results] == [Unavailable] * 3
    assert all(str(result) == "Triton did not answer within 1 s" for result in results)
    # A call that comes later does not inherit the old failure: it computes itself.
    later = await flight.run(f"{key}:lock", succeeding_with("computed"), waiters.ready_for(3), wait_seconds=5)
    assert (later.outcome, later.value) == (Outcome.LED, "computed")


async def test_a_failure_not_shared_lets_a_waiter_take_over(store: EmbeddingStore) -> None:
    """The holder's own deadline passing is its caller's business: the waiter computes for itself."""
    key = next(_KEYS)
    waiters = Waiters(store, key)
    computing = asyncio.Event()

    async def failing() -> str:
        computing.set()
        await waiters.until_looked({1})
        raise DeadlineExceeded("deadline exceeded while encoding")

    flight = SingleFlight(
        store, lock_ttl_seconds=10, poll_seconds=0.01, is_shared=lambda error: not isinstance(error, DeadlineExceeded)
    )
    leader = asyncio.create_task(flight.run(f"{key}:lock", failing, waiters.ready_for(0), wait_seconds=5))
    await computing.wait()
    follower = await flight.run(f"{key}:lock", succeeding_with("computed"), waiters.ready_for(1), wait_seconds=5)
    with pytest.raises(DeadlineExceeded):
        await leader
    assert (follower.outcome, follower.value) == (Outcome.TOOK_OVER, "computed")


def succeeding_with(value: str) -> Callable[[], Awaitable[str]]:
    async def compute() -> str:
        return value

    return compute
