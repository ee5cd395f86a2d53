"""Decoder figures, measured in one run on a real decoder process over a real Redis (tiny checkpoint, CPU).

1. Per-prompt latency over a warm stream ÷ in-process `SamPredictor.predict` for the same image size and
   prompt (medians of --prompts each, measured in alternating blocks of 10 so machine load hits both alike): what the
   service adds to the model (gRPC, the proto round trip, mask encoding as RLE, the thread hop).
2. Prompts/s with 8 concurrent streams ÷ prompts/s with 1 stream (each stream sends a request and waits
   for its answer, as an interactive client does), for each --decode-workers value given.

Prints ratios and the figures behind them; asserts nothing about absolute timings.

    .venv/bin/python bench/bench_decoder.py [--prompts 60] [--size 480x640] [--workers 1 2]
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
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image
from segment_anything import SamPredictor

from service._proto.sam.v1 import sam_pb2
from service.cache.codec import EncodedEmbedding, decode_embedding, encode_embedding
from service.cache.keys import image_key_of
from service.cache.store import EmbeddingStore, connect_redis
from service.client import AsyncSamClient, SamClient, make_prompt
from service.local.ports import free_port
from service.local.redis_server import RedisServer
from service.runtime.checkpoint import CheckpointInfo, inspect_checkpoint, load_state_dict, make_test_checkpoint
from service.runtime.families.sam1 import build_sam
from service.runtime.image_encoder import ImageEncoderRole
from service.runtime.preprocess import prepare_encoder_input

STREAMS = 8
BLOCK = 10
MASK_NONE = sam_pb2.MASK_FORMAT_NONE


def make_image(rows: int, columns: int) -> tuple[np.ndarray, bytes]:
    rng = np.random.default_rng(11)
    grid_rows, grid_columns = np.mgrid[0:rows, 0:columns]
    rgb = np.stack([grid_rows * 255 // rows, grid_columns * 255 // columns, rng.integers(0, 255, (rows, columns))], -1)
    rgb = rgb.astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return rgb, buffer.getvalue()


def click(index: int, rows: int, columns: int) -> tuple[float, float, int]:
    return (float((index * 37) % columns), float((index * 23) % rows), 1)


def start_decoder(checkpoint: CheckpointInfo, redis_url: str, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "service.cli", "decoder", "--host", "127.0.0.1", "--port", str(port),
               "--metrics-port", "0", "--redis-url", redis_url, "--checkpoint", str(checkpoint.path),
               "--model-id", checkpoint.model_id, "--decode-workers", str(workers), "--log-level", "WARNING"]  # fmt: skip
    process = subprocess.Popen(command)
    target = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return process, target
            except grpc.RpcError:
                pass
            if process.poll() is not None:
                raise RuntimeError(f"the decoder exited with {process.returncode}")
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("the decoder did not become SERVING within 120 s")


def stop_decoder(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def latency_ratio(target: str, image_key: str, predictor: SamPredictor, size: tuple[int, int], prompts: int) -> None:
    service_seconds, bare_seconds, reference_seconds = [], [], []
    with SamClient(decoder_target=target) as client, client.open_stream(timeout_seconds=600) as stream:
        for index in range(5):  # warm the stream, the LRU and both models
            stream.segment(image_key, [make_prompt(points=[click(index, *size)])], multimask_output=True)
            predictor.predict(np.array([click(index, *size)[:2]]), np.array([1]), multimask_output=True)
        # Blocks, not strict interleaving: torch's idle OpenMP threads spin for a while after each call and
        # would steal the CPU from the other process; alternating blocks still spreads machine load over both.
        for block_start in range(0, prompts, BLOCK):
            points = [click(5 + index, *size) for index in range(block_start, min(block_start + BLOCK, prompts))]
            for point in points:
                started = time.perf_counter()
                stream.segment(image_key, [make_prompt(points=[point])], multimask_output=True)
                service_seconds.append(time.perf_counter() - started)
            for point in points:
                started = time.perf_counter()
                stream.segment(image_key, [make_prompt(points=[point])], multimask_output=True, mask_format=MASK_NONE)
                bare_seconds.append(time.perf_counter() - started)
            for point in points:
                started = time.perf_counter()
                with torch.inference_mode():
                    predictor.predict(np.array([point[:2]]), np.array([1]), multimask_output=True)
                reference_seconds.append(time.perf_counter() - started)
    service, reference = statistics.median(service_seconds), statistics.median(reference_seconds)
    bare = statistics.median(bare_seconds)
    print(
        f"per-prompt latency, warm stream, {size[0]}x{size[1]}, 1 point, 3 masks as RLE ({prompts} prompts): "
        f"service {service * 1e3:.1f} ms / SamPredictor.predict {reference * 1e3:.1f} ms = {service / reference:.2f}"
    )
    print(
        f"  the same without full-size masks (MASK_FORMAT_NONE: scores, area, bbox): {bare * 1e3:.1f} ms, "
        f"ratio {bare / reference:.2f}"
    )


async def prompts_per_second(target: str, image_key: str, size: tuple[int, int], streams: int, total: int) -> float:
    async with AsyncSamClient(decoder_target=target) as client:

        async def one_stream(number: int) -> None:
            async with client.open_stream(timeout_seconds=600) as stream:
                for index in range(total // streams):
                    point = click(number * 1000 + index, *size)
                    await stream.segment(image_key, [make_prompt(points=[point])], multimask_output=True)

        await one_stream(99)  # warm
        started = time.perf_counter()
        await asyncio.gather(*(one_stream(number) for number in range(streams)))
        return (total // streams * streams) / (time.perf_counter() - started)


async def put_embedding(redis_url: str, image_key: str, value: EncodedEmbedding) -> None:
    store = EmbeddingStore(connect_redis(redis_url), ttl_seconds=0)
    try:
        await store.put(image_key, value)
    finally:
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=60, help="prompts for the latency medians (>= 50)")
    parser.add_argument("--throughput-prompts", type=int, default=64, help="prompts per throughput run")
    parser.add_argument("--size", default="480x640", help="image rows x columns")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="--decode-workers values to compare")
    parser.add_argument("--checkpoint", type=Path, help="a SAM checkpoint; default: a seeded tiny one")
    args = parser.parse_args()
    rows, columns = (int(side) for side in args.size.split("x"))
    with tempfile.TemporaryDirectory() as scratch:
        path = args.checkpoint or make_test_checkpoint("tiny", 0, Path(scratch) / "tiny.pth")
        checkpoint = inspect_checkpoint(path)
        rgb, image_bytes = make_image(rows, columns)
        padded, info = prepare_encoder_input(rgb, checkpoint.arch)
        outputs = ImageEncoderRole(checkpoint).encode(padded[None], np.array([info.input_size]))
        tensors = {name: batch[0] for name, batch in outputs.items()}
        value = encode_embedding(tensors, checkpoint.arch.family.outputs, info, checkpoint.model_id)
        image_key = str(image_key_of(checkpoint.model_id, image_bytes))
        sam = build_sam(checkpoint.arch)
        sam.load_state_dict(load_state_dict(checkpoint.path))
        predictor = SamPredictor(sam.eval())
        predictor.set_image(rgb)
        # The reference decodes the same float16-rounded embedding the service reads from Redis.
        stored = decode_embedding(value.header, value.chunks, checkpoint.model_id)
        rounded = stored.tensors["image_embeddings"].astype(np.float32)
        predictor.features = torch.from_numpy(rounded)[None]
        print(
            f"machine: {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, checkpoint {checkpoint.model_id}"
        )
        with RedisServer() as redis_server:
            asyncio.run(put_embedding(redis_server.url, image_key, value))
            for position, workers in enumerate(args.workers):
                process, target = start_decoder(checkpoint, redis_server.url, workers)
                try:
                    if position == 0:
                        latency_ratio(target, image_key, predictor, (rows, columns), args.prompts)
                    one = asyncio.run(
                        prompts_per_second(target, image_key, (rows, columns), 1, args.throughput_prompts)
                    )
                    many = asyncio.run(
                        prompts_per_second(target, image_key, (rows, columns), STREAMS, args.throughput_prompts)
                    )
                    print(
                        f"throughput, --decode-workers {workers}: {STREAMS} streams {many:.2f} prompts/s / "
                        f"1 stream {one:.2f} prompts/s = {many / one:.2f}"
                    )
                finally:
                    stop_decoder(process)
    return 0


if __name__ == "__main__":
    sys.exit(main())
