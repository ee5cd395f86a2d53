"""The cache on a real Redis Cluster (3 masters, 3 replicas, Debian's redis-server): one slot per image, the
store's commands, single flight across replicas, TTL refresh, eviction, and both services on it.

The failover tests (a master killed mid-run) are in test_redis_cluster_failover.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import AsyncIterator

import grpc
import pytest
from redis.asyncio.cluster import RedisCluster

from service.cache.codec import EncodedEmbedding
from service.cache.keys import ImageKey
from service.cache.single_flight import Outcome, SingleFlight
from service.cache.store import EmbeddingStore, StoredFields, StoredValue, connect_redis
from service.client import AsyncSamClient, make_prompt, make_request
from service.decoder.server import start_decoder_server
from service.encoder.server import start_encoder
from service.local.redis_cluster import LocalRedisCluster
from service.runtime.checkpoint import CheckpointInfo
from service.triton.launcher import TritonServer
from tests.support.reference import make_test_image
from tests.support.servers import damage_a_chunk, decoder_settings, encoder_settings, read_stored, wait_for_health

_NUMBERS = itertools.count()


def stored_value(number: int, chunk_bytes: int) -> EncodedEmbedding:
    """A value shaped like an encoded embedding: a header and three chunks (the store does not parse them)."""
    chunk = number.to_bytes(4, "little") * (chunk_bytes // 4)
    return EncodedEmbedding(f"header {number}".encode(), (chunk, chunk[: chunk_bytes // 2], b"tail"))


def new_key(model_id: str = "test-cluster") -> ImageKey:
    return ImageKey(model_id=model_id, digest=hashlib.sha256(f"image {next(_NUMBERS)}".encode()).hexdigest())


@pytest.fixture
async def cluster_client(redis_cluster: LocalRedisCluster) -> AsyncIterator[RedisCluster]:
    """A client of the cluster for the test itself (slots, TTLs, the node of a key)."""
    client = connect_redis(redis_cluster.url)
    assert isinstance(client, RedisCluster)
    await client.initialize()
    yield client
    await client.aclose()


@pytest.fixture
async def store(redis_cluster: LocalRedisCluster) -> AsyncIterator[EmbeddingStore]:
    store = EmbeddingStore(connect_redis(redis_cluster.url), ttl_seconds=60)
    yield store
    await store.close()


def master_of(client: RedisCluster, key: str) -> int:
    node = client.get_node_from_key(key)
    assert node is not None
    return int(node.port)


async def test_every_key_of_an_image_is_in_one_slot_and_images_spread_over_every_master(
    cluster_client: RedisCluster, redis_cluster: LocalRedisCluster
) -> None:
    keys = [new_key() for _ in range(30)]
    for key in keys:
        slots = {cluster_client.keyslot(name) for name in (str(key), key.lock_key, key.side_key("part:1"))}
        assert len(slots) == 1, key
    assert {master_of(cluster_client, str(key)) for key in keys} == set(redis_cluster.master_ports())


async def test_store_commands_work_on_every_master(store: EmbeddingStore, cluster_client: RedisCluster) -> None:
    keys = [new_key() for _ in range(12)]
    assert len({master_of(cluster_client, str(key)) for key in keys}) == 3
    for number, key in enumerate(keys):
        value = stored_value(number, 1000)
        await store.put(str(key), value)  # one MULTI: DEL, HSET, EXPIRE
        assert await store.get(str(key)) == StoredValue(value.header, list(value.chunks))

        await cluster_client.expire(str(key), 5)
        assert await store.read_header(str(key)) == StoredFields(value.header, 4)  # HGET, HLEN, EXPIRE
        assert 55 <= await cluster_client.ttl(str(key)) <= 60  # the read refreshed the TTL

        found = await store.get(str(key))
        assert found is not None
        await cluster_client.hset(str(key), "1", b"changed since it was read")
        assert not await store.delete_if_unchanged(str(key), found)  # a script on the key's node
        assert await store.delete_if_unchanged(str(key), await store.get(str(key)))  # type: ignore[arg-type]

        assert await store.take_lock(key.lock_key, "mine", 10_000) is None
        assert await store.take_lock(key.lock_key, "theirs", 10_000) == "mine"
        await store.release_lock(key.lock_key, "theirs")  # not theirs to release
        assert await cluster_client.get(key.lock_key) == b"mine"
        failure_key = key.side_key("failed")
        await store.release_lock(key.lock_key, "mine", (failure_key, "UNAVAILABLE Triton", 10_000))
        assert await cluster_client.exists(key.lock_key) == 0
        assert await store.get_text(failure_key) == "UNAVAILABLE Triton"

        await store.put(str(key), value)
        assert await store.delete(str(key))
        assert await store.get(str(key)) is None
        assert await store.read_header(str(key)) == StoredFields(None, 0)
    assert await store.ping()


async def test_single_flight_holds_across_replicas_on_a_cluster(redis_cluster: LocalRedisCluster) -> None:
    """Eight "replicas", each with its own cluster client, run one computation for one key between them."""
    stores = [EmbeddingStore(connect_redis(redis_cluster.url), ttl_seconds=60) for _ in range(8)]
    key = new_key()
    calls = 0

    async def compute() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.3)  # long enough for every other flight to find the lock taken
        await stores[0].put(str(key), stored_value(0, 100))
        return "computed"

    def ready_for(store: EmbeddingStore):  # type: ignore[no-untyped-def]
        async def ready() -> str | None:
            return "stored" if await store.get(str(key)) is not None else None

        return ready

    try:
        results = await asyncio.gather(
            *(
                SingleFlight(store, lock_ttl_seconds=10, poll_seconds=0.02).run(
                    key.lock_key, compute, ready_for(store), wait_seconds=10
                )
                for store in stores
            )
        )
    finally:
        for store in stores:
            await store.close()
    assert calls == 1
    assert sorted(result.outcome.value for result in results) == ["led"] + ["value"] * 7
    assert {result.outcome for result in results} == {Outcome.LED, Outcome.VALUE}


async def test_each_master_evicts_its_least_recently_used_values(
    store: EmbeddingStore, redis_cluster: LocalRedisCluster
) -> None:
    """With maxmemory and allkeys-lru on each node, a full cluster drops old values, never damages one.

    Redis's LRU clock ticks once a second, so values written within the same second are equally old to it: the
    newest ten are written a tick after the rest, and read first, because a reply's buffer counts toward maxmemory
    and a read can evict too (the least recently used, which must not be a newest value not yet read)."""
    megabyte = 1 << 20

    async def write(numbers: range) -> dict[str, StoredValue]:
        written = {}
        for number in numbers:
            key = str(new_key())
            value = stored_value(number, megabyte)
            await store.put(key, value)
            written[key] = StoredValue(value.header, list(value.chunks))
        return written

    older = await write(range(110))  # 120 MiB in all into 3 x 24 MB
    await asyncio.sleep(1.1)
    newest = await write(range(110, 120))
    found = {key: await store.get(key) for key in [*newest, *older]}

    assert all(found[key] == value for key, value in newest.items())
    kept = [key for key, value in found.items() if value is not None]
    assert 30 <= len(kept) < 80, len(kept)
    assert all(found[key] == older[key] for key in kept if key in older)
    for port in redis_cluster.master_ports():
        assert int(redis_cluster.info(port, "stats")["evicted_keys"]) > 0


@pytest.mark.slow
async def test_two_encoders_and_a_decoder_on_a_cluster(
    redis_cluster: LocalRedisCluster,
    triton_server: TritonServer,
    tiny_checkpoint: CheckpointInfo,
    cluster_client: RedisCluster,
) -> None:
    """Both services on `redis+cluster://`: one encode for concurrent Embeds through two encoders, cache hits,
    answers, and a damaged value that is re-encoded (healed) rather than served."""
    model_id = tiny_checkpoint.model_id
    encoders = [
        await start_encoder(encoder_settings(redis_cluster.url, triton_server.grpc_url, model_id)) for _ in range(2)
    ]
    # lru_bytes=1 keeps nothing in process: every request reads the cluster.
    decoder = await start_decoder_server(decoder_settings(tiny_checkpoint, redis_cluster.url, lru_bytes=1))
    try:
        for server in encoders:
            await wait_for_health(server.address, serving=True)
        await wait_for_health(decoder.target, serving=True)
        _, image_bytes = make_test_image(90, 120, seed=77)
        clients = [AsyncSamClient(server.address, decoder.target) for server in encoders]
        before = triton_server.inference_count()
        answers = await asyncio.gather(*(clients[number % 2].embed(image_bytes) for number in range(6)))
        assert triton_server.inference_count() - before == 1
        assert sorted(answer.cached for answer in answers) == [False] + [True] * 5
        image = answers[0]

        prompt = make_prompt(points=[(60.0, 45.0, 1)])
        async with clients[0].open_stream(timeout_seconds=60) as stream:
            first = await stream.segment(image, [prompt], multimask_output=True, return_logits=True)
        assert len(first.objects[0].masks) == 3

        await damage_a_chunk(cluster_client, image.image_key, b"junk" * 8)  # the header alone looks fine
        async with clients[0].open_stream(timeout_seconds=60, reopen_attempts=0) as stream:
            try:
                damaged = await stream.exchange(make_request(image, [prompt]))
                assert damaged.HasField("error")  # never a mask from a damaged value
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.DATA_LOSS
        again = await clients[1].embed(image_bytes)
        assert again.cached is False  # re-encoded over the damaged value
        assert (await read_stored(redis_cluster.url, image.image_key, model_id)).info.original_size == (90, 120)
        async with clients[1].open_stream(timeout_seconds=60) as stream:
            healed = await stream.segment(image, [prompt], multimask_output=True, return_logits=True)
        assert healed.objects == first.objects
        for client in clients:
            await client.close()
    finally:
        for server in encoders:
            await server.stop(grace_seconds=0.5)
        await decoder.stop(grace_seconds=0.5)
