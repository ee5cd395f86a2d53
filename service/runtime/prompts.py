"""Prompts in original-image pixels: validation and the transform into the model's 1024 frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from segment_anything.utils.transforms import ResizeLongestSide

from service.constants import IMAGE_INPUT_SIZE, LOW_RES_MASK_SIZE
from service.errors import InvalidArgument, ResourceExhausted
from service.image_info import ImageInfo

_RESIZE = ResizeLongestSide(IMAGE_INPUT_SIZE)


def prompt_field(index: int, *parts: str) -> str:
    """The request field path of prompt `index` or a part of it: prompt_field(1, "box") → "prompts[1].box"."""
    return ".".join((f"prompts[{index}]", *parts))


@dataclass(frozen=True, eq=False)
class Prompt:
    """One object's prompt, as `SamPredictor.predict` takes it, in original-image pixels."""

    point_coords: np.ndarray | None = None  # (N, 2) float: x, y
    point_labels: np.ndarray | None = None  # (N,) int: 1 foreground, 0 background
    box: np.ndarray | None = None  # (4,) float: x0, y0, x1, y1
    mask_input: np.ndarray | None = None  # (1, 256, 256) float32 logits

    @property
    def point_count(self) -> int:
        return 0 if self.point_coords is None else int(self.point_coords.shape[0])

    def batch_signature(self) -> tuple[int, bool, bool]:
        """Prompts with equal signatures run through the model as one batch."""
        return (self.point_count, self.box is not None, self.mask_input is not None)


@dataclass(frozen=True)
class PromptLimits:
    max_points: int = 64
    max_objects: int = 16
    # How far outside the image (in pixels) a point or box may reach: clients round, clicks land on edges.
    coordinate_tolerance: float = 1.0


def validate_prompts(prompts: list[Prompt], info: ImageInfo, limits: PromptLimits = PromptLimits()) -> None:
    """Raise InvalidArgument / ResourceExhausted naming the first field at fault."""
    if not prompts:
        raise InvalidArgument("at least one prompt is required", "prompts")
    if len(prompts) > limits.max_objects:
        raise ResourceExhausted(f"{len(prompts)} prompts, over the limit of {limits.max_objects}", "prompts")
    for index, prompt in enumerate(prompts):
        _validate_prompt(prompt, info, limits, prompt_field(index))


def _validate_prompt(prompt: Prompt, info: ImageInfo, limits: PromptLimits, field: str) -> None:
    if prompt.point_count == 0 and prompt.box is None:
        raise InvalidArgument("needs at least one point or a box", field)
    if prompt.point_count > limits.max_points:
        raise ResourceExhausted(
            f"{prompt.point_count} points, over the limit of {limits.max_points}", f"{field}.points"
        )
    if prompt.point_coords is not None and prompt.point_labels is not None:
        for index, ((x, y), label) in enumerate(
            zip(prompt.point_coords.tolist(), prompt.point_labels.tolist(), strict=True)
        ):
            point_field = f"{field}.points[{index}]"
            _check_inside(x, info.original_size[1], limits, f"{point_field}.x")
            _check_inside(y, info.original_size[0], limits, f"{point_field}.y")
            if label not in (0, 1):
                raise InvalidArgument(f"is {label}; must be 1 (foreground) or 0 (background)", f"{point_field}.label")
    if prompt.box is not None:
        x0, y0, x1, y1 = prompt.box.tolist()
        for name, value, side in (("x0", x0, 1), ("y0", y0, 0), ("x1", x1, 1), ("y1", y1, 0)):
            _check_inside(value, info.original_size[side], limits, f"{field}.box.{name}")
        if not (x0 < x1 and y0 < y1):
            raise InvalidArgument(
                f"is inverted or empty ({x0}, {y0}, {x1}, {y1}); needs x0 < x1 and y0 < y1", f"{field}.box"
            )
    if prompt.mask_input is not None:
        expected = (1, LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE)
        if prompt.mask_input.shape != expected:
            raise InvalidArgument(f"has shape {prompt.mask_input.shape}; must be {expected}", f"{field}.mask_input")
        if not np.isfinite(prompt.mask_input).all():
            raise InvalidArgument("holds NaN or infinite values", f"{field}.mask_input")


def _check_inside(value: float, side: int, limits: PromptLimits, field: str) -> None:
    if not np.isfinite(value):
        raise InvalidArgument(f"is {value}; must be a finite number", field)
    if not -limits.coordinate_tolerance <= value <= side + limits.coordinate_tolerance:
        raise InvalidArgument(f"is {value}, outside the image (0 to {side} pixels)", field)


def points_to_model_frame(point_coords: np.ndarray, info: ImageInfo) -> np.ndarray:
    """(…, 2) x, y in original pixels to the 1024 frame, with the reference's arithmetic (float64)."""
    return _RESIZE.apply_coords(point_coords, info.original_size)


def boxes_to_model_frame(boxes: np.ndarray, info: ImageInfo) -> np.ndarray:
    """(B, 4) x0, y0, x1, y1 in original pixels to the 1024 frame."""
    return _RESIZE.apply_boxes(boxes, info.original_size)
