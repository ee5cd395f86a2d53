"""What runs the prompt encoder and mask decoder for the decoder service: one interface, two engines.

`torch` runs the family's own modules (service.runtime.prompt_decoder: the oracle's arithmetic); `onnx` runs
the batched graph on ONNX Runtime (service.runtime.onnx.backend). Both take prompts of several requests, possibly
on different images of one model, and answer each with its low-res logits and scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from service.image_info import ImageInfo
from service.runtime.checkpoint import CheckpointInfo
from service.runtime.prompt_decoder import LowResPrediction, PromptDecoderRole
from service.runtime.prompts import Prompt

BACKEND_NAMES = ("torch", "onnx")


@dataclass(frozen=True, eq=False)
class DecodeItem:
    """One prompt against one stored embedding."""

    embedding_key: str  # the image key, which names the embedding's content: one key, one embedding
    tensors: Mapping[str, np.ndarray]  # the family's stored tensors by name (float16 / float32, read-only views)
    info: ImageInfo
    prompt: Prompt


class DecoderBackend(Protocol):
    name: str
    checkpoint: CheckpointInfo

    def decode(self, items: Sequence[DecodeItem], multimask_output: bool, alone: bool) -> list[LowResPrediction]:
        """The answer of each item, in order. `alone`: no other decode runs in this process now, so the call may
        use every core; the answer is the same to the bit either way (batched with other items it may differ in
        float rounding, about 1e-6: --decode-max-batch is 1 by default)."""
        ...


class TorchDecoderBackend:
    """The family's own prompt encoder and mask decoder in torch; prompts batch per image and prompt shape."""

    name = "torch"

    def __init__(self, role: PromptDecoderRole) -> None:
        self.role = role
        self.checkpoint = role.checkpoint

    def decode(self, items: Sequence[DecodeItem], multimask_output: bool, alone: bool) -> list[LowResPrediction]:
        by_image: dict[str, list[int]] = {}
        for index, item in enumerate(items):
            by_image.setdefault(item.embedding_key, []).append(index)
        answers: list[LowResPrediction | None] = [None] * len(items)
        for indexes in by_image.values():
            first = items[indexes[0]]
            prompts = [items[index].prompt for index in indexes]
            for index, answer in zip(
                indexes, self.role.decode_low_res(first.tensors, first.info, prompts, multimask_output), strict=True
            ):
                answers[index] = answer
        return [answer for answer in answers if answer is not None]
