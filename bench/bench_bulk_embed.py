"""Bulk pre-embedding figures, measured in one run on real servers (Triton, Redis, the encoder in its own process)
with the tiny checkpoint, on whatever Triton runs on (this machine's CPU; a GPU where one is lent).

1. Throughput: --images new images embedded one call at a time (each waits for the last), then, with Redis
   emptied, the same images through `samsvc embed`'s code (service.client.bulk_embed: --concurrency calls in
   flight at bulk priority). Prints images/s of each and their ratio, and the batch sizes Triton ran in each phase
   (its statistics: executions per batch size).
2. Interactive latency: a few interactive Embeds of new images one after another, on an idle service, then while a
   bulk job of --images other new images runs; medians and maxima, and their ratio. With --without-priority the
   bulk job is run once more with its Embeds sent at interactive priority, to show what the priority levels buy.

Asserts nothing; prints the figures and RATIO lines.

    PYTHONPATH=. .venv/bin/python bench/bench_bulk_embed.py [--images 48] [--concurrency 8] [--probes 5]
        [--without-priority]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from service.cache.store import RedisClient, connect_redis
from service.client import AsyncSamClient
from service.client.bulk_embed import embed_files
from service.local.ports import free_port
from service.local.redis_server import RedisServer
from service.runtime.checkpoint import inspect_checkpoint, make_test_checkpoint
from service.triton.client import TritonEncoderClient
from service.triton.launcher import TritonServer
from service.triton.model_config import TritonModel

MODEL_NAME = "sam_image_encoder"


def write_images(folder: Path, count: int, seed: int, rows: int = 96, columns: int = 128) -> list[Path]:
    """`count` distinct small JPEG photos of noise (distinct bytes, so distinct keys)."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        buffer = io.BytesIO()
        Image.fromarray(generator.integers(0, 256, (rows, columns, 3), dtype=np.uint8)).save(buffer, format="JPEG")
        path = folder / f"image-{index:04d}.jpg"
        path.write_bytes(buffer.getvalue())
        paths.append(path)
    return paths


async def wait_serving(address: str, timeout_seconds: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                response = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"encoder at {address} not SERVING after {timeout_seconds} s")


def batch_delta(after: dict[int, int], before: dict[int, int]) -> dict[int, int]:
    """Executions per batch size between two reads of Triton's statistics."""
    delta = {size: count - before.get(size, 0) for size, count in after.items()}
    return {size: count for size, count in sorted(delta.items()) if count}


def describe(batches: dict[int, int]) -> str:
    images = sum(size * count for size, count in batches.items())
    runs = sum(batches.values())
    sizes = ", ".join(f"{count}×{size}" for size, count in batches.items())
    return f"{runs} runs for {images} images (batch size × runs: {sizes}; mean {images / max(runs, 1):.2f})"


async def probe_latencies(client: AsyncSamClient, images: list[bytes], pause_seconds: float) -> list[float]:
    """Interactive Embeds of new images, one after another (a user opening images): each call's latency."""
    latencies = []
    for image in images:
        started = time.perf_counter()
        result = await client.embed(image, timeout_seconds=300)
        latencies.append(time.perf_counter() - started)
        assert not result.cached
        await asyncio.sleep(pause_seconds)
    return latencies


