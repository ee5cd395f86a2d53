"""MASK_FORMAT_POLYGON through a real decoder over a real Redis: the polygons, the RLE, the PNG and the packed bits of
one answer are the same pixels, a tolerance simplifies them, a bad tolerance is answered in-band."""

from __future__ import annotations

import grpc
import numpy as np

from service._proto.sam.v1 import sam_pb2
from service.client import AsyncSamClient, make_prompt, mask_of, polygons_of
from service.runtime.polygons import polygons_to_mask
from tests.support.reference import StoreImage

FORMATS = (
    sam_pb2.MASK_FORMAT_RLE,
    sam_pb2.MASK_FORMAT_PNG,
    sam_pb2.MASK_FORMAT_PACKED_BITS,
    sam_pb2.MASK_FORMAT_POLYGON,
)


async def test_polygons_rle_png_and_bits_are_the_same_pixels(
    decoder_client: AsyncSamClient, store_image: StoreImage
) -> None:
    image, _ = await store_image(90, 120, seed=13)
    prompts = [make_prompt(points=[(30, 40, 1)]), make_prompt(box=(60, 10, 110, 80))]
    async with decoder_client.open_stream(timeout_seconds=60) as stream:
        answers = {
            mask_format: await stream.segment(image.image_key, prompts, multimask_output=True, mask_format=mask_format)
            for mask_format in FORMATS
        }
    checked = 0
    for object_index in range(len(prompts)):
        for mask_index in range(3):
            masks = [mask_of(answers[f].objects[object_index].masks[mask_index]) for f in FORMATS]
            assert all(np.array_equal(mask, masks[0]) for mask in masks[1:])
            polygon_mask = answers[sam_pb2.MASK_FORMAT_POLYGON].objects[object_index].masks[mask_index]
            assert polygon_mask.area == int(masks[0].sum())
            checked += int(masks[0].any())
    assert checked >= 3  # random weights still draw masks with pixels


async def test_a_tolerance_simplifies_the_polygons(decoder_client: AsyncSamClient, store_image: StoreImage) -> None:
    image, _ = await store_image(90, 120, seed=13)
    prompts = [make_prompt(box=(20, 10, 110, 80))]
    counts = []
    async with decoder_client.open_stream(timeout_seconds=60) as stream:
        for tolerance in (0.0, 3.0):
            answer = await stream.segment(
                image.image_key, prompts, mask_format=sam_pb2.MASK_FORMAT_POLYGON, polygon_tolerance=tolerance
            )
            (mask,) = answer.objects[0].masks
            polygons = polygons_of(mask)
            assert polygons_to_mask(polygons, (90, 120)).any()
            counts.append(sum(polygon.vertex_count for polygon in polygons))
    assert counts[1] < counts[0]


async def test_a_negative_tolerance_is_answered_in_band(
    decoder_client: AsyncSamClient, store_image: StoreImage
) -> None:
    image, _ = await store_image(90, 120, seed=13)
    async with decoder_client.open_stream(timeout_seconds=60) as stream:
        answer = await stream.segment(
            image.image_key,
            [make_prompt(points=[(30, 40, 1)])],
            mask_format=sam_pb2.MASK_FORMAT_POLYGON,
            polygon_tolerance=-2.0,
            raise_on_error=False,
        )
        assert answer.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert answer.error.field == "polygon_tolerance"
        # The stream lives on.
        again = await stream.segment(image.image_key, [make_prompt(points=[(30, 40, 1)])])
        assert len(again.objects) == 1
