"""Two decoder replicas behind one Redis: streams spread over them (client-side round robin), and a stream whose
replica goes away (stopped, or its connection past the maximum age) is re-opened on a replica that is still
there, with its `previous` mask rebuilt from the logits the client holds: the answers are those of an
uninterrupted stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from service._proto.sam.v1 import sam_pb2
from service.client import AsyncSamClient, SamClient, make_prompt
from service.decoder.server import DecoderServer, start_decoder_server
from service.local.redis_server import RedisServer
from service.runtime.checkpoint import CheckpointInfo
from service.runtime.prompt_decoder import PromptDecoderRole
from tests.support.reference import StoredImage, StoreImage
from tests.support.servers import decoder_settings

pytestmark = pytest.mark.slow

CLICK = make_prompt(points=[(30.0, 20.0, 1)])
REFINE = make_prompt(points=[(30.0, 20.0, 1), (10.0, 40.0, 0)], previous=True)
OPTIONS = {"multimask_output": True, "return_logits": True}


def requests_served(server: DecoderServer) -> int:
    """Requests that looked an embedding up on this replica (each decoder has its own LRU)."""
    return server.source.lru.hits + server.source.lru.misses


def both_targets(servers: list[DecoderServer]) -> str:
    """One gRPC target naming both replicas (as a headless Service's DNS name resolves to every pod)."""
    return "ipv4:" + ",".join(f"127.0.0.1:{server.port}" for server in servers)


@pytest.fixture
async def two_decoders(
    tiny_checkpoint: CheckpointInfo, redis_server: RedisServer, decoder_role: PromptDecoderRole
) -> AsyncIterator[list[DecoderServer]]:
    servers = [
        await start_decoder_server(decoder_settings(tiny_checkpoint, redis_server.url), [decoder_role])
        for _ in range(2)
    ]
    yield servers
    for server in servers:
        await server.stop(grace_seconds=0.5)


async def uninterrupted(target: str, image: StoredImage) -> tuple[sam_pb2.SegmentResponse, sam_pb2.SegmentResponse]:
    async with AsyncSamClient(decoder_target=target) as client, client.open_stream(timeout_seconds=60) as stream:
        return (
            await stream.segment(image.image_key, [CLICK], **OPTIONS),
            await stream.segment(image.image_key, [REFINE], **OPTIONS),
        )


async def test_round_robin_spreads_streams_over_both_replicas(
    two_decoders: list[DecoderServer], store_image: StoreImage
) -> None:
    image, _ = await store_image(48, 64, seed=21)
    async with AsyncSamClient(decoder_target=both_targets(two_decoders)) as client:
        for _ in range(6):
            async with client.open_stream(timeout_seconds=60) as stream:
                await stream.segment(image.image_key, [CLICK])
    # Six one-request streams: they alternate once both connections are up (the first may go to whichever is up
    # first). pick_first, gRPC's default, would send all six to one replica.
    served = [requests_served(server) for server in two_decoders]
    assert sum(served) == 6 and min(served) >= 2, served


async def test_a_stream_moves_to_the_other_replica_when_its_own_stops(
    two_decoders: list[DecoderServer], store_image: StoreImage
) -> None:
    image, _ = await store_image(48, 64, seed=22)
    expected = await uninterrupted(two_decoders[0].target, image)
    async with AsyncSamClient(decoder_target=both_targets(two_decoders)) as client:
        stream = client.open_stream(timeout_seconds=60)
        served_before = [requests_served(server) for server in two_decoders]
        first = await stream.segment(image.image_key, [CLICK], **OPTIONS)
        (own,) = [
            server
            for server, before in zip(two_decoders, served_before, strict=True)
            if requests_served(server) > before
        ]
        await own.stop(grace_seconds=0.1)  # a rolling update, a scale-in, a crash: the stream ends UNAVAILABLE

        second = await stream.segment(image.image_key, [REFINE], **OPTIONS)  # `previous` on the new replica
        await stream.close()
    assert stream.reopens == 1
    assert (first.objects, second.objects) == (expected[0].objects, expected[1].objects)


async def test_a_stream_past_the_maximum_connection_age_moves_with_its_session(
    tiny_checkpoint: CheckpointInfo,
    redis_server: RedisServer,
    decoder_role: PromptDecoderRole,
    store_image: StoreImage,
) -> None:
    """The blocking client, idle past the connection's age and grace: its next request re-opens the stream."""
    image, _ = await store_image(48, 64, seed=23)
    settings = decoder_settings(
        tiny_checkpoint, redis_server.url, max_connection_age_seconds=0.5, max_connection_age_grace_seconds=0.5
    )
    server = await start_decoder_server(settings, [decoder_role])
    try:
        expected = await uninterrupted(server.target, image)

        def interactive_session() -> tuple[sam_pb2.SegmentResponse, sam_pb2.SegmentResponse, int]:
            with SamClient(decoder_target=server.target) as client, client.open_stream(timeout_seconds=60) as stream:
                first = stream.segment(image.image_key, [CLICK], **OPTIONS)
                # Longer than age (+10% jitter) and grace: the server has closed the connection under the stream.
                stream_idle = 0.5 * 1.1 + 0.5 + 1.0
                time.sleep(stream_idle)
                return first, stream.segment(image.image_key, [REFINE], **OPTIONS), stream.reopens

        first, second, reopens = await asyncio.to_thread(interactive_session)
    finally:
        await server.stop(grace_seconds=0.5)
    assert reopens == 1
    assert (first.objects, second.objects) == (expected[0].objects, expected[1].objects)
