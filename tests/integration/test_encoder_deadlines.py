"""Deadlines against a hung Triton: the answer says whose time ran out, and single-flight waiters wait once.

Issue 10, finding 5: a hung Triton was reported as DEADLINE_EXCEEDED after the fixed 60 s setting even when the
caller allowed 300 s, and each waiter then ran the encode again (119.6 s for the second caller).
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest
from PIL import Image

from service._proto.sam.v1 import sam_pb2, sam_pb2_grpc
from service.encoder.server import EncoderServer, start_encoder
from service.local.redis_server import RedisServer
from service.model_identity import ModelIdentity
from service.rpc.channel import channel_options
from tests.support.hung_triton import HungTriton
from tests.support.servers import encoder_settings

MODEL = ModelIdentity("sam-tiny-00000000000000aa", "tiny", "sam_image_encoder")
TRITON_TIMEOUT_SECONDS = 1.5


def _image(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
async def hung_triton() -> AsyncIterator[HungTriton]:
    triton = await HungTriton().start()
    yield triton
    await triton.stop()


@pytest.fixture
async def encoder(redis_server: RedisServer, hung_triton: HungTriton) -> AsyncIterator[EncoderServer]:
    settings = encoder_settings(
        redis_server.url, hung_triton.url, MODEL.model_id, triton_timeout_seconds=TRITON_TIMEOUT_SECONDS
    )
    server = await start_encoder(settings, models=[MODEL])
    yield server
    await server.stop(grace_seconds=0.5)


async def _embed(address: str, image: bytes, timeout: float) -> tuple[grpc.StatusCode, str, float]:
    started = time.monotonic()
    async with grpc.aio.insecure_channel(address, options=channel_options()) as channel:
        try:
            await sam_pb2_grpc.EncoderStub(channel).Embed(sam_pb2.EmbedRequest(image=image), timeout=timeout)
        except grpc.aio.AioRpcError as error:
            return error.code(), error.details() or "", time.monotonic() - started
    return grpc.StatusCode.OK, "", time.monotonic() - started


async def test_the_settings_timeout_is_unavailable_not_the_callers_deadline(encoder: EncoderServer) -> None:
    code, details, seconds = await _embed(encoder.address, _image(1), timeout=60)
    assert (code, details) == (
        grpc.StatusCode.UNAVAILABLE,
        f"Triton did not answer within {TRITON_TIMEOUT_SECONDS:g} s",
    )
    assert TRITON_TIMEOUT_SECONDS <= seconds < TRITON_TIMEOUT_SECONDS + 5


async def test_the_callers_shorter_deadline_is_deadline_exceeded(encoder: EncoderServer) -> None:
    code, _, seconds = await _embed(encoder.address, _image(2), timeout=0.8)
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert seconds < TRITON_TIMEOUT_SECONDS


async def test_waiters_share_the_failure_and_wait_once(encoder: EncoderServer, hung_triton: HungTriton) -> None:
    image = _image(3)
    first = asyncio.create_task(_embed(encoder.address, image, timeout=60))
    while hung_triton.infer_calls == 0:  # the first call is on Triton: the next ones wait for it
        await asyncio.sleep(0.01)
    others = await asyncio.gather(*(_embed(encoder.address, image, timeout=60) for _ in range(2)))
    answers = [await first, *others]
    assert [code for code, _, _ in answers] == [grpc.StatusCode.UNAVAILABLE] * 3
    assert {details for _, details, _ in answers} == {f"Triton did not answer within {TRITON_TIMEOUT_SECONDS:g} s"}
    # One encode, and no call waited for two: the waiters ended with the holder, not one setting later.
    assert hung_triton.infer_calls == 1
    assert max(seconds for _, _, seconds in answers) < 2 * TRITON_TIMEOUT_SECONDS
