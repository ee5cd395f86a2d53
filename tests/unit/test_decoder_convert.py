"""Proto requests to runtime prompts and predictions to answers: wire-level checks name their fields."""

from __future__ import annotations

import math

import numpy as np
import pytest

from service._proto.sam.v1 import sam_pb2
from service.client import logits_of, make_prompt, make_request, mask_of
from service.decoder.convert import MaskEncoding, error_message, object_masks_message, query_of_request
from service.decoder.segment import resolve_prompts
from service.decoder.session import StreamSession
from service.errors import InvalidArgument, NotFound, ResourceExhausted
from service.runtime.prompt_decoder import ObjectPrediction


def _prediction(masks: np.ndarray, scores: list[float]) -> ObjectPrediction:
    count = masks.shape[0]
    low_res = np.arange(count * 256 * 256, dtype=np.float32).reshape(count, 256, 256)
    return ObjectPrediction(low_res, np.array(scores, np.float32), np.full(count, 0.5, np.float32), masks)


def test_points_box_and_logits_become_a_prompt() -> None:
    prior = np.random.default_rng(0).normal(size=(256, 256)).astype(np.float32)
    request = make_request(
        "sam:m:" + "0" * 64,
        [make_prompt(points=[(1.5, 2.0, 1), (3, 4, 0)], box=(0, 1, 5, 6), logits=prior), make_prompt(previous=True)],
        multimask_output=True,
        mask_format=sam_pb2.MASK_FORMAT_PNG,
        return_logits=True,
        request_id="r1",
    )
    query = query_of_request(request)
    first = query.prompts[0]
    assert first.point_coords is not None and first.point_coords.tolist() == [[1.5, 2.0], [3.0, 4.0]]
    assert first.point_labels is not None and first.point_labels.tolist() == [1, 0]
    assert first.box is not None and first.box.tolist() == [0, 1, 5, 6]
    assert first.mask_input is not None and np.array_equal(first.mask_input[0], prior)
    assert query.reuse_previous == (1,) and query.prompts[1].mask_input is None
    assert (query.encoding, query.multimask_output, query.return_logits, query.request_id) == (
        MaskEncoding.PNG,
        True,
        True,
        "r1",
    )
    assert query_of_request(make_request("k", [make_prompt(points=[(1, 1, 1)])])).encoding is MaskEncoding.RLE


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
        query_of_request(make_request("k", [prompt]))
    assert raised.value.field == field


def test_empty_key_and_unknown_format_are_invalid() -> None:
    with pytest.raises(InvalidArgument, match="image_key"):
        query_of_request(make_request("", [make_prompt(points=[(1, 1, 1)])]))
    with pytest.raises(InvalidArgument) as raised:
        query_of_request(make_request("k", [make_prompt(points=[(1, 1, 1)])], mask_format=42))
    assert raised.value.field == "format"


def test_nan_survives_conversion_for_the_runtime_to_reject() -> None:
    query = query_of_request(make_request("k", [make_prompt(points=[(math.nan, 1, 7)])]))
    coords, labels = query.prompts[0].point_coords, query.prompts[0].point_labels
    assert coords is not None and math.isnan(coords[0, 0]) and labels is not None and labels.tolist() == [7]


@pytest.mark.parametrize("encoding", list(MaskEncoding))
def test_answers_carry_scores_area_bbox_and_the_mask(encoding: MaskEncoding) -> None:
    masks = np.zeros((3, 5, 7), dtype=bool)
    masks[0, 1:3, 2:6] = True
    masks[2, 4, 6] = True
    answer = object_masks_message(_prediction(masks, [0.1, 0.2, 0.9]), encoding, return_logits=True)
    assert [round(mask.score, 6) for mask in answer.masks] == [0.1, 0.2, 0.9]
    assert [mask.area for mask in answer.masks] == [8, 0, 1]
    box = answer.masks[0].bbox
    assert (box.x, box.y, box.width, box.height) == (2, 1, 4, 2)
    assert logits_of(answer).shape == (3, 256, 256)
    for mask, expected in zip(answer.masks, masks, strict=True):
        if encoding is MaskEncoding.NONE:
            assert mask.WhichOneof("encoding") is None
        else:
            assert np.array_equal(mask_of(mask), expected)


def test_error_message_carries_code_field_and_reason() -> None:
    assert error_message(InvalidArgument("is bad", "prompts[0].box")) == sam_pb2.Error(
        code=3, message="prompts[0].box: is bad", field="prompts[0].box"
    )
    assert error_message(NotFound("gone", "image_key")).code == 5
    assert error_message(ResourceExhausted("too many", "prompts")).code == 8


def test_previous_takes_the_best_mask_of_the_last_answer_for_the_same_image() -> None:
    session = StreamSession()
    masks = np.zeros((3, 4, 4), dtype=bool)
    session.remember("key", [_prediction(masks, [0.1, 0.9, 0.3])])
    query = query_of_request(make_request("key", [make_prompt(points=[(1, 1, 1)], previous=True)]))
    (prompt,) = resolve_prompts(query, session)
    assert prompt.mask_input is not None and prompt.mask_input.shape == (1, 256, 256)
    assert prompt.mask_input[0, 0, 0] == 256 * 256  # mask 1, the highest score
    with pytest.raises(InvalidArgument, match="last answer was for"):
        resolve_prompts(query_of_request(make_request("other", [make_prompt(previous=True)])), session)
    with pytest.raises(InvalidArgument) as raised:
        resolve_prompts(query_of_request(make_request("key", [make_prompt(), make_prompt(previous=True)])), session)
    assert raised.value.field == "prompts[1].mask_input.previous"
