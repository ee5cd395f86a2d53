"""The image-encoder role: SAM's ViT alone, from uint8 model-frame images to embeddings.

This is what Triton's python backend runs (model_repo/.../model.py is a thin adapter over it) and what
tests run in-process.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from segment_anything.modeling import ImageEncoderViT

from service.constants import IMAGE_INPUT_SIZE, PIXEL_MEAN, PIXEL_STD
from service.runtime.build import build_sam
from service.runtime.checkpoint import CheckpointInfo, inspect_checkpoint, load_state_dict, part_state_dict


class ImageEncoderRole:
    """Holds only the image encoder's weights; encodes batches of padded uint8 images."""

    def __init__(self, checkpoint: CheckpointInfo, device: str = "cpu", half: bool = False) -> None:
        self.checkpoint = checkpoint
        self.device = torch.device(device)
        self.dtype = torch.float16 if half else torch.float32
        encoder: ImageEncoderViT = build_sam(checkpoint.arch, device="meta").image_encoder
        weights = part_state_dict(load_state_dict(checkpoint.path), "image_encoder.")
        encoder.load_state_dict(weights, strict=True, assign=True)
        self.encoder = encoder.to(device=self.device, dtype=self.dtype).eval()
        self._pixel_mean = torch.tensor(PIXEL_MEAN, device=self.device).view(1, 3, 1, 1)
        self._pixel_std = torch.tensor(PIXEL_STD, device=self.device).view(1, 3, 1, 1)

    @classmethod
    def from_path(
        cls, path: Path, arch: str | None = None, device: str = "cpu", half: bool = False
    ) -> ImageEncoderRole:
        return cls(inspect_checkpoint(path, arch), device=device, half=half)

    @torch.inference_mode()
    def encode(self, images: np.ndarray, input_sizes: np.ndarray) -> np.ndarray:
        """Embeddings (B, 256, 64, 64) float32 of `images` (B, 1024, 1024, 3) uint8, zero-padded at the
        bottom and right, whose resized content is `input_sizes` (B, 2) rows, columns."""
        if images.ndim != 4 or images.shape[1:] != (IMAGE_INPUT_SIZE, IMAGE_INPUT_SIZE, 3) or images.dtype != np.uint8:
            raise ValueError(
                f"images must be (B, {IMAGE_INPUT_SIZE}, {IMAGE_INPUT_SIZE}, 3) uint8, got {images.shape} {images.dtype}"
            )
        pixels = torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2).float()
        # The reference normalises the resized image, then pads with zeros: pad after normalising.
        normalized = (pixels - self._pixel_mean) / self._pixel_std
        for index, (rows, columns) in enumerate(input_sizes.tolist()):
            normalized[index, :, rows:, :] = 0.0
            normalized[index, :, :, columns:] = 0.0
        embeddings = self.encoder(normalized.to(self.dtype))
        return embeddings.float().cpu().numpy()