async def measure(encoder_address: str, redis_url: str, triton_url: str, work: Path, args: argparse.Namespace) -> None:
    files = write_images(work / "images", args.images, seed=1)
    images = [path.read_bytes() for path in files]
    triton = TritonEncoderClient(triton_url)
    redis = connect_redis(redis_url)
    try:
        async with AsyncSamClient(encoder_address, token="") as client:
            # Warm the channel, the encoder and Triton (the first encode of a fresh model is the slow one).
            for warm in write_images(work / "warm", 2, seed=99):
                await client.embed(warm.read_bytes(), timeout_seconds=300)

            # 1a. One call at a time.
            before = await triton.batch_sizes(MODEL_NAME)
            started = time.perf_counter()
            single_latencies = await probe_latencies(client, images, pause_seconds=0.0)
            one_at_a_time = time.perf_counter() - started
            single_batches = batch_delta(await triton.batch_sizes(MODEL_NAME), before)

            # 1b. The same images in bulk, from an empty cache.
            await redis.flushdb()
            before = await triton.batch_sizes(MODEL_NAME)
            started = time.perf_counter()
            results = await embed_files(client, files, args.concurrency, 300, lambda result: None)
            bulk = time.perf_counter() - started
            bulk_batches = batch_delta(await triton.batch_sizes(MODEL_NAME), before)
            failed = [result for result in results if result.failed]
            assert not failed and not any(result.cached for result in results), failed[:3]

            # 1c. The rerun: every image cached, none encoded.
            before = await triton.batch_sizes(MODEL_NAME)
            started = time.perf_counter()
            rerun = await embed_files(client, files, args.concurrency, 300, lambda result: None)
            rerun_seconds = time.perf_counter() - started
            rerun_batches = batch_delta(await triton.batch_sizes(MODEL_NAME), before)
            assert all(result.cached for result in rerun)

            # 2. Interactive latency, idle and while a bulk job runs.
            probes = [path.read_bytes() for path in write_images(work / "probes", 3 * args.probes, seed=2)]
            idle = await probe_latencies(client, probes[: args.probes], pause_seconds=0.2)
            during = await latencies_during_bulk(
                encoder_address, client, redis, files, probes[args.probes : 2 * args.probes], args, True
            )
            without_priority = None
            if args.without_priority:
                without_priority = await latencies_during_bulk(
                    encoder_address, client, redis, files, probes[2 * args.probes :], args, bulk_priority=False
                )
    finally:
        await triton.close()
        await redis.aclose()

    single_rate, bulk_rate = len(files) / one_at_a_time, len(files) / bulk
    print(f"images: {len(files)} JPEG 96x128 (encoded at the model's full input frame); concurrency {args.concurrency}")
    print(f"one at a time: {one_at_a_time:.2f} s, {single_rate:.2f} images/s; Triton: {describe(single_batches)}")
    print(f"one at a time, each call: median {statistics.median(single_latencies) * 1e3:.0f} ms")
    print(f"bulk:          {bulk:.2f} s, {bulk_rate:.2f} images/s; Triton: {describe(bulk_batches)}")
    print(f"rerun (all cached): {rerun_seconds:.2f} s, {len(files) / rerun_seconds:.1f} images/s; Triton runs: "
          f"{sum(rerun_batches.values())}")  # fmt: skip
    print(f"RATIO bulk / one-at-a-time images/s = {bulk_rate / single_rate:.2f}")
    print(f"largest Triton batch in bulk = {max(bulk_batches, default=0)}")
    idle_median = statistics.median(idle)
    print(f"interactive Embed (a new image) idle: median {idle_median * 1e3:.0f} ms, max {max(idle) * 1e3:.0f} ms "
          f"over {len(idle)}")  # fmt: skip
    print(f"interactive Embed during bulk: median {statistics.median(during) * 1e3:.0f} ms, "
          f"max {max(during) * 1e3:.0f} ms over {len(during)}")  # fmt: skip
    print(f"RATIO interactive during bulk / idle (medians) = {statistics.median(during) / idle_median:.2f}")
    if without_priority is not None:
        print(f"interactive Embed during a bulk job sent at interactive priority: median "
              f"{statistics.median(without_priority) * 1e3:.0f} ms, max {max(without_priority) * 1e3:.0f} ms")  # fmt: skip
        print(f"RATIO without priority / idle (medians) = {statistics.median(without_priority) / idle_median:.2f}")


async def latencies_during_bulk(
    encoder_address: str,
    client: AsyncSamClient,
    redis: RedisClient,
    files: list[Path],
    probes: list[bytes],
    args: argparse.Namespace,
    bulk_priority: bool,
) -> list[float]:
    """Interactive probes while `files` are embedded again from an empty cache by a bulk job on its own channel."""
    await redis.flushdb()
    async with AsyncSamClient(encoder_address, token="") as bulk_client:
        job = asyncio.create_task(
            embed_files(bulk_client, files, args.concurrency, 300, lambda result: None, bulk=bulk_priority)
        )
        await asyncio.sleep(1.0)  # let the bulk job fill Triton's queue
        latencies = []
        for probe in probes:
            if job.done():
                print(f"(the bulk job ended after {len(latencies)} probes: use more --images)")
                break
            latencies.extend(await probe_latencies(client, [probe], pause_seconds=0.2))
        await job
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=48, help="images per bulk job")
    parser.add_argument("--concurrency", type=int, default=8, help="bulk Embed calls in flight")
    parser.add_argument("--probes", type=int, default=5, help="interactive Embeds per latency sample")
    parser.add_argument("--without-priority", action="store_true", help="also run the bulk job at interactive priority")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-bulk-") as work:
        checkpoint = inspect_checkpoint(make_test_checkpoint("tiny", 1234, Path(work) / "sam_tiny.pth"))
        triton_server = TritonServer(models=[TritonModel(MODEL_NAME, checkpoint.arch, str(checkpoint.path))])
        with RedisServer() as redis_server, triton_server as triton:
            port, health_port = free_port(), free_port()
            # The encoder in its own process, as deployed, so the clients and the server do not share a loop.
            encoder = subprocess.Popen(
                [
                    sys.executable, "-m", "service.cli", "encoder",
                    "--host", "127.0.0.1", "--port", str(port), "--health-port", str(health_port),
                    "--metrics-port", "0", "--redis-url", redis_server.url, "--triton-url", triton.grpc_url,
                    "--model-id", checkpoint.model_id, "--log-level", "WARNING",
                ],
                env=dict(os.environ),
            )  # fmt: skip
            try:
                asyncio.run(wait_serving(f"127.0.0.1:{health_port}"))
                asyncio.run(measure(f"127.0.0.1:{port}", redis_server.url, triton.grpc_url, Path(work), args))
            finally:
                encoder.terminate()
                encoder.wait(timeout=30)


if __name__ == "__main__":
    main()
