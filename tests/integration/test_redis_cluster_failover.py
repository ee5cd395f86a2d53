"""A master of a real Redis Cluster killed in the middle of a run (SIGKILL, as a crash): while its replica is
promoted, callers get Unavailable (UNAVAILABLE through the services, or a re-opened stream), then everything
carries on; no read ever returns a value other than the one written, and no answer differs from the answer
the same request gets on a healthy cluster.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
import pytest
from redis.asyncio.cluster import RedisCluster

from service._proto.sam.v1 import sam_pb2
from service.cache.codec import EncodedEmbedding
from service.cache.keys import ImageKey
from service.cache.store import EmbeddingStore, StoredValue, connect_redis
from service.client import AsyncSamClient, AsyncSegmentStream, EmbeddedImage, make_prompt
from service.decoder.server import start_decoder_server
from service.encoder.server import start_encoder
from service.errors import Unavailable
from service.local.redis_cluster import LocalRedisCluster
from service.runtime.checkpoint import CheckpointInfo
from service.triton.launcher import TritonServer
from tests.support.reference import make_test_image
from tests.support.servers import decoder_settings, encoder_settings, wait_for_health

_NUMBERS = itertools.count()
RUN_BEFORE_CRASH_SECONDS = 1.0
RUN_AFTER_RECOVERY_SECONDS = 1.5
ROUND_AFTER_RECOVERY_WAIT_SECONDS = 15.0


@dataclass(frozen=True)
class Round:
    """One user's Embed + click + refine on one image, as the user saw it."""

    on_victim: bool  # the image's keys live on the master that was killed
    started: float
    ended: float
    outcome: str  # OK or the gRPC status that reached the user
    reopened: bool  # the client re-opened its stream (UNAVAILABLE) during the round


def assert_the_crash_was_seen(rounds: list[Round], crash: Crash, cluster: LocalRedisCluster) -> None:
    """Only OK or UNAVAILABLE reached the callers. Rounds on the victim's keys begun while it was down could not
    be answered by it: each ended UNAVAILABLE, re-opened its stream, or waited (the Redis client retries) until
    a replica could have been promoted, no sooner than the cluster's node timeout after the kill. And rounds
    after the recovery succeed."""
    assert {round.outcome for round in rounds} <= {"OK", "UNAVAILABLE"}, rounds
    during = [round for round in rounds if round.on_victim and crash.at <= round.started < crash.recovered_at]
    # Or every worker was in one round all through the failover: it waited for the promotion.
    spanning = [
        round for round in rounds if round.on_victim and round.started < crash.at <= crash.recovered_at <= round.ended
    ]
    assert during or spanning, rounds
    earliest_promotion = crash.at + cluster.node_timeout_ms / 1000
    assert all(round.outcome != "OK" or round.reopened or round.ended >= earliest_promotion for round in during)
    after = [round for round in rounds if round.started > crash.recovered_at]
    assert after and all(round.outcome == "OK" for round in after), after


def new_key() -> str:
    return str(ImageKey("test-failover", hashlib.sha256(f"failover {next(_NUMBERS)}".encode()).hexdigest()))


async def cluster_admin(cluster: LocalRedisCluster) -> RedisCluster:
    client = connect_redis(cluster.url)
    assert isinstance(client, RedisCluster)
    await client.initialize()
    return client


def master_of(client: RedisCluster, key: str) -> int:
    node = client.get_node_from_key(key)
    assert node is not None
    return int(node.port)


@dataclass(frozen=True)
class Crash:
    at: float  # time.monotonic() of the kill
    recovered_at: float  # when every node said cluster_state:ok again with a replica promoted

    @property
    def recovered_in(self) -> float:
        return self.recovered_at - self.at


