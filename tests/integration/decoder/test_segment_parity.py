"""Answers of the decoder service equal SamPredictor's within the numerical contract (DESIGN.md), on each decoder
backend (onnx, the default, and torch)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from service._proto.sam.v1 import sam_pb2
from service.client import AsyncSamClient, best_logits_of, logits_of, make_prompt, mask_of
from service.decoder.server import DecoderServer
from tests.support.reference import StoreImage, assert_matches_reference

pytestmark = pytest.mark.slow


@pytest.fixture(params=["onnx", "torch"])
async def decoder_client(
    request: pytest.FixtureRequest, decoder_server: DecoderServer, torch_decoder_server: DecoderServer
) -> AsyncIterator[AsyncSamClient]:
    """A client of the decoder on each backend."""
    server = decoder_server if request.param == "onnx" else torch_decoder_server
    assert {backend.name for backend in server.backends.values()} == {request.param}
    async with AsyncSamClient(decoder_target=server.target) as client:
        yield client


def _points(*clicks: tuple[float, float, int]) -> dict[str, np.ndarray]:
    return {
        "point_coords": np.array([(x, y) for x, y, _ in clicks], dtype=np.float64),
        "point_labels": np.array([label for _, _, label in clicks]),
    }


@pytest.mark.parametrize("multimask", [True, False])
async def test_points_match_reference(decoder_client: AsyncSamClient, store_image: StoreImage, multimask: bool) -> None:
    image, reference = await store_image(60, 80, seed=1)
    clicks = [(30.0, 20.0, 1), (55.5, 41.0, 0)]
    async with decoder_client.open_stream() as stream:
        answer = await stream.segment(
            image.image_key, [make_prompt(points=clicks)], multimask_output=multimask, return_logits=True
        )
    assert answer.image_key == image.image_key
    assert len(answer.objects) == 1
    assert len(answer.objects[0].masks) == (3 if multimask else 1)
    assert_matches_reference(answer.objects[0], reference, multimask_output=multimask, **_points(*clicks))


async def test_box_and_box_with_points_match_reference(decoder_client: AsyncSamClient, store_image: StoreImage) -> None:
    image, reference = await store_image(90, 70, seed=2)
    box = (10.0, 15.0, 50.0, 80.0)
    async with decoder_client.open_stream() as stream:
        answer = await stream.segment(
            image.image_key,
            [make_prompt(box=box), make_prompt(points=[(30, 40, 1)], box=box)],
            multimask_output=False,
            return_logits=True,
        )
    assert_matches_reference(answer.objects[0], reference, box=np.array(box), multimask_output=False)
    assert_matches_reference(
        answer.objects[1], reference, box=np.array(box), multimask_output=False, **_points((30, 40, 1))
    )


async def test_several_objects_in_one_request(decoder_client: AsyncSamClient, store_image: StoreImage) -> None:
    """Mixed prompt shapes in one request: each object's answer is the reference's for that prompt alone."""
    image, reference = await store_image(64, 96, seed=3)
    prompts = [
        {"points": [(10, 10, 1)]},
        {"box": (40.0, 5.0, 90.0, 60.0)},
        {"points": [(20, 30, 1), (25, 35, 0)]},
        {"points": [(70, 50, 1)]},
        {"points": [(5, 60, 1)], "box": (0.0, 30.0, 40.0, 63.0)},
    ]
    async with decoder_client.open_stream() as stream:
        answer = await stream.segment(
            image.image_key, [make_prompt(**prompt) for prompt in prompts], multimask_output=True, return_logits=True
        )
    assert len(answer.objects) == len(prompts)
    for object_masks, prompt in zip(answer.objects, prompts, strict=True):
        expected: dict[str, object] = {"multimask_output": True}
        if "points" in prompt:
            expected.update(_points(*prompt["points"]))
        if "box" in prompt:
            expected["box"] = np.array(prompt["box"])
        assert_matches_reference(object_masks, reference, **expected)


async def test_refinement_through_the_session(decoder_client: AsyncSamClient, store_image: StoreImage) -> None:
    """`previous` reuses the best mask of the stream's last answer, as a SamPredictor user would feed it back."""
    image, reference = await store_image(60, 80, seed=4)
    first_clicks = [(40.0, 30.0, 1)]
    second_clicks = [(40.0, 30.0, 1), (60.0, 45.0, 0)]
    async with decoder_client.open_stream() as stream:
        first = await stream.segment(
            image.image_key, [make_prompt(points=first_clicks)], multimask_output=True, return_logits=True
        )
        second = await stream.segment(
            image.image_key,
            [make_prompt(points=second_clicks, previous=True)],
            multimask_output=False,
            return_logits=True,
        )
    _, scores, low_res = reference.predict(reference.rounded, multimask_output=True, **_points(*first_clicks))
    reference_prior = low_res[int(np.argmax(scores))][None]
    assert_matches_reference(first.objects[0], reference, multimask_output=True, **_points(*first_clicks))
    # The session's prior is the service's own best mask; it equals the reference's within the contract.
    np.testing.assert_allclose(best_logits_of(first.objects[0]), reference_prior[0], atol=1e-3)
    assert_matches_reference(
        second.objects[0], reference, multimask_output=False, mask_input=reference_prior, **_points(*second_clicks)
    )


