"""SegmentEverything against SamAutomaticMaskGenerator on the same checkpoint and (float16-rounded) embedding, on
each decoder backend: the thresholds, box NMS and small-region removal each exercised (random masks all span the
image, so NMS at AMG's 0.7 leaves few); progress, chunked answers, every format, errors, and fairness to an
interactive stream while it runs."""

from __future__ import annotations

import asyncio
import statistics
import time

import grpc
import numpy as np
import pytest

from service._proto.sam.v1 import sam_pb2
from service.client import AsyncSamClient, make_prompt, mask_of
from service.decoder.server import DecoderServer
from service.runtime.checkpoint import CheckpointInfo
from tests.numerical_contract import reference_sam
from tests.support.amg import assert_matches_everything, reference_everything
from tests.support.reference import StoreImage

pytestmark = pytest.mark.slow

CASES = {
    "thresholds": {"pred_iou_thresh": 0.05, "stability_score_thresh": 0.005, "box_nms_thresh": 1.0},
    "nms": {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 0.7},
    "small_regions": {
        "pred_iou_thresh": 0.05,
        "stability_score_thresh": 0.0,
        "box_nms_thresh": 1.0,
        "min_mask_region_area": 150,
    },  # fmt: skip
}


# (case, backend): every case on the default onnx backend, one on torch too; the reference runs once per case.
RUNS = [*((case, "onnx") for case in sorted(CASES)), ("thresholds", "torch")]
_REFERENCES: dict[str, list[dict[str, object]]] = {}


@pytest.fixture(scope="module")
def sam(tiny_checkpoint: CheckpointInfo) -> object:
    return reference_sam(tiny_checkpoint)


@pytest.mark.parametrize(("case", "backend"), RUNS)
async def test_everything_matches_the_automatic_mask_generator(
    case: str,
    backend: str,
    decoder_server: DecoderServer,
    torch_decoder_server: DecoderServer,
    store_image: StoreImage,
    sam: object,
) -> None:
    image, _ = await store_image(120, 160, seed=3)
    parameters = {"points_per_side": 6, "points_per_batch": 16, **CASES[case]}
    if case not in _REFERENCES:
        _REFERENCES[case] = reference_everything(sam, image.rgb, image.stored, **parameters)  # type: ignore[arg-type]
    expected = _REFERENCES[case]
    server = decoder_server if backend == "onnx" else torch_decoder_server
    progress: list[sam_pb2.EverythingProgress] = []
    async with AsyncSamClient(decoder_target=server.target) as client:
        ours = await client.segment_everything(
            image.image_key, timeout_seconds=120, on_progress=progress.append, **parameters
        )
    assert_matches_everything(ours, expected)  # type: ignore[arg-type]
    assert [(item.points_done, item.points_total) for item in progress] == [(16, 36), (32, 36), (36, 36)]
    if case == "nms":
        assert 0 < len(ours) < 10  # NMS at 0.7 dropped most of the 108 masks
    else:
        assert len(ours) >= 20
    scores = [mask.mask.score for mask in ours]
    if case != "small_regions":
        assert scores == sorted(scores, reverse=True)


async def test_formats_agree_and_messages_stay_small(decoder_client: AsyncSamClient, store_image: StoreImage) -> None:
    image, _ = await store_image(120, 160, seed=3)
    parameters = {"points_per_side": 6, **CASES["thresholds"]}
    answers = {}
    for mask_format in (sam_pb2.MASK_FORMAT_RLE, sam_pb2.MASK_FORMAT_PNG, sam_pb2.MASK_FORMAT_POLYGON):
        answers[mask_format] = await decoder_client.segment_everything(
            image.image_key, mask_format=mask_format, **parameters
        )
    rle = answers[sam_pb2.MASK_FORMAT_RLE]
    assert len(rle) > 16  # more than one message of masks
    for mask_format, masks in answers.items():
        assert [(mask.point.x, mask.point.y) for mask in masks] == [(mask.point.x, mask.point.y) for mask in rle]
        for ours, reference in zip(masks, rle, strict=True):
            assert np.array_equal(mask_of(ours.mask), mask_of(reference.mask)), mask_format
            assert (ours.mask.area, ours.mask.stability_score) == (reference.mask.area, reference.mask.stability_score)


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"points_per_side": 300}, "points_per_side"),
        ({"box_nms_thresh": 1.5}, "box_nms_thresh"),
        ({"points": [(500.0, 10.0)]}, "points[0]"),
        ({"mask_format": 99}, "format"),
    ],
)
async def test_bad_parameters_are_invalid_argument(
    decoder_client: AsyncSamClient, store_image: StoreImage, parameters: dict[str, object], field: str
) -> None:
    image, _ = await store_image(120, 160, seed=3)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await decoder_client.segment_everything(image.image_key, **parameters)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (raised.value.details() or "")


async def test_unknown_keys_and_the_cost_bound(decoder_client: AsyncSamClient, store_image: StoreImage) -> None:
    image, _ = await store_image(120, 160, seed=3)
    unknown = image.image_key.replace(image.image_key[-10:-1], "0" * 9)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await decoder_client.segment_everything(unknown)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    large, _ = await store_image(600, 800, seed=4)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await decoder_client.segment_everything(large.image_key, points_per_side=256)  # 65536 x 3 x 480000 pixels
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--max-everything-mask-pixels" in (raised.value.details() or "")


async def test_an_interactive_stream_stays_responsive_and_cancelling_stops_the_work(
    decoder_server: DecoderServer, decoder_client: AsyncSamClient, store_image: StoreImage
) -> None:
    image, _ = await store_image(600, 800, seed=4)

    async def one_prompt(stream: object, index: int) -> float:
        started = time.perf_counter()
        await stream.segment(image.image_key, [make_prompt(points=[(10.0 + index, 300.0, 1)])], multimask_output=True)  # type: ignore[attr-defined]
        return time.perf_counter() - started

    async with decoder_client.open_stream(timeout_seconds=120) as stream:
        for index in range(3):
            await one_prompt(stream, index)
        idle = statistics.median([await one_prompt(stream, index) for index in range(5)])
        everything = asyncio.create_task(
            decoder_client.segment_everything(
                image.image_key, points_per_side=32, pred_iou_thresh=0.0, stability_score_thresh=0.0
            )  # fmt: skip
        )
        await asyncio.sleep(1.0)
        during = [await one_prompt(stream, 10 + index) for index in range(5)]
        assert not everything.done()
        assert max(during) <= max(3 * idle, 1.0), (during, idle)
        everything.cancel()
        with pytest.raises(asyncio.CancelledError):
            await everything
        deadline = time.monotonic() + 5
        while not decoder_server.engine.idle and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert decoder_server.engine.idle
