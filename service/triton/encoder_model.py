"""What model_repo/sam_image_encoder/1/model.py runs, kept here so tests exercise it without Triton.

The python backend hands model.py its config as JSON and an instance kind; these functions turn that
into an ImageEncoderRole and run a dynamic batch of requests through it as one forward pass.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.runtime.checkpoint import inspect_checkpoint
from service.runtime.image_encoder import ImageEncoderRole

CHECKPOINT_ENV = "SAMSVC_CHECKPOINT"
ARCH_ENV = "SAMSVC_ARCH"
MODEL_ID_ENV = "SAMSVC_MODEL_ID"


@dataclass(frozen=True)
class EncoderModelSettings:
    """Where the weights are and where to run them."""

    checkpoint: Path
    arch: str | None
    model_id: str | None
    device: str
    half: bool


def settings_from_triton(args: Mapping[str, str], environ: Mapping[str, str] = os.environ) -> EncoderModelSettings:
    """Settings from the python backend's `initialize(args)`: the environment wins over config parameters,
    so one model_repo/ serves any checkpoint mounted into the pod."""
    config = json.loads(args["model_config"])
    parameters = {key: value.get("string_value", "") for key, value in config.get("parameters", {}).items()}

    def setting(env_name: str, parameter: str) -> str | None:
        return environ.get(env_name) or parameters.get(parameter) or None

    checkpoint = setting(CHECKPOINT_ENV, "checkpoint")
    if checkpoint is None:
        raise ValueError(f"no checkpoint: set the model parameter 'checkpoint' or {CHECKPOINT_ENV}")
    on_gpu = args.get("model_instance_kind", "CPU") == "GPU"
    device = f"cuda:{args.get('model_instance_device_id', '0')}" if on_gpu else "cpu"
    return EncoderModelSettings(
        checkpoint=Path(checkpoint),
        arch=setting(ARCH_ENV, "arch"),
        model_id=setting(MODEL_ID_ENV, "model_id"),
        device=device,
        # Half precision only where it is fast; the CPU stays in float32.
        half=on_gpu,
    )


def load_encoder(settings: EncoderModelSettings) -> ImageEncoderRole:
    """The image encoder alone (the prompt encoder and mask decoder weights are never loaded)."""
    info = inspect_checkpoint(settings.checkpoint, settings.arch, settings.model_id)
    return ImageEncoderRole(info, device=settings.device, half=settings.half)


def encode_requests(
    encoder: ImageEncoderRole, images: Sequence[np.ndarray], input_sizes: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Encode every request's images (each (B_i, 1024, 1024, 3) uint8) in one forward pass; float16
    embeddings (B_i, 256, 64, 64) per request, in order."""
    counts = [len(batch) for batch in images]
    embeddings = encoder.encode(np.concatenate(images), np.concatenate(input_sizes).astype(np.int64))
    half = embeddings.astype(np.float16)
    return list(np.split(half, np.cumsum(counts)[:-1]))


def model_id_output(model_id: str, batch_size: int) -> np.ndarray:
    """The MODEL_ID output (B, 1) of bytes objects."""
    return np.array([[model_id.encode()]] * batch_size, dtype=np.object_)
