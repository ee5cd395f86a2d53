"""Each family's reference predictor behind one interface: the oracles of the numerical contract.

- sam, tinyvit: segment_anything.SamPredictor over the family's segment_anything.Sam. For LiteMedSAM's per-image
  min-max rule, Sam's pixel mean and std are set per image to the resized image's minimum and (maximum - minimum)
  before set_image, so SamPredictor computes exactly upstream's (x - min) / (max - min), then pads.
- sam2: sam2.SAM2ImagePredictor over the package's own build_sam2(config) with the checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from segment_anything.utils.amg import calculate_stability_score

from service.runtime.checkpoint import CheckpointInfo, load_state_dict
from service.runtime.families.spec import NormKind, ResizeRule
from tests.numerical_contract import REFERENCE_STABILITY_OFFSET

Prediction = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # masks, scores, low-res logits, stability


class Oracle:
    """The reference predictor of one checkpoint, with an image set."""

    def set_image(self, rgb: np.ndarray) -> None:
        raise NotImplementedError

    def features(self) -> dict[str, np.ndarray]:
        """The image's tensors as the reference computed them, by the family's output names."""
        raise NotImplementedError

    def with_features(self, tensors: Mapping[str, np.ndarray]) -> Oracle:
        """A second predictor over the same model and image that predicts from these tensors instead (the
        service's stored, float16-rounded ones); this one keeps its own."""
        raise NotImplementedError

    def predict(self, **prompt: object) -> Prediction:
        """predict(**prompt) as masks, scores, low-res logits and segment_anything's stability scores of the
        reference's own full-resolution logits."""
        with torch.inference_mode():
            logits, scores, low_res = self._predictor.predict(**prompt, return_logits=True)  # type: ignore[attr-defined]
        logits = np.asarray(logits, dtype=np.float32)
        stability = calculate_stability_score(torch.from_numpy(logits), 0.0, REFERENCE_STABILITY_OFFSET).numpy()
        return logits > 0.0, np.asarray(scores), np.asarray(low_res), stability


class SamOracle(Oracle):
    def __init__(self, checkpoint: CheckpointInfo, sam: torch.nn.Module | None = None) -> None:
        from segment_anything import SamPredictor

        from service.runtime.families.sam1 import build_sam

        self.checkpoint = checkpoint
        if sam is None:
            sam = build_sam(checkpoint.arch)
            sam.load_state_dict(load_state_dict(checkpoint.path), strict=True)
            sam.eval()  # after loading: TinyViT caches its attention biases in eval()
        self.sam = sam
        self._predictor = SamPredictor(self.sam)

    def set_image(self, rgb: np.ndarray) -> None:
        if self.checkpoint.arch.normalization.kind is NormKind.MIN_MAX:
            resized = self._predictor.transform.apply_image(rgb)
            low, high = float(resized.min()), float(resized.max())
            self.sam.pixel_mean.fill_(low)
            self.sam.pixel_std.fill_(max(high - low, 1e-8))
        with torch.inference_mode():
            self._predictor.set_image(rgb)

    def features(self) -> dict[str, np.ndarray]:
        return {"image_embeddings": self._predictor.features[0].float().numpy()}

    def with_features(self, tensors: Mapping[str, np.ndarray]) -> Oracle:
        other = SamOracle(self.checkpoint, self.sam)
        other._predictor.original_size = self._predictor.original_size
        other._predictor.input_size = self._predictor.input_size
        other._predictor.is_image_set = True
        other._predictor.features = torch.from_numpy(np.asarray(tensors["image_embeddings"], np.float32))[None]
        return other


class Sam2Oracle(Oracle):
    def __init__(self, checkpoint: CheckpointInfo, model: torch.nn.Module | None = None) -> None:
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        from service.runtime.families.sam2 import build_reference_model

        self.checkpoint = checkpoint
        self.model = model if model is not None else build_reference_model(checkpoint.arch, str(checkpoint.path))
        self._predictor = SAM2ImagePredictor(self.model)

    def set_image(self, rgb: np.ndarray) -> None:
        with torch.inference_mode():
            self._predictor.set_image(rgb)

    def features(self) -> dict[str, np.ndarray]:
        features = self._predictor._features
        return {
            "image_embed": features["image_embed"][0].float().numpy(),
            "high_res_feats_0": features["high_res_feats"][0][0].float().numpy(),
            "high_res_feats_1": features["high_res_feats"][1][0].float().numpy(),
        }

    def with_features(self, tensors: Mapping[str, np.ndarray]) -> Oracle:
        def tensor(name: str) -> torch.Tensor:
            return torch.from_numpy(np.asarray(tensors[name], np.float32))[None]

        other = Sam2Oracle(self.checkpoint, self.model)
        other._predictor._orig_hw = list(self._predictor._orig_hw)
        other._predictor._is_image_set = True
        other._predictor._is_batch = False
        other._predictor._features = {
            "image_embed": tensor("image_embed"),
            "high_res_feats": [tensor("high_res_feats_0"), tensor("high_res_feats_1")],
        }
        return other


def oracle_for(checkpoint: CheckpointInfo) -> Oracle:
    """The reference predictor of the checkpoint's family, its model built once; `fresh()` shares it."""
    if checkpoint.arch.family.resize is ResizeRule.SQUARE_FLOAT:
        return Sam2Oracle(checkpoint)
    return SamOracle(checkpoint)


def fresh(oracle: Oracle) -> Oracle:
    """Another predictor over the same model, with no image set."""
    if isinstance(oracle, Sam2Oracle):
        return Sam2Oracle(oracle.checkpoint, oracle.model)
    assert isinstance(oracle, SamOracle)
    return SamOracle(oracle.checkpoint, oracle.sam)
