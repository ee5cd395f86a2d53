"""Client helpers: prompts built for the wire, masks read back in every encoding, when to re-embed."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from service._proto.sam.v1 import sam_pb2
from service.client import (
    EmbeddedImage,
    RequestError,
    SamClient,
    SessionMirror,
    best_logits_of,
    checked,
    make_prompt,
    make_request,
    wants_reembedding,
)
from service.client.messages import call_metadata, reopen_delay_seconds, should_reopen


def test_make_prompt() -> None:
    prompt = make_prompt(points=[(1.5, 2, 0)], box=(0, 1, 2, 3))
    assert [(p.x, p.y, p.label) for p in prompt.points] == [(1.5, 2.0, 0)]
    assert (prompt.box.x0, prompt.box.y1) == (0, 3)
    assert not prompt.HasField("mask_input")
    assert make_prompt(previous=True).mask_input.previous
    logits = make_prompt(logits=np.ones((256, 256))).mask_input.logits
    assert (logits.count, logits.size.height, len(logits.data)) == (1, 256, 4 * 256 * 256)


def test_best_logits_are_those_of_the_highest_score() -> None:
    data = np.stack([np.full((256, 256), value, np.float32) for value in (1, 2, 3)])
    answer = sam_pb2.ObjectMasks(
        masks=[sam_pb2.Mask(score=score) for score in (0.2, 0.8, 0.5)],
        low_res_logits=sam_pb2.LowResLogits(
            size=sam_pb2.ImageSize(height=256, width=256), count=3, data=data.tobytes()
        ),
    )
    assert best_logits_of(answer)[0, 0] == 2


def test_reembedding_only_for_not_found_or_data_loss_with_the_image_at_hand() -> None:
    image = EmbeddedImage(b"png", "sam:m:" + "0" * 64, (1, 1), False, "m")
    not_found = sam_pb2.SegmentResponse(error=sam_pb2.Error(code=5, message="gone", field="image_key"))
    damaged = sam_pb2.SegmentResponse(error=sam_pb2.Error(code=15, message="fails its checksum", field="image_key"))
    invalid = sam_pb2.SegmentResponse(error=sam_pb2.Error(code=3, message="bad", field="prompts"))
    assert wants_reembedding(image, not_found)
    assert wants_reembedding(image, damaged)
    assert not wants_reembedding(image.image_key, not_found)
    assert not wants_reembedding(image.image_key, damaged)
    assert not wants_reembedding(image, invalid)
    assert not wants_reembedding(image, sam_pb2.SegmentResponse())
    with pytest.raises(RequestError) as raised:
        checked(invalid, raise_on_error=True)
    assert (raised.value.code.name, raised.value.field) == ("INVALID_ARGUMENT", "prompts")
    assert checked(invalid, raise_on_error=False) is invalid


def test_calls_carry_the_token_given_or_samsvc_auth_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMSVC_AUTH_TOKEN", "from-the-environment")
    assert call_metadata(None) == (("authorization", "Bearer from-the-environment"),)
    assert call_metadata("given") == (("authorization", "Bearer given"),)
    assert call_metadata("") == ()  # explicitly none
    monkeypatch.delenv("SAMSVC_AUTH_TOKEN")
    assert call_metadata(None) == ()
    assert SamClient(token="given").metadata == (("authorization", "Bearer given"),)


def _answer(scores: list[float], logits: list[float] | None, error: bool = False) -> sam_pb2.SegmentResponse:
    """One object's answer: masks with `scores`, and constant (256, 256) logits per mask when given."""
    response = sam_pb2.SegmentResponse()
    if error:
        response.error.code = 3
        return response
    masks = response.objects.add()
    for score in scores:
        masks.masks.add(score=score)
    if logits is not None:
        data = np.stack([np.full((256, 256), value, np.float32) for value in logits])
        masks.low_res_logits.CopyFrom(
            sam_pb2.LowResLogits(
                size=sam_pb2.ImageSize(height=256, width=256), count=len(logits), data=data.astype("<f4").tobytes()
            )
        )
    return response


def _refine(image_key: str = "key-a") -> sam_pb2.SegmentRequest:
    return make_request(image_key, [make_prompt(points=[(1, 1, 1)], previous=True)])


def test_session_mirror_rebuilds_previous_from_the_last_good_answers_logits() -> None:
    mirror = SessionMirror()
    mirror.remember(make_request("key-a", [make_prompt(points=[(1, 1, 1)])]), _answer([0.1, 0.9], [5.0, 7.0]))
    mirror.remember(_refine(), _answer([], None, error=True))  # an in-band error changes nothing

    request = _refine()
    rebuilt = mirror.rebuilt(request)
    prior = rebuilt.prompts[0].mask_input
    assert prior.WhichOneof("source") == "logits"
    assert np.all(np.frombuffer(prior.logits.data, "<f4") == 7.0)  # the best mask's logits
    assert list(rebuilt.prompts[0].points) == list(request.prompts[0].points)
    assert request.prompts[0].mask_input.previous  # the caller's request is left as it was


def test_session_mirror_leaves_previous_alone_without_logits_or_for_another_image() -> None:
    mirror = SessionMirror()
    assert mirror.rebuilt(_refine()) == _refine()  # nothing answered yet
    mirror.remember(_refine(), _answer([0.5], [1.0]))
    assert mirror.rebuilt(_refine("key-b")) == _refine("key-b")  # a prior never crosses to another image
    mirror.remember(_refine(), _answer([0.5], None))  # the last answer carried no logits: nothing to rebuild
    assert mirror.rebuilt(_refine()) == _refine()


def test_only_unavailable_reopens_and_the_waits_grow_to_two_seconds() -> None:
    class Ended(grpc.RpcError):
        def __init__(self, code: grpc.StatusCode) -> None:
            self._code = code

        def code(self) -> grpc.StatusCode:
            return self._code

    assert should_reopen(Ended(grpc.StatusCode.UNAVAILABLE))
    assert not should_reopen(Ended(grpc.StatusCode.DATA_LOSS))
    assert not should_reopen(Ended(grpc.StatusCode.CANCELLED))
    assert not should_reopen(grpc.RpcError())
    assert [reopen_delay_seconds(attempt) for attempt in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
