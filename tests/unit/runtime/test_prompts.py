"""Prompt validation: every bad prompt names its field and why."""

from __future__ import annotations

import numpy as np
import pytest

from service.errors import InvalidArgument, ResourceExhausted
from service.runtime.preprocess import image_info_of
from service.runtime.prompts import Prompt, PromptLimits, validate_prompts

INFO = image_info_of((480, 640))


def point(x: float, y: float, label: int = 1) -> Prompt:
    return Prompt(np.array([[x, y]], dtype=float), np.array([label]))


@pytest.mark.parametrize(
    ("prompts", "error", "field", "message"),
    [
        ([], InvalidArgument, "prompts", "at least one prompt"),
        ([Prompt()], InvalidArgument, "prompts[0]", "at least one point or a box"),
        ([point(10, 10), point(float("nan"), 10)], InvalidArgument, "prompts[1].points[0].x", "finite"),
        ([point(10, float("inf"))], InvalidArgument, "prompts[0].points[0].y", "finite"),
        ([point(10, 10, label=2)], InvalidArgument, "prompts[0].points[0].label", "must be 1"),
        ([point(10, 10, label=-1)], InvalidArgument, "prompts[0].points[0].label", "must be 1"),
        ([point(700, 10)], InvalidArgument, "prompts[0].points[0].x", "outside the image"),
        ([point(10, -5)], InvalidArgument, "prompts[0].points[0].y", "outside the image"),
        ([Prompt(box=np.array([50.0, 50, 10, 100]))], InvalidArgument, "prompts[0].box", "inverted"),
        ([Prompt(box=np.array([50.0, 50, 60, 50]))], InvalidArgument, "prompts[0].box", "inverted"),
        ([Prompt(box=np.array([0.0, 0, 900, 100]))], InvalidArgument, "prompts[0].box.x1", "outside"),
        ([Prompt(box=np.array([0.0, np.nan, 9, 100]))], InvalidArgument, "prompts[0].box.y0", "finite"),
        (
            [Prompt(box=np.array([0.0, 0, 9, 9]), mask_input=np.zeros((1, 64, 64), np.float32))],
            InvalidArgument,
            "prompts[0].mask_input",
            "shape",
        ),
        (
            [Prompt(box=np.array([0.0, 0, 9, 9]), mask_input=np.full((1, 256, 256), np.nan, np.float32))],
            InvalidArgument,
            "prompts[0].mask_input",
            "NaN",
        ),
        ([point(1, 1)] * 17, ResourceExhausted, "prompts", "limit of 16"),
        (
            [Prompt(np.ones((65, 2)), np.ones(65, dtype=int))],
            ResourceExhausted,
            "prompts[0].points",
            "limit of 64",
        ),
    ],
)
def test_bad_prompts_name_their_field(prompts: list[Prompt], error: type, field: str, message: str) -> None:
    with pytest.raises(error, match=message) as raised:
        validate_prompts(prompts, INFO, PromptLimits())
    assert raised.value.field == field


def test_edges_and_small_overshoot_are_accepted() -> None:
    validate_prompts([point(640, 480), point(-0.5, 480.9), Prompt(box=np.array([0.0, 0, 640, 480]))], INFO)
