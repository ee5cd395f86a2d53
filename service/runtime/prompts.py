"""Prompts in original-image pixels: validation and the transform into the model's 1024 frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from segment_anything.utils.transforms import ResizeLongestSide

from service.constants import LOW_RES_MASK_SIZE
from service.errors import InvalidArgument, ResourceExhausted
from service.image_info import ImageInfo
from service.runtime.families.spec import Arch, ResizeRule


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


@dataclass(frozen=True, eq=False)
class ModelFramePrompts:
    """A batch of same-signature prompts as the prompt encoder takes them, in the model's input frame."""

    points: tuple[torch.Tensor, torch.Tensor] | None  # (B, N, 2) float coordinates, (B, N) int labels
    boxes: torch.Tensor | None  # (B, 4) for SAM 1; SAM 2 takes its boxes as two labelled points instead
    masks: torch.Tensor | None  # (B, 1, 256, 256) float logits


def to_model_frame(batch: list[Prompt], info: ImageInfo, arch: Arch) -> ModelFramePrompts:
    """Prompts of one batch signature to the family's model frame, with its reference predictor's arithmetic:
    SamPredictor's ResizeLongestSide in float64 (sam, tinyvit), or SAM2Transforms' x / width, y / height times the
    input size in float32, box corners becoming points labelled 2 and 3 before the clicks (sam2)."""
    first = batch[0]
    points = boxes = masks = None
    square = arch.family.resize is ResizeRule.SQUARE_FLOAT
    if first.point_coords is not None:
        coords = np.stack([prompt.point_coords for prompt in batch])  # type: ignore[misc]
        labels = torch.as_tensor(np.stack([prompt.point_labels for prompt in batch]), dtype=torch.int)  # type: ignore[misc]
        points = (
            _square_frame(coords, info, arch.input_size) if square else _longest_side_frame(coords, info, arch),
            labels,
        )
    if first.box is not None:
        corners = np.stack([prompt.box for prompt in batch])  # type: ignore[misc]
        if square:
            box_points = _square_frame(corners.reshape(-1, 2, 2), info, arch.input_size)
            box_labels = torch.tensor([[2, 3]], dtype=torch.int).repeat(box_points.shape[0], 1)
            if points is None:
                points = (box_points, box_labels)
            else:
                points = (torch.cat([box_points, points[0]], dim=1), torch.cat([box_labels, points[1]], dim=1))
        else:
            boxes = torch.as_tensor(
                ResizeLongestSide(arch.input_size).apply_boxes(corners, info.original_size), dtype=torch.float
            )
    if first.mask_input is not None:
        masks = torch.as_tensor(np.stack([prompt.mask_input for prompt in batch]), dtype=torch.float)  # type: ignore[misc]
    return ModelFramePrompts(points, boxes, masks)


def _longest_side_frame(coords: np.ndarray, info: ImageInfo, arch: Arch) -> torch.Tensor:
    return torch.as_tensor(
        ResizeLongestSide(arch.input_size).apply_coords(coords, info.original_size), dtype=torch.float
    )


def _square_frame(coords: np.ndarray, info: ImageInfo, size: int) -> torch.Tensor:
    scaled = torch.as_tensor(coords, dtype=torch.float).clone()
    rows, columns = info.original_size
    scaled[..., 0] = scaled[..., 0] / columns
    scaled[..., 1] = scaled[..., 1] / rows
    return scaled * size
