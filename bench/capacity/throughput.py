"""Throughput per core of a running stack's encoder path (Triton) and decoder, for the capacity model.

Against `samsvc up` (or any stack on this machine: it reads the servers' CPU time from /proc):

1. encodes: `--images` new images embedded with `--concurrency` calls in flight; encodes/s, and encodes per
   CPU-second of tritonserver and its python-backend stubs (the encoder service's own CPU is not counted:
   it hashes and resizes, Triton encodes).
2. prompts: `--streams` Segment streams at once, each sending `--prompts` clicks back to back (no think time) on a
   cached image; prompts/s, and prompts per CPU-second of the decoder process, once with one mask per prompt
   and once with three (multimask).

A CPU-second is one core busy for one second, so "per CPU-second" is "per second per core" for a pod given
that many cores. Prints a Markdown table.

    .venv/bin/python bench/capacity/throughput.py [--encoder 127.0.0.1:50051] [--decoder 127.0.0.1:50052]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "load"))
from workload import image_bytes  # noqa: E402

from service.client import SamClient, make_prompt  # noqa: E402


def listening_process(port: int) -> psutil.Process:
    for connection in psutil.net_connections("tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port and connection.pid:
            return psutil.Process(connection.pid)
    raise SystemExit(f"no process of this machine listens on port {port}")


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def with_children(process: psutil.Process) -> list[psutil.Process]:
    return [process, *process.children(recursive=True)]


def run_concurrently(count: int, work: Callable[[int], None]) -> float:
    """Run work(0..count-1) on `count` threads; the wall-clock seconds."""
    threads = [threading.Thread(target=work, args=(number,)) for number in range(count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def measure_encodes(arguments: argparse.Namespace, triton: list[psutil.Process]) -> tuple[float, float]:
    seed = int(time.time() * 1000) % 10**9
    images = [image_bytes(seed + number, arguments.rows, arguments.columns) for number in range(arguments.images)]
    with SamClient(arguments.encoder) as client:
        client.embed(image_bytes(seed - 1, arguments.rows, arguments.columns))  # warm
        cpu_before = cpu_seconds(triton)

        def embed_share(worker: int) -> None:
            for image in images[worker :: arguments.concurrency]:
                assert not client.embed(image).cached

        wall = run_concurrently(arguments.concurrency, embed_share)
        cpu = cpu_seconds(triton) - cpu_before
    return len(images) / wall, len(images) / cpu


def measure_prompts(
    arguments: argparse.Namespace, decoder: list[psutil.Process], multimask: bool
) -> tuple[float, float]:
    with SamClient(arguments.encoder, arguments.decoder) as client:
        image = client.embed(image_bytes(4242, arguments.rows, arguments.columns))
        with client.open_stream() as stream:  # warm: the embedding into the decoder's LRU
            stream.segment(image, [make_prompt(points=[(10, 10, 1)])])
        cpu_before = cpu_seconds(decoder)

        def click(worker: int) -> None:
            with client.open_stream(timeout_seconds=600) as stream:
                for number in range(arguments.prompts):
                    x = (37 * number + 11 * worker) % arguments.columns
                    y = (23 * number + 7 * worker) % arguments.rows
                    stream.segment(image, [make_prompt(points=[(x, y, 1)])], multimask_output=multimask)

        wall = run_concurrently(arguments.streams, click)
        cpu = cpu_seconds(decoder) - cpu_before
    prompts = arguments.streams * arguments.prompts
    return prompts / wall, prompts / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="127.0.0.1:50051")
    parser.add_argument("--decoder", default="127.0.0.1:50052")
    parser.add_argument("--images", type=int, default=12, help="New images to embed.")
    parser.add_argument("--concurrency", type=int, default=4, help="Embed calls in flight.")
    parser.add_argument("--streams", type=int, default=8, help="Segment streams at once.")
    parser.add_argument("--prompts", type=int, default=25, help="Clicks per stream.")
    parser.add_argument("--rows", type=int, default=480)
    parser.add_argument("--columns", type=int, default=640)
    arguments = parser.parse_args()
    decoder = with_children(listening_process(int(arguments.decoder.rsplit(":", 1)[1])))
    encoder = listening_process(int(arguments.encoder.rsplit(":", 1)[1]))
    # The encoder's Triton: the process listening on the port its --triton-url names.
    command = encoder.cmdline()
    triton_url = command[command.index("--triton-url") + 1]
    triton = with_children(listening_process(int(triton_url.rsplit(":", 1)[1])))

    encodes, encodes_per_cpu = measure_encodes(arguments, triton)
    print("| figure | per second | per CPU-second (= per core) | how |")
    print("| --- | ---: | ---: | --- |")
    print(
        f"| encodes (Triton, {arguments.rows}x{arguments.columns} images) | {encodes:.2f} | {encodes_per_cpu:.2f} "
        f"| {arguments.images} new images, {arguments.concurrency} in flight |"
    )
    for multimask in (False, True):
        prompts, prompts_per_cpu = measure_prompts(arguments, decoder, multimask)
        print(
            f"| prompts (decoder, {'3 masks' if multimask else '1 mask'}, RLE) | {prompts:.1f} "
            f"| {prompts_per_cpu:.1f} | {arguments.streams} streams x {arguments.prompts} clicks, no think time |"
        )


if __name__ == "__main__":
    main()
