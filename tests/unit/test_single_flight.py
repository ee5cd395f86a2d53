"""Single flight over a real redis-server: one computation per key, bounded waits, take-over after a holder dies."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from service.embedding_store import EmbeddingStore, connect_redis
from service.encoder.single_flight import Outcome, SingleFlight, lock_key_of
from service.local.redis_server import RedisServer

_KEYS = (f"test:single-flight:{index}" for index in itertools.count())


def ready(store: EmbeddingStore, key: str) -> Callable[[], Awaitable[str | None]]:
    """The cheap check: the value, if a usable one (b"value") is stored."""

    async def check() -> str | None:
        return "stored" if await store.get(key) == b"value" else None

    return check


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[EmbeddingStore]:
    store = EmbeddingStore(connect_redis(redis_server.url), ttl_seconds=60)
    yield store
    await store.close()


async def test_concurrent_runs_compute_once_and_the_rest_get_the_value(store: EmbeddingStore) -> None:
    key = next(_KEYS)
    calls = 0

    async def compute() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.3)
        await store.put(key, b"value")
        return "computed"

    flights = [SingleFlight(store, lock_ttl_seconds=10, poll_seconds=0.01) for _ in range(8)]  # 8 "replicas"
    results = await asyncio.gather(*(flight.run(key, compute, ready(store, key), wait_seconds=5) for flight in flights))

    assert calls == 1
    assert sorted(result.outcome.value for result in results) == ["led"] + ["value"] * 7
    assert sorted(str(result.value) for result in results) == ["computed"] + ["stored"] * 7
    assert await store.client.exists(lock_key_of(key)) == 0  # released


async def test_a_dead_holders_lock_expires_and_a_waiter_takes_over(store: EmbeddingStore) -> None:
    key = next(_KEYS)
    # A replica that took the lock and died: nobody will release it, it expires after 300 ms.
    await store.client.set(lock_key_of(key), "dead-replica", nx=True, px=300)

    async def compute() -> str:
        await store.put(key, b"value")
        return "computed"

    result = await SingleFlight(store, lock_ttl_seconds=10, poll_seconds=0.02).run(
        key, compute, ready(store, key), wait_seconds=5
    )
    assert (result.outcome, result.value) == (Outcome.TOOK_OVER, "computed")


async def test_a_failed_holder_releases_the_lock_for_the_next(store: EmbeddingStore) -> None:
    key = next(_KEYS)
    started = asyncio.Event()

    async def failing() -> str:
        started.set()
        await asyncio.sleep(0.1)
        raise RuntimeError("encode failed")

    async def succeeding() -> str:
        return "computed"

    flight = SingleFlight(store, lock_ttl_seconds=10, poll_seconds=0.01)
    leader = asyncio.create_task(flight.run(key, failing, ready(store, key), wait_seconds=5))
    await started.wait()
    follower = await flight.run(key, succeeding, ready(store, key), wait_seconds=5)
    with pytest.raises(RuntimeError, match="encode failed"):
        await leader
    assert (follower.outcome, follower.value) == (Outcome.TOOK_OVER, "computed")


async def test_wait_is_bounded(store: EmbeddingStore) -> None:
    key = next(_KEYS)
    await store.client.set(lock_key_of(key), "busy-replica", px=10_000)

    async def compute() -> str:
        raise AssertionError("must not run while another holds the lock")

    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await SingleFlight(store, lock_ttl_seconds=10, poll_seconds=0.02).run(
        key, compute, ready(store, key), wait_seconds=0.3
    )
    assert result.outcome is Outcome.TIMEOUT
    assert 0.3 <= loop.time() - started < 2.0
    assert await store.client.get(lock_key_of(key)) == b"busy-replica"  # someone else's lock is left alone


async def test_a_damaged_value_does_not_count_as_ready(store: EmbeddingStore) -> None:
    key = next(_KEYS)
    await store.put(key, b"damaged")
    await store.client.set(lock_key_of(key), "repairing-replica", px=10_000)

    async def repair() -> None:
        await asyncio.sleep(0.2)
        await store.put(key, b"value")
        await store.client.delete(lock_key_of(key))

    async def compute() -> str:
        raise AssertionError("the holder repairs it")

    repairing = asyncio.create_task(repair())
    result = await SingleFlight(store, lock_ttl_seconds=10, poll_seconds=0.02).run(
        key, compute, ready(store, key), wait_seconds=5
    )
    await repairing
    assert (result.outcome, result.value) == (Outcome.VALUE, "stored")
