"""What model_repo's model.py runs, kept here so tests exercise it without Triton.

The python backend hands model.py its config as JSON and an instance kind; these functions turn that into an
ImageEncoderRole and run a dynamic batch of requests through it as one forward pass.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from service.runtime.checkpoint import inspect_checkpoint
from service.runtime.image_encoder import ImageEncoderRole


@dataclass(frozen=True)
class EncoderModelSettings:
    """Where the weights are and where to run them, from the model's config parameters."""

    checkpoint: str  # a path, or builtin:lite_medsam
    arch: str | None
    model_id: str | None
    device: str
    half: bool


def settings_from_triton(args: Mapping[str, str]) -> EncoderModelSettings:
    """Settings from the python backend's `initialize(args)`: the config's `checkpoint`, `arch` and `model_id`
    parameters (each served model has its own), the instance kind and device."""
    config = json.loads(args["model_config"])
    parameters = {key: value.get("string_value", "") for key, value in config.get("parameters", {}).items()}
    checkpoint = parameters.get("checkpoint")
    if not checkpoint:
        raise ValueError(f"model {config.get('name')!r} has no 'checkpoint' parameter in its config.pbtxt")
    on_gpu = args.get("model_instance_kind", "CPU") == "GPU"
    return EncoderModelSettings(
        checkpoint=checkpoint,
        arch=parameters.get("arch") or None,
        model_id=parameters.get("model_id") or None,
        device=f"cuda:{args.get('model_instance_device_id', '0')}" if on_gpu else "cpu",
        # Half precision only where it is fast; the CPU stays in float32.
        half=on_gpu,
    )


def load_encoder(settings: EncoderModelSettings) -> ImageEncoderRole:
    """The image encoder alone (the prompt encoder and mask decoder weights are never loaded)."""
    info = inspect_checkpoint(settings.checkpoint, settings.arch, settings.model_id)
    return ImageEncoderRole(info, device=settings.device, half=settings.half)


def encode_requests(
    encoder: ImageEncoderRole, images: Sequence[np.ndarray], input_sizes: Sequence[np.ndarray]
) -> list[dict[str, np.ndarray]]:
    """Encode every request's images (each (B_i, *image shape)) in one forward pass; per request, its tensors by
    Triton output name, (B_i, *shape) in their storage dtypes, in order."""
    counts = [len(batch) for batch in images]
    outputs = encoder.encode(np.concatenate(images), np.concatenate(input_sizes).astype(np.int64))
    split_points = np.cumsum(counts)[:-1]
    per_request: list[dict[str, np.ndarray]] = [{} for _ in counts]
    for spec in encoder.arch.family.outputs:
        stored = outputs[spec.name].astype(spec.storage_dtype)
        for request, part in zip(per_request, np.split(stored, split_points), strict=True):
            request[spec.triton_name] = part
    return per_request


def model_id_output(model_id: str, batch_size: int) -> np.ndarray:
    """The MODEL_ID output (B, 1) of bytes objects."""
    return np.array([[model_id.encode()]] * batch_size, dtype=np.object_)
