"""The image-encoder role: one family's image encoder alone, from prepared images to the named tensors the
decoder needs. This is what Triton's python backend runs (model_repo/.../model.py is a thin adapter over it)
and what tests run in process."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from service.runtime.checkpoint import CheckpointInfo, inspect_checkpoint, read_state_dict
from service.runtime.families.spec import Arch, HieraParams, NormKind, ResizeRule
from service.runtime.modules import build_and_load, part_state_dict


class _Sam1ImageEncoder(nn.Module):
    """SAM 1's ViT or a TinyViT under the name the decoder knows its output by."""

    def __init__(self, arch: Arch) -> None:
        super().__init__()
        from service.runtime.families import sam1

        self.image_encoder = sam1.build_image_encoder(arch)

    def forward(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"image_embeddings": self.image_encoder(pixels)}


def _build_encoder(arch: Arch, state_dict: dict[str, torch.Tensor], device: str) -> nn.Module:
    params = arch.params
    if isinstance(params, HieraParams):
        from service.runtime.families import sam2

        return build_and_load(
            lambda: sam2.Sam2ImageEncoder(params), sam2.image_encoder_weights(state_dict), device=device
        )
    weights = {f"image_encoder.{name}": value for name, value in part_state_dict(state_dict, "image_encoder.").items()}
    return build_and_load(lambda: _Sam1ImageEncoder(arch), weights, device=device)


class ImageEncoderRole:
    """Holds the image encoder's weights only (for sam2 also conv_s0/conv_s1 and no_mem_embed)."""

    def __init__(self, checkpoint: CheckpointInfo, device: str = "cpu", half: bool = False) -> None:
        self.checkpoint = checkpoint
        self.arch = checkpoint.arch
        self.device = torch.device(device)
        self.dtype = torch.float16 if half else torch.float32
        state_dict, _ = read_state_dict(checkpoint.path)
        self.module = _build_encoder(self.arch, state_dict, device).to(dtype=self.dtype)
        normalization = self.arch.normalization
        self._mean = torch.tensor(normalization.mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(normalization.std, device=self.device).view(1, 3, 1, 1)

    @classmethod
    def from_path(cls, path: str, arch: str | None = None, device: str = "cpu", half: bool = False) -> ImageEncoderRole:
        return cls(inspect_checkpoint(path, arch), device=device, half=half)

    def input_shape(self) -> tuple[tuple[int, ...], np.dtype]:
        """The shape and dtype of one image as `encode` takes it."""
        size = self.arch.input_size
        if self.arch.family.resize is ResizeRule.SQUARE_FLOAT:
            return (3, size, size), np.dtype(np.float32)
        return (size, size, 3), np.dtype(np.uint8)

    @torch.inference_mode()
    def encode(self, images: np.ndarray, input_sizes: np.ndarray) -> dict[str, np.ndarray]:
        """The family's tensors, each (B, *shape) float32, of a batch as service.runtime.preprocess prepares it:
        (B, S, S, 3) uint8 zero-padded whose content is `input_sizes` (B, 2) rows, columns (sam, tinyvit), or
        (B, 3, S, S) float32 in [0, 1] (sam2)."""
        shape, dtype = self.input_shape()
        if images.ndim != 4 or images.shape[1:] != shape or images.dtype != dtype:
            raise ValueError(
                f"images must be (B, {', '.join(map(str, shape))}) {dtype}, got {images.shape} {images.dtype}"
            )
        if self.arch.family.resize is ResizeRule.SQUARE_FLOAT:
            pixels = (torch.from_numpy(images).to(self.device) - self._mean) / self._std
        else:
            pixels = self._normalise_padded(images, input_sizes)
        outputs = self.module(pixels.to(self.dtype))
        return {name: tensor.float().cpu().numpy() for name, tensor in outputs.items()}

    def _normalise_padded(self, images: np.ndarray, input_sizes: np.ndarray) -> torch.Tensor:
        """Normalise, then zero the padding again: exactly the reference's normalise-then-pad. Min-max takes the
        minimum and maximum over each image's content, all channels, as upstream LiteMedSAM does."""
        pixels = torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2).float()
        normalized = torch.empty_like(pixels)
        for index, (rows, columns) in enumerate(np.asarray(input_sizes).tolist()):
            if self.arch.normalization.kind is NormKind.MIN_MAX:
                content = pixels[index, :, :rows, :columns]
                low = content.min()
                normalized[index] = (pixels[index] - low) / torch.clamp(content.max() - low, min=1e-8)
            else:
                normalized[index] = ((pixels[index : index + 1] - self._mean) / self._std)[0]
            normalized[index, :, rows:, :] = 0.0
            normalized[index, :, :, columns:] = 0.0
        return normalized
