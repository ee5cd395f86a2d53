"""Segment messages to queries and results to messages: wire-level checks name their fields; answers carry what
the pixels say (checked against pycocotools, not against our own helpers)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from service._proto.sam.v1 import sam_pb2
from service.client import logits_of, make_prompt, make_request, mask_of
from service.decoder.mask_encoding import ObjectResult, encode_mask
from service.decoder.query import MaskEncoding
from service.decoder.segment import SegmentResult
from service.decoder.session import StreamSession
from service.errors import MAX_ECHOED_CHARACTERS, InvalidArgument, NotFound, ResourceExhausted
from service.rpc.decoder_convert import error_response, query_of_request, response_of_result
from service.rpc.status import MAX_MESSAGE_CHARACTERS
from service.runtime.mask_summary import summarize_mask

KEY = "sam:m:{" + "0" * 64 + "}"


def _object(masks: np.ndarray, scores: list[float], encoding: MaskEncoding) -> ObjectResult:
    """The answer of one object whose logits are +1 inside `masks` and -1 outside."""
    count = masks.shape[0]
    low_res = np.arange(count * 256 * 256, dtype=np.float32).reshape(count, 256, 256)
    encoded = tuple(
        encode_mask(summarize_mask(np.where(mask, 1.0, -1.0).astype(np.float32)), score, encoding)
        for mask, score in zip(masks, scores, strict=True)
    )
    return ObjectResult(encoded, low_res)


def test_points_box_and_logits_become_a_prompt() -> None:
    prior = np.random.default_rng(0).normal(size=(256, 256)).astype(np.float32)
    request = make_request(
        KEY,
        [make_prompt(points=[(1.5, 2.0, 1), (3, 4, 0)], box=(0, 1, 5, 6), logits=prior)],
        multimask_output=True,
        mask_format=sam_pb2.MASK_FORMAT_PNG,
        return_logits=True,
        request_id="r1",
    )
    query = query_of_request(request, StreamSession())
    first = query.prompts[0]
    assert first.point_coords is not None and first.point_coords.tolist() == [[1.5, 2.0], [3.0, 4.0]]
    assert first.point_labels is not None and first.point_labels.tolist() == [1, 0]
    assert first.box is not None and first.box.tolist() == [0, 1, 5, 6]
    assert first.mask_input is not None and np.array_equal(first.mask_input[0], prior)
    assert (query.encoding, query.multimask_output, query.return_logits, query.request_id, query.image_key) == (
        MaskEncoding.PNG,
        True,
        True,
        "r1",
        KEY,
    )
    plain = query_of_request(make_request(KEY, [make_prompt(points=[(1, 1, 1)])]), StreamSession())
    assert plain.encoding is MaskEncoding.RLE


@pytest.mark.parametrize(
    ("height", "width", "count", "data_bytes", "field"),
    [
        (128, 256, 1, 4 * 256 * 256, "prompts[0].mask_input.logits.size"),
        (256, 256, 2, 8 * 256 * 256, "prompts[0].mask_input.logits.count"),
        (256, 256, 1, 100, "prompts[0].mask_input.logits.data"),
    ],
)
def test_malformed_logits_name_their_field(height: int, width: int, count: int, data_bytes: int, field: str) -> None:
    prompt = sam_pb2.Prompt(points=[sam_pb2.Point(x=1, y=1, label=1)])
    prompt.mask_input.logits.CopyFrom(
        sam_pb2.LowResLogits(size=sam_pb2.ImageSize(height=height, width=width), count=count, data=b"\0" * data_bytes)
    )
    with pytest.raises(InvalidArgument) as raised:
        query_of_request(make_request(KEY, [prompt]), StreamSession())
    assert raised.value.field == field


def test_empty_key_and_unknown_format_are_invalid() -> None:
    with pytest.raises(InvalidArgument, match="image_key"):
        query_of_request(make_request("", [make_prompt(points=[(1, 1, 1)])]), StreamSession())
    with pytest.raises(InvalidArgument) as raised:
        query_of_request(make_request(KEY, [make_prompt(points=[(1, 1, 1)])], mask_format=42), StreamSession())
    assert raised.value.field == "format"


def test_nan_survives_conversion_for_the_runtime_to_reject() -> None:
    query = query_of_request(make_request(KEY, [make_prompt(points=[(math.nan, 1, 7)])]), StreamSession())
    coords, labels = query.prompts[0].point_coords, query.prompts[0].point_labels
    assert coords is not None and math.isnan(coords[0, 0]) and labels is not None and labels.tolist() == [7]


@pytest.mark.parametrize("encoding", list(MaskEncoding))
def test_answers_carry_scores_area_bbox_and_the_mask(encoding: MaskEncoding) -> None:
    masks = np.zeros((3, 5, 7), dtype=bool)
    masks[0, 1:3, 2:6] = True
    masks[2, 4, 6] = True
    result = SegmentResult("r", KEY, (_object(masks, [0.1, 0.2, 0.9], encoding),), ())
    (answer,) = response_of_result(result).objects
    assert [round(mask.score, 6) for mask in answer.masks] == [0.1, 0.2, 0.9]
    for mask, pixels in zip(answer.masks, masks, strict=True):
        # The area and box pycocotools computes from the pixels, independently of our code.
        encoded = coco_mask.encode(np.asfortranarray(pixels.astype(np.uint8)))
        assert mask.area == int(coco_mask.area(encoded))
        assert [mask.bbox.x, mask.bbox.y, mask.bbox.width, mask.bbox.height] == [
            int(value) for value in coco_mask.toBbox(encoded)
        ]
    assert logits_of(answer).shape == (3, 256, 256)
    for mask, expected in zip(answer.masks, masks, strict=True):
        if encoding is MaskEncoding.NONE:
            assert mask.WhichOneof("encoding") is None
        else:
            assert np.array_equal(mask_of(mask), expected)


def test_error_response_carries_code_field_and_reason() -> None:
    request = make_request(KEY, [], request_id="r9")
    assert error_response(request, InvalidArgument("is bad", "prompts[0].box")) == sam_pb2.SegmentResponse(
        request_id="r9",
        image_key=KEY,
        error=sam_pb2.Error(code=3, message="prompts[0].box: is bad", field="prompts[0].box"),
    )
    assert error_response(request, NotFound("gone", "image_key")).error.code == 5
    assert error_response(request, ResourceExhausted("too many", "prompts")).error.code == 8


def test_error_response_echoes_a_long_key_cut() -> None:
    """Issue 10, finding 3: a 10 KB image_key was echoed whole in the answer."""
    long_key = "sam:" + "k" * 10_000
    answer = error_response(make_request(long_key, []), InvalidArgument("x" * 5000, "image_key"))
    assert len(answer.image_key) <= MAX_ECHOED_CHARACTERS and long_key.startswith(answer.image_key[:-1])
    assert len(answer.error.message) <= MAX_MESSAGE_CHARACTERS
    assert error_response(make_request(KEY, []), InvalidArgument("x")).image_key == KEY  # a real key is untouched


def test_previous_takes_the_remembered_mask_of_the_last_answer_for_the_same_image() -> None:
    session = StreamSession()
    best = np.arange(256 * 256, dtype=np.float32).reshape(256, 256)
    session.remember(KEY, [best])
    query = query_of_request(make_request(KEY, [make_prompt(points=[(1, 1, 1)], previous=True)]), session)
    (prompt,) = query.prompts
    assert prompt.mask_input is not None and prompt.mask_input.shape == (1, 256, 256)
    assert np.array_equal(prompt.mask_input[0], best)
    other_key = "sam:m:{" + "1" * 64 + "}"
    with pytest.raises(InvalidArgument, match="last answer was for"):
        query_of_request(make_request(other_key, [make_prompt(previous=True)]), session)
    with pytest.raises(InvalidArgument) as raised:
        query_of_request(make_request(KEY, [make_prompt(), make_prompt(previous=True)]), session)
    assert raised.value.field == "prompts[1].mask_input.previous"
