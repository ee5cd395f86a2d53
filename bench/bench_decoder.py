"""Decoder figures, measured in one run on real decoder processes over a real Redis (tiny checkpoint, CPU).

P1   per-prompt latency over a warm stream (1 point, 3 masks as RLE) ÷ in-process `SamPredictor.predict` on the
     same float16-rounded embedding and prompt.
P1'  the same stream ÷ the same graph on ONNX Runtime in process, with the same postprocessing (the peers' way:
     a labelling tool running the decoder itself).
P4   prompts/s with 8 concurrent streams ÷ with 1 stream, every prompt distinct (no answer reused).

Each ratio is measured --runs times (each from medians of its own samples, the service and the in-process
figure in alternating blocks so machine load hits both alike); the median of the runs is printed with their range.
For each --max-batch and --decode-threads pair a decoder runs with `--decode-max-batch` and `--decode-threads` set
to them (threads 0: every core for a lone decode); --backends adds `torch`.
--heavy adds the heavy-request figures on a 7000x7000 image: a 4-object x 3-mask RLE request, a 1-prompt request
on another stream while a 16-object request runs (bound raised so it is admitted), latency 1 s after that heavy
stream is cancelled, the 4-object packed-bits answer, and the decoder's peak resident memory.

Prints ratios and the figures behind them; asserts nothing about absolute timings.

    PYTHONPATH=. .venv/bin/python bench/bench_decoder.py [--runs 5] [--max-batch 1 4] [--decode-threads 1 0]
        [--backends onnx torch] [--heavy]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from segment_anything import SamPredictor

from service._proto.sam.v1 import sam_pb2
from service.cache.codec import EncodedEmbedding, decode_embedding, encode_embedding
from service.cache.keys import image_key_of
from service.cache.store import EmbeddingStore, connect_redis
from service.client import AsyncSamClient, SamClient, make_prompt
from service.image_info import ImageInfo
from service.local.redis_server import RedisServer
from service.runtime.checkpoint import CheckpointInfo, inspect_checkpoint, load_state_dict, make_test_checkpoint
from service.runtime.decoder_backend import DecodeItem
from service.runtime.families.sam1 import build_sam
from service.runtime.image_encoder import ImageEncoderRole
from service.runtime.mask_formats import encode_rle
from service.runtime.onnx.backend import OnnxDecoderBackend, graph_paths
from service.runtime.preprocess import prepare_encoder_input
from service.runtime.prompt_decoder import PromptDecoderRole, predict_masks
from service.runtime.prompts import Prompt
from tests.support.decoder_process import decoder_process
from tests.support.memory import PeakMemory  # psutil: the load extra

STREAMS = 8
BLOCK = 10
HEAVY_SIDE = 7000


def make_image(rows: int, columns: int) -> tuple[np.ndarray, bytes]:
    rng = np.random.default_rng(11)
    grid_rows, grid_columns = np.mgrid[0:rows, 0:columns]
    rgb = np.stack([grid_rows * 255 // rows, grid_columns * 255 // columns, rng.integers(0, 255, (rows, columns))], -1)
    rgb = rgb.astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return rgb, buffer.getvalue()


def click(index: int, rows: int, columns: int) -> tuple[float, float, int]:
    """A distinct point for each index (a 97x89 lattice walked with coprime steps)."""
    return (float((index * 37) % 97 * columns // 97), float((index * 23) % 89 * rows // 89), 1)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def latency_ratios(
    stream, image_key: str, size: tuple[int, int], predictor: SamPredictor, in_process: Callable[[tuple], object],
    first: int, prompts: int,
) -> tuple[float, float, float, float, float]:  # fmt: skip
    """(service, predict, in-process ORT) medians, and the two ratios, over `prompts` distinct clicks."""
    service, reference, bare = [], [], []
    for block_start in range(first, first + prompts, BLOCK):
        points = [click(index, *size) for index in range(block_start, block_start + BLOCK)]
        for point in points:
            service.append(
                timed(
                    lambda point=point: stream.segment(image_key, [make_prompt(points=[point])], multimask_output=True)
                )
            )
        for point in points:
            with torch.inference_mode():
                reference.append(
                    timed(
                        lambda point=point: predictor.predict(
                            np.array([point[:2]]), np.array([1]), multimask_output=True
                        )
                    )
                )
        for point in points:
            bare.append(timed(lambda point=point: in_process(point)))
    medians = statistics.median(service), statistics.median(reference), statistics.median(bare)
    return (*medians, medians[0] / medians[1], medians[0] / medians[2])


async def prompts_per_second(target: str, image_key: str, size: tuple[int, int], streams: int, total: int,
                             first: int) -> float:  # fmt: skip
    async with AsyncSamClient(decoder_target=target) as client:

        async def one_stream(number: int) -> None:
            async with client.open_stream(timeout_seconds=600) as stream:
                for index in range(total // streams):
                    point = click(first + number * (total // streams) + index, *size)
                    await stream.segment(image_key, [make_prompt(points=[point])], multimask_output=True)

        started = time.perf_counter()
        await asyncio.gather(*(one_stream(number) for number in range(streams)))
        return (total // streams * streams) / (time.perf_counter() - started)


async def put_embedding(redis_url: str, image_key: str, value: EncodedEmbedding) -> None:
    store = EmbeddingStore(connect_redis(redis_url), ttl_seconds=0)
    try:
        await store.put(image_key, value)
    finally:
        await store.close()


def embed(checkpoint: CheckpointInfo, encoder: ImageEncoderRole, rgb: np.ndarray, image_bytes: bytes
          ) -> tuple[str, EncodedEmbedding, ImageInfo]:  # fmt: skip
    padded, info = prepare_encoder_input(rgb, checkpoint.arch)
    outputs = encoder.encode(padded[None], np.array([info.input_size]))
    tensors = {name: batch[0] for name, batch in outputs.items()}
    value = encode_embedding(tensors, checkpoint.arch.family.outputs, info, checkpoint.model_id)
    return str(image_key_of(checkpoint.model_id, image_bytes)), value, info


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} (runs {min(values):.2f}-{max(values):.2f})"


def measure_config(label: str, target: str, image_key: str, size: tuple[int, int], predictor: SamPredictor,
                   in_process: Callable[[tuple], object], runs: int, prompts: int, throughput_prompts: int) -> None:  # fmt: skip
    p1, p1_prime, p4 = [], [], []
    with SamClient(decoder_target=target) as client, client.open_stream(timeout_seconds=3600) as stream:
        for index in range(5):  # warm the stream, the LRU and every engine
            stream.segment(image_key, [make_prompt(points=[click(index, *size)])], multimask_output=True)
            predictor.predict(np.array([click(index, *size)[:2]]), np.array([1]), multimask_output=True)
            in_process(click(index, *size))
        first = 100
        for run in range(runs):
            service, reference, bare, ratio, ratio_prime = latency_ratios(
                stream, image_key, size, predictor, in_process, first, prompts
            )
            first += prompts
            one = asyncio.run(prompts_per_second(target, image_key, size, 1, throughput_prompts, first))
            first += throughput_prompts
            many = asyncio.run(prompts_per_second(target, image_key, size, STREAMS, throughput_prompts, first))
            first += throughput_prompts
            p1.append(ratio)
            p1_prime.append(ratio_prime)
            p4.append(many / one)
            print(
                f"  {label} run {run + 1}: stream {service * 1e3:.1f} ms, predict {reference * 1e3:.1f} ms, "
                f"ORT in process {bare * 1e3:.1f} ms; {STREAMS} streams {many:.1f} prompts/s, 1 stream {one:.1f}",
                flush=True,
            )
    print(f"{label}: P1 {summary(p1)}  P1' {summary(p1_prime)}  P4 {summary(p4)}", flush=True)


async def heavy_figures(target: str, image_key: str, pid: int) -> None:
    memory = PeakMemory(pid)
    side = (HEAVY_SIDE, HEAVY_SIDE)
    async with AsyncSamClient(decoder_target=target) as client:
        async with client.open_stream(timeout_seconds=600) as small:

            async def one_prompt(index: int) -> float:
                started = time.perf_counter()
                await small.segment(image_key, [make_prompt(points=[click(index, *side)])], multimask_output=False,
                                    mask_format=sam_pb2.MASK_FORMAT_NONE)  # fmt: skip
                return time.perf_counter() - started

            await one_prompt(0)
            idle = statistics.median([await one_prompt(index) for index in range(1, 8)])
            print(f"heavy: idle 1-prompt latency (1 mask, no pixels) {idle * 1e3:.0f} ms", flush=True)
            async with client.open_stream(timeout_seconds=600) as heavy:
                objects = [make_prompt(points=[click(50 + index, *side)]) for index in range(4)]
                started = time.perf_counter()
                await heavy.segment(image_key, objects, multimask_output=True)
                print(f"heavy: 4 objects x 3 masks as RLE on {HEAVY_SIDE}x{HEAVY_SIDE}: "
                      f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
                answer = await heavy.segment(image_key, objects, multimask_output=True, raise_on_error=False,
                                             mask_format=sam_pb2.MASK_FORMAT_PACKED_BITS)  # fmt: skip
                print(f"heavy: 4 x 3 packed bits: in-band {sam_pb2.SegmentResponse.DESCRIPTOR.name} error code "
                      f"{answer.error.code}: {answer.error.message[:160]}", flush=True)  # fmt: skip
                objects = [make_prompt(points=[click(60 + index, *side)]) for index in range(16)]
                task = asyncio.create_task(heavy.segment(image_key, objects, multimask_output=True))
                await asyncio.sleep(1.0)
                during = [await one_prompt(100 + index) for index in range(5)]
                print(f"heavy: 1-prompt latency while 16 x 3 runs: median {statistics.median(during) * 1e3:.0f} ms, "
                      f"max {max(during) * 1e3:.0f} ms = {max(during) / idle:.1f} x idle", flush=True)  # fmt: skip
                task.cancel()
                await heavy.close()
            await asyncio.sleep(1.0)
            after = [await one_prompt(200 + index) for index in range(5)]
            print(f"heavy: 1 s after cancelling it: median {statistics.median(after) * 1e3:.0f} ms "
                  f"= {statistics.median(after) / idle:.2f} x idle", flush=True)  # fmt: skip
    print(f"heavy: decoder peak resident memory {memory.stop() / 2**30:.2f} GiB", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of each ratio; the median is reported")
    parser.add_argument("--prompts", type=int, default=30, help="prompts per latency median (a multiple of 10)")
    parser.add_argument("--throughput-prompts", type=int, default=64, help="prompts per throughput measurement")
    parser.add_argument("--size", default="400x600", help="image rows x columns")
    parser.add_argument("--max-batch", type=int, nargs="+", default=[1, 4], help="--decode-max-batch values")
    parser.add_argument("--decode-threads", type=int, nargs="+", default=[1], help="--decode-threads values (onnx)")
    parser.add_argument("--backends", nargs="+", default=["onnx"], choices=["onnx", "torch"])
    parser.add_argument("--heavy", action="store_true", help="add the 7000x7000 heavy-request figures")
    parser.add_argument("--checkpoint", type=Path, help="a SAM checkpoint; default: a seeded tiny one")
    args = parser.parse_args()
    size = tuple(int(side) for side in args.size.split("x"))
    with tempfile.TemporaryDirectory() as scratch:
        path = args.checkpoint or make_test_checkpoint("tiny", 0, Path(scratch) / "tiny.pth")
        checkpoint = inspect_checkpoint(path)
        encoder = ImageEncoderRole(checkpoint)
        rgb, image_bytes = make_image(*size)
        image_key, value, info = embed(checkpoint, encoder, rgb, image_bytes)
        sam = build_sam(checkpoint.arch)
        sam.load_state_dict(load_state_dict(checkpoint.path))
        predictor = SamPredictor(sam.eval())
        predictor.set_image(rgb)
        # Both in-process references decode the float16-rounded embedding the service reads from Redis.
        stored = decode_embedding(value.header, value.chunks, checkpoint.model_id)
        predictor.features = torch.from_numpy(stored.tensors["image_embeddings"].astype(np.float32))[None]
        graph_dir = Path(scratch) / "graphs"
        role = PromptDecoderRole(checkpoint)
        onnx = OnnxDecoderBackend(role, graph_paths(role, graph_dir, graph_dir), threads=os.cpu_count() or 1)

        def in_process(point: tuple) -> None:
            prompt = Prompt(point_coords=np.array([point[:2]], dtype=np.float64), point_labels=np.array([1]))
            item = DecodeItem(image_key, stored.tensors, info, prompt)
            [low_res] = onnx.decode([item], True, alone=True)
            prediction = predict_masks(low_res, info, checkpoint.arch)
            for mask in prediction.masks:
                encode_rle(mask)

        print(f"machine: {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, image {args.size}, "
              f"checkpoint {checkpoint.model_id}", flush=True)  # fmt: skip
        with RedisServer() as redis_server:
            asyncio.run(put_embedding(redis_server.url, image_key, value))
            configs = [("torch", 1, 1)] if "torch" in args.backends else []
            if "onnx" in args.backends:
                configs[:0] = [("onnx", batch, threads) for batch in args.max_batch for threads in args.decode_threads]
            for backend, max_batch, threads in configs:
                extra = ["--decoder-backend", backend, "--decode-max-batch", str(max_batch), "--decode-threads",
                         str(threads)]  # fmt: skip
                label = f"{backend}, max batch {max_batch}" + (
                    f", decode threads {threads}" if backend == "onnx" else ""
                )
                log = Path(scratch) / f"decoder-{backend}-{max_batch}-{threads}.log"
                with decoder_process(checkpoint, redis_server.url, graph_dir, log, extra) as decoder:
                    measure_config(label, decoder.target, image_key, size, predictor, in_process, args.runs,
                                   args.prompts, args.throughput_prompts)  # fmt: skip
            if args.heavy:
                heavy_rgb = np.zeros((HEAVY_SIDE, HEAVY_SIDE, 3), dtype=np.uint8)
                heavy_rgb[::7, ::5] = 255
                heavy_key, heavy_value, _ = embed(checkpoint, encoder, heavy_rgb, b"heavy-7000")
                asyncio.run(put_embedding(redis_server.url, heavy_key, heavy_value))
                del heavy_rgb
                extra = ["--max-mask-pixels", str(16 * 3 * HEAVY_SIDE * HEAVY_SIDE)]
                with decoder_process(
                    checkpoint, redis_server.url, graph_dir, Path(scratch) / "heavy.log", extra
                ) as decoder:
                    asyncio.run(heavy_figures(decoder.target, heavy_key, decoder.pid))
    return 0


if __name__ == "__main__":
    sys.exit(main())
