"""Encoder figures, measured in one run on real servers with the tiny checkpoint (CPU).

1. Embed latency of a cached image ÷ one Redis read of its embedding (HGETALL of its hash, medians of --repeats
   each): what a cache hit costs next to fetching the 2 MiB value (a hit reads only the header field, plus gRPC
   and hashing the image bytes), so below 1 means a hit is cheaper than the read it avoids.
2. Triton's encode time (a tritonclient round trip, 3 MiB in and 2 MiB out) ÷ the in-process
   ImageEncoderRole.encode time for the same padded image (medians of --encode-repeats): the serving
   overhead of running the encoder behind Triton's python backend.

With --auth the encoder asks for a bearer token (a token file, re-read on change) and makes HMAC keys under a key
secret, and Redis asks for a password; with --tls the Embed calls go over TLS (certificates made for the run, with
`cryptography`). The Redis read it is compared with is a plain loopback HGETALL either way.

Prints ratios and the medians behind them; asserts nothing about absolute timings.

    .venv/bin/python bench/bench_encoder.py [--repeats 100] [--encode-repeats 20] [--auth] [--tls]
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
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from service._proto.sam.v1 import sam_pb2, sam_pb2_grpc
from service.cache.store import connect_redis
from service.local.ports import free_port
from service.local.redis_server import RedisServer
from service.rpc.channel import channel_options
from service.rpc.tls import channel_credentials
from service.runtime.checkpoint import inspect_checkpoint, make_test_checkpoint
from service.runtime.image_encoder import ImageEncoderRole
from service.runtime.image_file import decode_image
from service.runtime.preprocess import prepare_encoder_input
from service.triton.client import TritonEncoderClient
from service.triton.launcher import TritonServer
from service.triton.model_config import TritonModel


async def median_seconds(action: Callable[[], Awaitable[object]], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        await action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def test_image(rows: int = 480, columns: int = 640) -> bytes:
    pixels = np.random.default_rng(7).integers(0, 256, (rows, columns, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


async def wait_serving(address: str, timeout_seconds: float = 60.0) -> None:
    """Health is plaintext and open (the encoder's health port when it serves TLS)."""
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


def security_arguments(work: Path, args: argparse.Namespace) -> tuple[list[str], grpc.ChannelCredentials | None]:
    """The encoder's flags for --auth and --tls, and the client's TLS credentials."""
    arguments: list[str] = []
    credentials = None
    if args.auth:
        (work / "tokens").write_text("bench-token-0123456789abcdef tenant-a\n")
        (work / "key-secret").write_bytes(os.urandom(32).hex().encode())
        arguments += ["--auth-tokens-file", str(work / "tokens"), "--key-secret-file", str(work / "key-secret")]
    if args.tls:
        from tests.support.certificates import make_certificates  # cryptography: a test extra

        certificates = make_certificates(work / "certificates")
        arguments += ["--tls-cert-file", str(certificates.server_cert), "--tls-key-file", str(certificates.server_key)]
        credentials = channel_credentials(certificates.ca)
    return arguments, credentials


async def measure(
    redis_url: str,
    redis_password: str | None,
    triton: TritonServer,
    model_id: str,
    role: ImageEncoderRole,
    args: argparse.Namespace,
    work: Path,
) -> None:
    image = test_image()
    port, health_port = free_port(), free_port()
    security, credentials = security_arguments(work, args)
    environment = dict(os.environ)
    if redis_password:
        environment["SAMSVC_REDIS_PASSWORD"] = redis_password
    # The encoder in its own process, as deployed (`samsvc encoder`), so client and server do not share a loop.
    encoder = subprocess.Popen(
        [
            sys.executable, "-m", "service.cli", "encoder",
            "--host", "127.0.0.1", "--port", str(port), "--health-port", str(health_port), "--metrics-port", "0",
            "--redis-url", redis_url, "--triton-url", triton.grpc_url, "--model-id", model_id,
            "--log-level", "WARNING", *security,
        ],
        env=environment,
    )  # fmt: skip
    metadata = (("authorization", "Bearer bench-token-0123456789abcdef"),) if args.auth else ()
    try:
        address = f"127.0.0.1:{port}"
        await wait_serving(f"127.0.0.1:{health_port}")
        if credentials is not None:
            channel = grpc.aio.secure_channel(f"localhost:{port}", credentials, options=channel_options())
        else:
            channel = grpc.aio.insecure_channel(address, options=channel_options())
        async with channel:
            stub = sam_pb2_grpc.EncoderStub(channel)
            request = sam_pb2.EmbedRequest(image=image)
            first = await stub.Embed(request, timeout=120, metadata=metadata)
            assert not first.cached
            for _ in range(5):  # warm the channel and both processes
                await stub.Embed(request, timeout=10, metadata=metadata)
            embed_cached = await median_seconds(
                lambda: stub.Embed(request, timeout=10, metadata=metadata), args.repeats
            )

        # The baseline: one read of the whole stored embedding (the hash the decoder reads, HGETALL).
        redis = connect_redis(redis_url, redis_password)
        try:
            fields = await redis.hgetall(first.image_key)
            value_bytes = sum(len(field) for field in fields.values())
            for _ in range(5):
                await redis.hgetall(first.image_key)
            redis_get = await median_seconds(lambda: redis.hgetall(first.image_key), args.repeats)
        finally:
            await redis.aclose()
    finally:
        encoder.terminate()
        encoder.wait(timeout=30)

    padded, info = prepare_encoder_input(decode_image(image), role.arch)
    images, sizes = padded[np.newaxis], np.array([info.input_size])
    client = TritonEncoderClient(triton.grpc_url)
    model_name = triton.model_names[0]
    triton_samples, role_samples = [], []
    try:
        await client.encode(model_name, role.arch, padded, info.input_size, 60)  # warm-up
        role.encode(images, sizes)
        # Interleaved, so both see the same background load on a shared machine.
        for _ in range(args.encode_repeats):
            started = time.perf_counter()
            await client.encode(model_name, role.arch, padded, info.input_size, 60)
            triton_samples.append(time.perf_counter() - started)
            started = time.perf_counter()
            role.encode(images, sizes)
            role_samples.append(time.perf_counter() - started)
    finally:
        await client.close()
    triton_encode, role_encode = statistics.median(triton_samples), statistics.median(role_samples)

    security = ", ".join(name for name, on in (("bearer token + HMAC keys + Redis password", args.auth),
                                                ("TLS", args.tls)) if on) or "none"  # fmt: skip
    print(f"image: {len(image)} bytes JPEG 480x640; embedding {value_bytes} bytes in one hash; model {model_id}")
    print(f"security: {security}; key {first.image_key[:40]}...")
    print(f"Embed (cached) median {embed_cached * 1e3:.3f} ms over {args.repeats}")
    print(f"Redis read of the embedding (HGETALL) median {redis_get * 1e3:.3f} ms over {args.repeats}")
    print(f"RATIO cached Embed / Redis read = {embed_cached / redis_get:.2f}")
    print(f"Triton encode (round trip) median {triton_encode * 1e3:.1f} ms over {args.encode_repeats}")
    print(f"in-process ImageEncoderRole.encode median {role_encode * 1e3:.1f} ms over {args.encode_repeats}")
    print(f"RATIO Triton encode / in-process encode = {triton_encode / role_encode:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=100, help="samples for the cached Embed and Redis GET (≥ 50)")
    parser.add_argument("--encode-repeats", type=int, default=20, help="samples for each encode timing")
    parser.add_argument("--auth", action="store_true", help="bearer tokens, HMAC keys and a Redis password")
    parser.add_argument("--tls", action="store_true", help="Embed over TLS")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-encoder-") as work:
        checkpoint = inspect_checkpoint(make_test_checkpoint("tiny", 1234, Path(work) / "sam_tiny.pth"))
        role = ImageEncoderRole(checkpoint)
        password = os.urandom(16).hex() if args.auth else None
        triton_server = TritonServer(models=[TritonModel("sam_image_encoder", checkpoint.arch, str(checkpoint.path))])
        with RedisServer(password=password) as redis_server, triton_server as triton:
            url = redis_server.url_without_password
            asyncio.run(measure(url, password, triton, checkpoint.model_id, role, args, Path(work)))


if __name__ == "__main__":
    main()
