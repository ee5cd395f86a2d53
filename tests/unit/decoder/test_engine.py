"""The decode engine's scheduling on the real torch decoder of the tiny model: least attained service first,
micro-batches across requests with answers equal to one-at-a-time ones, idle workers sharing a lone request's
masks, cancellation that drops queued pieces, the answer-size bound, and shutdown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import numpy as np
import pytest

from service.cache.codec import StoredEmbedding
from service.decoder.engine.scheduler import DecodeEngine
from service.decoder.engine.work import SegmentWork, split_masks
from service.decoder.metrics import BATCH_SIZE, PIECE_SECONDS, PIECES_CANCELLED
from service.decoder.query import MaskEncoding, SegmentQuery
from service.errors import ResourceExhausted, Unavailable
from service.image_info import ImageInfo
from service.runtime.checkpoint import CheckpointInfo
from service.runtime.decoder_backend import TorchDecoderBackend
from service.runtime.preprocess import image_info_of
from service.runtime.prompt_decoder import PromptDecoderRole
from service.runtime.prompts import Prompt

SMALL = (300, 400)
LARGE = (3000, 4000)  # 12 megapixels a mask: one mask a piece at 1 Mi piece pixels


@pytest.fixture(scope="module")
def backend(tiny_checkpoint: CheckpointInfo) -> TorchDecoderBackend:
    return TorchDecoderBackend(PromptDecoderRole(tiny_checkpoint))


@pytest.fixture
def engine() -> Iterator[DecodeEngine]:
    engine = DecodeEngine(workers=1, max_batch=4, piece_pixels=1 << 20)
    yield engine
    engine.close()


def stored(size: tuple[int, int], seed: int) -> StoredEmbedding:
    embedding = np.random.default_rng(seed).normal(0, 1, (1, 256, 64, 64)).astype(np.float16)
    info: ImageInfo = image_info_of(size)
    return StoredEmbedding({"image_embeddings": embedding}, info, "tiny")


def work(
    backend: TorchDecoderBackend, image: StoredEmbedding, objects: int, key: str = "a", limit: int = 1 << 30
) -> SegmentWork:
    rows, columns = image.info.original_size
    prompts = tuple(
        Prompt(point_coords=np.array([[columns * (index + 1) / (objects + 2), rows / 2]]), point_labels=np.array([1]))
        for index in range(objects)
    )
    query = SegmentQuery("r", key, prompts, True, MaskEncoding.RLE, False)
    return SegmentWork(query, key, image, backend, limit)


def counts(work: SegmentWork) -> list[list[list[int]]]:
    return [[mask.rle_counts.tolist() for mask in masks if mask is not None] for masks in work.masks]


async def finished_order(engine: DecodeEngine, works: list[SegmentWork], gap_seconds: float) -> list[int]:
    order: list[int] = []

    async def run(index: int) -> None:
        await asyncio.sleep(index * gap_seconds)
        await engine.run(works[index])
        order.append(index)

    await asyncio.gather(*(run(index) for index in range(len(works))))
    return order


def test_a_small_request_overtakes_a_heavy_one(engine: DecodeEngine, backend: TorchDecoderBackend) -> None:
    heavy = work(backend, stored(LARGE, 1), objects=4)  # 12 mask pieces
    small = work(backend, stored(SMALL, 2), objects=1, key="b")
    assert asyncio.run(finished_order(engine, [heavy, small], gap_seconds=0.3)) == [1, 0]
    assert all(mask is not None for masks in heavy.masks for mask in masks)


def test_requests_of_equal_weight_alternate(engine: DecodeEngine, backend: TorchDecoderBackend) -> None:
    first = work(backend, stored(LARGE, 1), objects=2)
    second = work(backend, stored(LARGE, 1), objects=2, key="b")
    started = time.perf_counter()
    asyncio.run(finished_order(engine, [first, second], gap_seconds=0.0))
    elapsed = time.perf_counter() - started
    assert abs(first.attained_seconds - second.attained_seconds) < 0.5 * elapsed


def test_micro_batches_answer_as_one_at_a_time(engine: DecodeEngine, backend: TorchDecoderBackend) -> None:
    image = stored(SMALL, 3)
    alone = [work(backend, image, objects=1 + index % 2) for index in range(4)]
    for item in alone:
        asyncio.run(engine.run(item))
    batched = [work(backend, image, objects=1 + index % 2) for index in range(4)]
    blocker = work(backend, stored(LARGE, 4), objects=1)  # holds the worker while the others queue up
    before = BATCH_SIZE._sum.get()

    async def run_all() -> None:
        blocked = asyncio.create_task(engine.run(blocker))
        await asyncio.sleep(0.05)
        await asyncio.gather(*(engine.run(item) for item in batched), blocked)

    asyncio.run(run_all())
    assert BATCH_SIZE._sum.get() - before == 1 + 6  # every prompt decoded once ...
    assert [counts(item) for item in batched] == [counts(item) for item in alone]  # ... with the same answer


def test_cancelling_drops_queued_pieces(engine: DecodeEngine, backend: TorchDecoderBackend) -> None:
    heavy = work(backend, stored(LARGE, 5), objects=4)
    before = PIECES_CANCELLED._value.get()

    async def cancel_soon() -> None:
        task = asyncio.create_task(engine.run(heavy))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        deadline = time.monotonic() + 5
        while not engine.idle and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    asyncio.run(cancel_soon())
    assert engine.idle
    assert PIECES_CANCELLED._value.get() > before
    assert any(mask is None for masks in heavy.masks for mask in masks)


def test_an_answer_past_its_byte_limit_fails_in_band(engine: DecodeEngine, backend: TorchDecoderBackend) -> None:
    heavy = work(backend, stored(LARGE, 6), objects=4, limit=200)
    with pytest.raises(ResourceExhausted, match="passed 200 bytes"):
        asyncio.run(engine.run(heavy))
    assert engine.idle
    small = work(backend, stored(SMALL, 2), objects=1)
    asyncio.run(engine.run(small))
    assert all(mask is not None for mask in small.masks[0])


def test_closing_fails_queued_requests_unavailable(backend: TorchDecoderBackend) -> None:
    engine = DecodeEngine(workers=1, max_batch=1, piece_pixels=1 << 20)
    heavy = work(backend, stored(LARGE, 7), objects=4)

    async def close_while_running() -> None:
        task = asyncio.create_task(engine.run(heavy))
        await asyncio.sleep(0.3)
        await asyncio.to_thread(engine.close)
        with pytest.raises(Unavailable):
            await task

    asyncio.run(close_while_running())
    late = work(backend, stored(SMALL, 2), objects=1)
    with pytest.raises(Unavailable):
        asyncio.run(engine.run(late))


def test_idle_workers_take_a_share_of_a_lone_requests_masks(backend: TorchDecoderBackend) -> None:
    """With two workers and nothing else to do, one object's 3 masks are encoded as two pieces (the idle worker
    takes one), and the answer is the one a single worker gives."""
    image = stored(SMALL, 5)
    one_worker = DecodeEngine(workers=1, max_batch=1, piece_pixels=1 << 20)
    two_workers = DecodeEngine(workers=2, max_batch=1, piece_pixels=1 << 20)
    try:
        alone = work(backend, image, objects=1)
        asyncio.run(one_worker.run(alone))
        shared = work(backend, image, objects=1)
        before = mask_pieces()
        asyncio.run(two_workers.run(shared))
        assert mask_pieces() - before == 1
        assert counts(shared) == counts(alone) and len(counts(shared)[0]) == 3
    finally:
        one_worker.close()
        two_workers.close()


def mask_pieces() -> float:
    return next(
        sample.value
        for metric in PIECE_SECONDS.collect()
        for sample in metric.samples
        if sample.name.endswith("_count") and sample.labels.get("kind") == "masks"
    )


@pytest.mark.parametrize(
    ("count", "parts", "sizes"), [(3, 2, [2, 1]), (3, 1, [3]), (3, 5, [1, 1, 1]), (12, 3, [4, 4, 4]), (0, 2, [0])]
)
def test_split_masks_into_nearly_equal_runs(count: int, parts: int, sizes: list[int]) -> None:
    masks = tuple((0, index) for index in range(count))
    runs = split_masks(masks, parts)
    assert [len(run) for run in runs] == sizes and tuple(mask for run in runs for mask in run) == masks
