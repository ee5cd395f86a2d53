"""Heavy requests against a real decoder process (its own memory, default bounds) over the real Redis: a 16-object
request on a 7000x7000 image is refused in-band before any work, the 4-object packed-bits answer that would pass the
message limit is refused in-band and the stream lives on, a small stream stays responsive while a heavy request runs
and is back to idle latency 1 s after the heavy stream is cancelled, 4 objects x 3 masks of a 4000x3000 photo are
answered, and the decoder's resident memory stays under 2 GiB throughout."""

from __future__ import annotations

import asyncio
import statistics
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from service._proto.sam.v1 import sam_pb2
from service.cache.store import EmbeddingStore
from service.client import AsyncSamClient, make_prompt
from service.local.redis_server import RedisServer
from service.runtime.checkpoint import CheckpointInfo
from service.runtime.image_encoder import ImageEncoderRole
from tests.support.decoder_process import DecoderProcess, decoder_process
from tests.support.memory import PeakMemory
from tests.support.reference import embed_for_redis
from tests.support.servers import TEST_GRAPH_DIR

pytestmark = pytest.mark.slow

MEMORY_LIMIT = 2 << 30
SIDE = 7000


@pytest.fixture
def decoder(tiny_checkpoint: CheckpointInfo, redis_server: RedisServer, tmp_path: Path) -> Iterator[DecoderProcess]:
    """A decoder process with default bounds."""
    with decoder_process(tiny_checkpoint, redis_server.url, TEST_GRAPH_DIR, tmp_path / "decoder.log") as process:
        yield process


def metric(url: str, name: str) -> float:
    for line in urllib.request.urlopen(url, timeout=5).read().decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} is not exported")


async def test_heavy_requests_are_bounded_fair_and_cancellable(
    decoder: DecoderProcess,
    tiny_checkpoint: CheckpointInfo,
    image_encoder_role: ImageEncoderRole,
    embedding_store: EmbeddingStore,
) -> None:
    target, metrics_url, pid = decoder.target, decoder.metrics_url, decoder.pid
    keys = {}
    for name, (rows, columns) in {"small": (400, 600), "photo": (3000, 4000), "huge": (SIDE, SIDE)}.items():
        rgb = np.zeros((rows, columns, 3), dtype=np.uint8)
        rgb[rows // 4 : rows // 2, columns // 3 : columns // 2] = (200, 120, 40)
        image = embed_for_redis(image_encoder_role, tiny_checkpoint.model_id, rgb, f"{name}-{rows}x{columns}".encode())
        await embedding_store.put(image.image_key, image.encoded)
        keys[name] = image.image_key
        del rgb
    memory = PeakMemory(pid)
    huge = [make_prompt(points=[(SIDE * (index + 1) / 18, SIDE / 2, 1)]) for index in range(16)]
    async with AsyncSamClient(decoder_target=target) as client:
        small = client.open_stream(timeout_seconds=300)
        async with client.open_stream(timeout_seconds=300) as heavy:

            async def small_latency(index: int) -> float:
                started = time.perf_counter()
                answer = await small.segment(
                    keys["small"], [make_prompt(points=[(10.0 + index, 300.0, 1)])], multimask_output=True
                )
                assert len(answer.objects[0].masks) == 3
                return time.perf_counter() - started

            for index in range(3):
                await small_latency(index)
            idle = statistics.median([await small_latency(index) for index in range(7)])

            refused = await heavy.segment(keys["huge"], huge, multimask_output=True, raise_on_error=False)
            assert refused.error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
            assert "mask pixels" in refused.error.message and "--max-mask-pixels" in refused.error.message

            packed = await heavy.segment(
                keys["huge"], huge[:4], multimask_output=True, mask_format=sam_pb2.MASK_FORMAT_PACKED_BITS,
                raise_on_error=False,
            )  # fmt: skip
            assert packed.error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
            assert "message limit" in packed.error.message and not packed.objects
            after = await heavy.segment(keys["small"], [make_prompt(points=[(5.0, 5.0, 1)])])
            assert len(after.objects) == 1

            running = asyncio.create_task(heavy.segment(keys["huge"], huge[:4], multimask_output=True))
            await asyncio.sleep(0.5)
            during = [await small_latency(100 + index) for index in range(3)]
            assert max(during) <= max(3 * idle, 1.0), (during, idle)
            await running

        async with client.open_stream(timeout_seconds=300) as heavy:
            running = asyncio.create_task(heavy.segment(keys["huge"], huge[:4], multimask_output=True))
            await asyncio.sleep(0.5)
            running.cancel()
            await heavy.close()
            await asyncio.sleep(1.0)
            assert metric(metrics_url, "sam_decoder_queue_depth") == 0
            assert metric(metrics_url, "sam_decoder_pieces_cancelled_total") > 0
        back = statistics.median([await small_latency(200 + index) for index in range(5)])
        assert back <= 1.5 * idle + 0.02, (back, idle)
        await small.close()

        async with client.open_stream(timeout_seconds=300) as photo:
            objects = [make_prompt(points=[(1000.0 * (index + 1), 1500.0, 1)]) for index in range(4)]
            answer = await photo.segment(keys["photo"], objects, multimask_output=True)
            assert [len(item.masks) for item in answer.objects] == [3, 3, 3, 3]
    assert memory.stop() < MEMORY_LIMIT