async def run_through_a_crash(
    cluster: LocalRedisCluster, victim: int, workers: list[Callable[[asyncio.Event], Awaitable[None]]],
    rounds: list[Round],
) -> Crash:  # fmt: skip
    """Run `workers` until told to stop: crash `victim` after a while, go on until the cluster is healthy again,
    a while longer, and until a round begun after the recovery has ended (a round in flight through the failover
    may wait seconds more for its client's retries: a CI run saw none begin within 1.5 s)."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(worker(stop)) for worker in workers]
    await asyncio.sleep(RUN_BEFORE_CRASH_SECONDS)
    crashed_at = time.monotonic()
    cluster.crash(victim)
    await asyncio.to_thread(cluster.wait_until_healthy, 30.0)
    crash = Crash(crashed_at, time.monotonic())
    await asyncio.sleep(RUN_AFTER_RECOVERY_SECONDS)
    deadline = time.monotonic() + ROUND_AFTER_RECOVERY_WAIT_SECONDS
    while not any(round.started > crash.recovered_at for round in rounds) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.gather(*tasks)
    return crash


async def test_the_store_rides_out_a_master_crash(failover_cluster: LocalRedisCluster) -> None:
    admin = await cluster_admin(failover_cluster)
    store = EmbeddingStore(connect_redis(failover_cluster.url), ttl_seconds=600)
    victim = failover_cluster.master_ports()[0]
    written: dict[str, StoredValue] = {}
    master_at_write: dict[str, int] = {}
    rounds: list[Round] = []
    wrong: list[str] = []

    async def worker(stop: asyncio.Event) -> None:
        while not stop.is_set():
            key = new_key()
            value = EncodedEmbedding(key.encode(), (os.urandom(64), os.urandom(64)))
            master_at_write[key] = master_of(admin, key)  # the slot map from before the crash
            started, outcome = time.monotonic(), "OK"
            try:
                await store.put(key, value)
                written[key] = StoredValue(value.header, list(value.chunks))
                if await store.get(key) != written[key]:
                    wrong.append(key)
                older = list(written)[len(written) // 2]
                if (await store.get(older)) not in (written[older], None):
                    wrong.append(older)
            except Unavailable:
                outcome = "UNAVAILABLE"
            rounds.append(Round(master_at_write[key] == victim, started, time.monotonic(), outcome, False))
            if outcome != "OK":
                await asyncio.sleep(0.05)

    try:
        crash = await run_through_a_crash(failover_cluster, victim, [worker] * 4, rounds)
        assert wrong == []
        assert_the_crash_was_seen(rounds, crash, failover_cluster)
        assert crash.recovered_in < 15
        # Carried on: every key written reads back as written, or is gone only if its master was the victim
        # (a write acknowledged just before the crash, not yet copied to the replica).
        found = {key: await store.get(key) for key in written}
        assert all(found[key] in (value, None) for key, value in written.items())
        lost = [key for key, value in found.items() if value is None]
        assert all(master_at_write[key] == victim for key in lost)
        assert len(lost) <= 10, len(lost)
        assert await store.ping()
    finally:
        await store.close()
        await admin.aclose()


@pytest.mark.slow
async def test_the_services_ride_out_a_master_crash(
    failover_cluster: LocalRedisCluster, triton_server: TritonServer, tiny_checkpoint: CheckpointInfo
) -> None:
    """An encoder and a decoder (nothing kept in process, so every request reads the cluster) under two
    interactive clients that click and refine on six images, while a master holding some of them dies."""
    encoder = await start_encoder(
        encoder_settings(failover_cluster.url, triton_server.grpc_url, tiny_checkpoint.model_id)
    )
    decoder = await start_decoder_server(decoder_settings(tiny_checkpoint, failover_cluster.url, lru_bytes=1))
    client = AsyncSamClient(encoder.address, decoder.target)
    admin = await cluster_admin(failover_cluster)
    click = make_prompt(points=[(50.0, 30.0, 1)])
    refine = make_prompt(points=[(50.0, 30.0, 1), (20.0, 60.0, 0)], previous=True)
    options = {"multimask_output": True, "return_logits": True}
    try:
        await wait_for_health(encoder.address, serving=True)
        await wait_for_health(decoder.target, serving=True)
        images = [await client.embed(make_test_image(70, 90, seed=200 + number)[1]) for number in range(6)]
        expected: dict[str, tuple[sam_pb2.SegmentResponse, sam_pb2.SegmentResponse]] = {}
        async with client.open_stream(timeout_seconds=120) as stream:
            for image in images:
                first = await stream.segment(image, [click], **options)
                expected[image.image_key] = (first, await stream.segment(image, [refine], **options))
        victim = master_of(admin, images[0].image_key)
        # The users work on the victim's images, so that the crash falls on their requests (every image is
        # checked again after the failover).
        worked_on = [image for image in images if master_of(admin, image.image_key) == victim][:2]

        rounds: list[Round] = []
        wrong: list[str] = []

        async def check(stream: AsyncSegmentStream, image: EmbeddedImage, prompt: sam_pb2.Prompt, turn: int) -> None:
            answer = await stream.segment(image, [prompt], **options)
            if answer.objects != expected[image.image_key][turn].objects:
                wrong.append(f"{image.image_key} turn {turn}")

        async def interactive_user(stop: asyncio.Event) -> None:
            stream = client.open_stream(timeout_seconds=120)
            for image in itertools.cycle(worked_on):
                if stop.is_set():
                    break
                started, reopens_before, outcome = time.monotonic(), stream.reopens, "OK"
                try:
                    again = await client.embed(image.image_bytes)
                    if again.image_key != image.image_key:
                        wrong.append(f"embed {image.image_key}")
                    await check(stream, image, click, 0)
                    await check(stream, image, refine, 1)  # `previous`, rebuilt from logits after a re-open
                except grpc.aio.AioRpcError as error:
                    outcome = error.code().name
                    await stream.close()
                    stream = client.open_stream(timeout_seconds=120)  # the client gave up: a new session
                on_victim = master_of(admin, image.image_key) == victim
                rounds.append(Round(on_victim, started, time.monotonic(), outcome, stream.reopens > reopens_before))
                if outcome != "OK":
                    await asyncio.sleep(0.05)
            await stream.close()

        crash = await run_through_a_crash(failover_cluster, victim, [interactive_user] * 2, rounds)

        assert wrong == []
        assert_the_crash_was_seen(rounds, crash, failover_cluster)
        # Carried on: after the failover every image answers exactly as before (re-embedded if its value was lost).
        async with client.open_stream(timeout_seconds=60) as stream:
            for image in images:
                await check(stream, image, click, 0)
                await check(stream, image, refine, 1)
        assert wrong == []
        assert crash.recovered_in < 15
    finally:
        await client.close()
        await admin.aclose()
        await encoder.stop(grace_seconds=0.5)
        await decoder.stop(grace_seconds=0.5)
