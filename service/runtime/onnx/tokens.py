"""Prompts to the batched graphs' inputs (service.runtime.onnx.graph): each prompt's token sequence exactly as
`SamPredictor` builds it, padded to the batch's longest with tokens the prompt side masks out; the image side's rows
with their mask inputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
from segment_anything.utils.transforms import ResizeLongestSide

from service.constants import LOW_RES_MASK_SIZE
from service.image_info import ImageInfo
from service.runtime.onnx.graph import NOT_A_POINT_LABEL, PADDING_LABEL
from service.runtime.prompts import Prompt

MULTIMASK_INDICES: Final = np.array([1, 2, 3], dtype=np.int64)
SINGLE_MASK_INDICES: Final = np.array([0], dtype=np.int64)


def token_sequence(prompt: Prompt, info: ImageInfo, input_size: int) -> tuple[np.ndarray, np.ndarray]:
    """SamPredictor's sparse tokens of one prompt: (T, 2) float32 coordinates in the input frame and (T,) int64
    labels: the points, one "not a point" token when there is no box, then the box's corners (labels 2 and 3).
    Coordinates go through ResizeLongestSide in float64, then float32, as SamPredictor computes them."""
    resize = ResizeLongestSide(input_size)
    coords: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    if prompt.point_coords is not None and prompt.point_labels is not None:
        coords.append(resize.apply_coords(np.asarray(prompt.point_coords, dtype=np.float64), info.original_size))
        labels.append(np.asarray(prompt.point_labels, dtype=np.int64))
        if prompt.box is None:
            coords.append(np.zeros((1, 2)))
            labels.append(np.array([NOT_A_POINT_LABEL], dtype=np.int64))
    if prompt.box is not None:
        corners = resize.apply_boxes(np.asarray(prompt.box, dtype=np.float64)[None], info.original_size)
        coords.append(corners.reshape(2, 2))
        labels.append(np.array([2, 3], dtype=np.int64))
    return np.concatenate(coords).astype(np.float32), np.concatenate(labels)


def prompt_feeds(
    prompts: Sequence[tuple[Prompt, ImageInfo]], input_size: int, multimask_output: bool
) -> dict[str, np.ndarray]:
    """The prompt side's point inputs for `prompts`, each with the size of its image."""
    sequences = [token_sequence(prompt, info, input_size) for prompt, info in prompts]
    count, longest = len(prompts), max(labels.shape[0] for _, labels in sequences)
    coords = np.zeros((count, longest, 2), dtype=np.float32)
    labels = np.full((count, longest), PADDING_LABEL, dtype=np.int64)
    for row, (sequence_coords, sequence_labels) in enumerate(sequences):
        coords[row, : sequence_coords.shape[0]] = sequence_coords
        labels[row, : sequence_labels.shape[0]] = sequence_labels
    return {
        "point_coords": coords,
        "point_labels": labels,
        "mask_indices": MULTIMASK_INDICES if multimask_output else SINGLE_MASK_INDICES,
    }


def image_feeds(embeddings: np.ndarray, rows: Sequence[tuple[int, np.ndarray | None]]) -> dict[str, np.ndarray]:
    """The image side's inputs: `embeddings` (E, 256, 64, 64) float16 and one row per (embedding index, mask input
    (1, 256, 256) or None)."""
    mask_input = np.zeros((len(rows), 1, LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE), dtype=np.float32)
    has_mask_input = np.zeros((len(rows),), dtype=np.float32)
    for row, (_, mask) in enumerate(rows):
        if mask is not None:
            mask_input[row] = mask
            has_mask_input[row] = 1.0
    return {
        "image_embeddings": embeddings,
        "embedding_index": np.array([index for index, _ in rows], dtype=np.int64),
        "mask_input": mask_input,
        "has_mask_input": has_mask_input,
    }