async def test_refinement_through_explicit_logits(decoder_client: AsyncSamClient, store_image: StoreImage) -> None:
    image, reference = await store_image(60, 80, seed=5)
    prior = np.random.default_rng(5).normal(0, 4, (1, 256, 256)).astype(np.float32)
    async with decoder_client.open_stream() as stream:
        answer = await stream.segment(
            image.image_key,
            [make_prompt(points=[(20, 20, 1)], logits=prior)],
            multimask_output=True,
            return_logits=True,
        )
    assert_matches_reference(
        answer.objects[0], reference, multimask_output=True, mask_input=prior, **_points((20, 20, 1))
    )


async def test_every_mask_format_holds_the_same_mask(decoder_client: AsyncSamClient, store_image: StoreImage) -> None:
    image, _ = await store_image(60, 80, seed=1)
    prompt = make_prompt(points=[(30, 20, 1)])
    masks = {}
    async with decoder_client.open_stream() as stream:
        for mask_format in (sam_pb2.MASK_FORMAT_UNSPECIFIED, sam_pb2.MASK_FORMAT_PNG, sam_pb2.MASK_FORMAT_PACKED_BITS):
            answer = await stream.segment(image.image_key, [prompt], multimask_output=True, mask_format=mask_format)
            masks[mask_format] = [mask_of(mask) for mask in answer.objects[0].masks]
            for mask, pixels in zip(answer.objects[0].masks, masks[mask_format], strict=True):
                # pycocotools computes area and box from the pixels, independently of the service's code.
                encoded = coco_mask.encode(np.asfortranarray(pixels.astype(np.uint8)))
                box = mask.bbox
                assert [box.x, box.y, box.width, box.height] == [int(value) for value in coco_mask.toBbox(encoded)]
                assert mask.area == int(coco_mask.area(encoded))
        bare = await stream.segment(
            image.image_key, [prompt], multimask_output=True, mask_format=sam_pb2.MASK_FORMAT_NONE
        )
    for pixels in masks.values():
        for got, expected in zip(pixels, masks[sam_pb2.MASK_FORMAT_UNSPECIFIED], strict=True):
            assert np.array_equal(got, expected)
    assert [mask.WhichOneof("encoding") for mask in bare.objects[0].masks] == [None, None, None]
    assert [mask.area for mask in bare.objects[0].masks] == [int(m.sum()) for m in masks[sam_pb2.MASK_FORMAT_PNG]]
    assert not bare.objects[0].low_res_logits.count
    with pytest.raises(ValueError):
        logits_of(bare.objects[0])
