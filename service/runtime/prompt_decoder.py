"""The decoder role: one family's prompt encoder and mask decoder alone, prompts to masks against the tensors
the image encoder stored.

Several prompts are decoded as one batch per shape (same point count, box or not, mask or not), which keeps
each object's answer identical to the reference's one-prompt-at-a-time call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from service.image_info import ImageInfo
from service.runtime.checkpoint import CheckpointInfo, inspect_checkpoint, read_state_dict
from service.runtime.families.spec import Arch, HieraParams
from service.runtime.mask_summary import summarize_mask
from service.runtime.modules import build_and_load, part_state_dict
from service.runtime.postprocess import returned_low_res_logits, upscale_logits
from service.runtime.prompts import ModelFramePrompts, Prompt, to_model_frame


@dataclass(frozen=True, eq=False)
class LowResPrediction:
    """The mask decoder's answer for one prompt, before upscaling: C masks (3 with multimask output, else 1)."""

    logits: np.ndarray  # (C, 256, 256) float32 as the decoder computed them (the masks are upscaled from these)
    scores: np.ndarray  # (C,) float32, predicted IoU


@dataclass(frozen=True, eq=False)
class ObjectPrediction:
    """The answer for one prompt: C masks (3 with multimask output, else 1) in the model's order."""

    low_res_logits: np.ndarray  # (C, 256, 256) float32, as the family's predictor returns them
    scores: np.ndarray  # (C,) float32, predicted IoU
    stability_scores: np.ndarray  # (C,) float32
    masks: np.ndarray  # (C, H, W) bool at the original size

    @property
    def best_index(self) -> int:
        return int(np.argmax(self.scores))


def _build_decoder_modules(
    arch: Arch, state_dict: Mapping[str, torch.Tensor], device: str
) -> tuple[nn.Module, nn.Module]:
    if isinstance(arch.params, HieraParams):
        from service.runtime.families import sam2

        prompt_encoder = build_and_load(
            sam2.build_prompt_encoder, part_state_dict(state_dict, "sam_prompt_encoder."), device
        )
        mask_decoder = build_and_load(
            sam2.build_decoder_side_mask_decoder,
            part_state_dict(state_dict, "sam_mask_decoder.", drop=sam2.ENCODER_SIDE_DECODER_PARTS),
            device,
        )
        return prompt_encoder, mask_decoder
    from service.runtime.families import sam1

    prompt_encoder = build_and_load(
        lambda: sam1.build_prompt_encoder(arch), part_state_dict(state_dict, "prompt_encoder."), device
    )
    mask_decoder = build_and_load(sam1.build_mask_decoder, part_state_dict(state_dict, "mask_decoder."), device)
    return prompt_encoder, mask_decoder


class PromptDecoderRole:
    """Holds the prompt encoder and mask decoder weights only (no image encoder)."""

    def __init__(self, checkpoint: CheckpointInfo, device: str = "cpu") -> None:
        self.checkpoint = checkpoint
        self.arch = checkpoint.arch
        self.device = torch.device(device)
        state_dict, _ = read_state_dict(checkpoint.path)
        self.prompt_encoder, self.mask_decoder = _build_decoder_modules(self.arch, state_dict, device)
        del state_dict
        with torch.inference_mode():
            self._dense_pe = self.prompt_encoder.get_dense_pe()  # type: ignore[operator]

    @classmethod
    def from_path(cls, path: str, arch: str | None = None, device: str = "cpu") -> PromptDecoderRole:
        return cls(inspect_checkpoint(path, arch), device=device)

    def parameter_count(self) -> int:
        return sum(p.numel() for module in (self.prompt_encoder, self.mask_decoder) for p in module.parameters())

    @torch.inference_mode()
    def decode(
        self,
        tensors: Mapping[str, np.ndarray | torch.Tensor],
        info: ImageInfo,
        prompts: list[Prompt],
        multimask_output: bool,
    ) -> list[ObjectPrediction]:
        """One ObjectPrediction per prompt, in the order of `prompts` (validated already): decode_low_res, then the
        full-size masks and their statistics."""
        return [
            predict_masks(low_res, info, self.arch)
            for low_res in self.decode_low_res(tensors, info, prompts, multimask_output)
        ]

    @torch.inference_mode()
    def decode_low_res(
        self,
        tensors: Mapping[str, np.ndarray | torch.Tensor],
        info: ImageInfo,
        prompts: list[Prompt],
        multimask_output: bool,
    ) -> list[LowResPrediction]:
        """The low-res answer of each prompt, in order, against one image's tensors by name (the family's outputs,
        any float dtype, read-only views allowed). Prompts of one shape (point count, box or not, mask or not) run as
        one batch, which keeps each answer identical to the reference's one-prompt call."""
        features = {
            spec.name: self._tensor(tensors[spec.name]).reshape(1, *spec.shape) for spec in self.arch.family.outputs
        }
        groups: dict[tuple[int, bool, bool], list[int]] = {}
        for index, prompt in enumerate(prompts):
            groups.setdefault(prompt.batch_signature(), []).append(index)
        answers: list[LowResPrediction | None] = [None] * len(prompts)
        for indexes in groups.values():
            batch = to_model_frame([prompts[index] for index in indexes], info, self.arch)
            low_res, scores = self._decode_batch(features, batch, multimask_output)
            for row, index in enumerate(indexes):
                answers[index] = LowResPrediction(low_res[row].float().cpu().numpy(), scores[row].float().cpu().numpy())
        return [answer for answer in answers if answer is not None]

    def _tensor(self, value: np.ndarray | torch.Tensor) -> torch.Tensor:
        if isinstance(value, np.ndarray):
            # A float32 copy: stored tensors are float16 and read-only views of the cached bytes.
            value = torch.from_numpy(value.astype(np.float32))
        return value.to(self.device, torch.float32)

    def _decode_batch(
        self, features: dict[str, torch.Tensor], batch: ModelFramePrompts, multimask_output: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.device
        points = None if batch.points is None else (batch.points[0].to(device), batch.points[1].to(device))
        boxes = None if batch.boxes is None else batch.boxes.to(device)
        masks = None if batch.masks is None else batch.masks.to(device)
        sparse, dense = self.prompt_encoder(points=points, boxes=boxes, masks=masks)
        if not isinstance(self.arch.params, HieraParams):
            return self.mask_decoder(  # type: ignore[no-any-return]
                image_embeddings=features["image_embeddings"],
                image_pe=self._dense_pe,
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask_output,
            )
        low_res, scores, _, _ = self.mask_decoder(
            image_embeddings=features["image_embed"],
            image_pe=self._dense_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask_output,
            repeat_image=sparse.shape[0] > 1,
            high_res_features=[features["high_res_feats_0"], features["high_res_feats_1"]],
        )
        return low_res, scores


def predict_masks(low_res: LowResPrediction, info: ImageInfo, arch: Arch) -> ObjectPrediction:
    """Full-size masks and their statistics from one prompt's low-res answer, as the family's predictor computes
    them (one mask at a time: the working memory is one full-size float map)."""
    summaries = []
    logits = torch.from_numpy(low_res.logits)
    for index in range(logits.shape[0]):
        full = upscale_logits(logits[None, index : index + 1], info, arch)[0, 0]
        summaries.append(summarize_mask(full.numpy()))
    return ObjectPrediction(
        low_res_logits=returned_low_res_logits(logits, arch).numpy(),
        scores=low_res.scores,
        stability_scores=np.array([summary.stability_score for summary in summaries], dtype=np.float32),
        masks=np.stack([summary.mask for summary in summaries]),
    )
