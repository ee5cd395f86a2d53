"""The decoder role: SAM's prompt encoder and mask decoder alone, prompts to masks against an embedding.

Several prompts are decoded as one batch per shape (same point count, box or not, mask or not), which
keeps each object's answer identical to the reference's one-prompt-at-a-time call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from segment_anything.modeling import MaskDecoder, PromptEncoder

from service.constants import EMBEDDING_SHAPE
from service.image_info import ImageInfo
from service.runtime.build import build_sam
from service.runtime.checkpoint import CheckpointInfo, inspect_checkpoint, load_state_dict, part_state_dict
from service.runtime.postprocess import binarize, stability_scores, upscale_logits
from service.runtime.prompts import Prompt, boxes_to_model_frame, points_to_model_frame


@dataclass(frozen=True, eq=False)
class ObjectPrediction:
    """The answer for one prompt: C masks (3 with multimask output, else 1) in the model's order."""

    low_res_logits: np.ndarray  # (C, 256, 256) float32
    scores: np.ndarray  # (C,) float32, predicted IoU
    stability_scores: np.ndarray  # (C,) float32
    masks: np.ndarray  # (C, H, W) bool at the original size

    @property
    def best_index(self) -> int:
        return int(np.argmax(self.scores))


class PromptDecoderRole:
    """Holds the prompt encoder and mask decoder weights only (no image encoder)."""

    def __init__(self, checkpoint: CheckpointInfo, device: str = "cpu") -> None:
        self.checkpoint = checkpoint
        self.device = torch.device(device)
        sam = build_sam(checkpoint.arch, device="meta")
        state_dict = load_state_dict(checkpoint.path)
        prompt_encoder: PromptEncoder = sam.prompt_encoder
        mask_decoder: MaskDecoder = sam.mask_decoder
        prompt_encoder.load_state_dict(part_state_dict(state_dict, "prompt_encoder."), strict=True, assign=True)
        mask_decoder.load_state_dict(part_state_dict(state_dict, "mask_decoder."), strict=True, assign=True)
        del sam, state_dict
        self.prompt_encoder = prompt_encoder.to(self.device).eval()
        self.mask_decoder = mask_decoder.to(self.device).eval()
        with torch.inference_mode():
            self._dense_pe = self.prompt_encoder.get_dense_pe()

    @classmethod
    def from_path(cls, path: Path, arch: str | None = None, device: str = "cpu") -> PromptDecoderRole:
        return cls(inspect_checkpoint(path, arch), device=device)

    def parameter_count(self) -> int:
        return sum(p.numel() for module in (self.prompt_encoder, self.mask_decoder) for p in module.parameters())

    @torch.inference_mode()
    def decode(
        self, embedding: np.ndarray | torch.Tensor, info: ImageInfo, prompts: list[Prompt], multimask_output: bool
    ) -> list[ObjectPrediction]:
        """One ObjectPrediction per prompt, in the order of `prompts`; prompts must be validated already."""
        if isinstance(embedding, np.ndarray):
            # float32 copy: stored embeddings are float16 and read-only views of the cached bytes.
            embedding = torch.from_numpy(embedding.astype(np.float32))
        image_embedding = embedding.to(self.device, torch.float32).reshape(1, *EMBEDDING_SHAPE)
        groups: dict[tuple[int, bool, bool], list[int]] = {}
        for index, prompt in enumerate(prompts):
            groups.setdefault(prompt.batch_signature(), []).append(index)
        answers: list[ObjectPrediction | None] = [None] * len(prompts)
        for indexes in groups.values():
            batch = [prompts[index] for index in indexes]
            low_res, scores = self._decode_batch(image_embedding, info, batch, multimask_output)
            for row, index in enumerate(indexes):
                answers[index] = self._postprocess(low_res[row], scores[row], info)
        return [answer for answer in answers if answer is not None]

    def _decode_batch(
        self, image_embedding: torch.Tensor, info: ImageInfo, batch: list[Prompt], multimask_output: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        first = batch[0]
        points = None
        if first.point_coords is not None:
            coords = np.stack([points_to_model_frame(p.point_coords, info) for p in batch])  # type: ignore[arg-type]
            labels = np.stack([p.point_labels for p in batch])  # type: ignore[misc]
            points = (
                torch.as_tensor(coords, dtype=torch.float, device=self.device),
                torch.as_tensor(labels, dtype=torch.int, device=self.device),
            )
        boxes = None
        if first.box is not None:
            box_array = boxes_to_model_frame(np.stack([p.box for p in batch]), info)  # type: ignore[misc]
            boxes = torch.as_tensor(box_array, dtype=torch.float, device=self.device)
        masks = None
        if first.mask_input is not None:
            mask_array = np.stack([p.mask_input for p in batch])  # type: ignore[misc]
            masks = torch.as_tensor(mask_array, dtype=torch.float, device=self.device)
        sparse, dense = self.prompt_encoder(points=points, boxes=boxes, masks=masks)
        return self.mask_decoder(
            image_embeddings=image_embedding,
            image_pe=self._dense_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask_output,
        )

    def _postprocess(self, low_res: torch.Tensor, scores: torch.Tensor, info: ImageInfo) -> ObjectPrediction:
        logits = upscale_logits(low_res[None], info)[0]
        return ObjectPrediction(
            low_res_logits=low_res.float().cpu().numpy(),
            scores=scores.float().cpu().numpy(),
            stability_scores=stability_scores(logits).float().cpu().numpy(),
            masks=binarize(logits).cpu().numpy(),
        )
