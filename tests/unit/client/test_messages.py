"""Client helpers: prompts built for the wire, masks read back in every encoding, when to re-embed."""

from __future__ import annotations

import numpy as np
import pytest

from service._proto.sam.v1 import sam_pb2
from service.client import (
    EmbeddedImage,
    RequestError,
    SamClient,
    best_logits_of,
    checked,
    make_prompt,
    wants_reembedding,
)
from service.client.messages import call_metadata


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
