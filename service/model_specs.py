"""The models a service serves, from its settings: repeatable `--model NAME=CHECKPOINT`, or the single-model
flags `--checkpoint` / `--arch` / `--model-id` of earlier versions."""

from __future__ import annotations

from dataclasses import dataclass

from service.settings import ServiceSettings


@dataclass(frozen=True)
class ModelSpec:
    """One model to serve: its name, its checkpoint (a path, or builtin:lite_medsam) and what is known of it."""

    name: str
    checkpoint: str | None
    arch: str | None = None
    model_id: str | None = None


def parse_model_spec(text: str) -> ModelSpec:
    """NAME=CHECKPOINT; ValueError naming the form otherwise."""
    name, separator, checkpoint = text.partition("=")
    if not separator or not name.strip() or not checkpoint.strip():
        raise ValueError(f"--model {text!r}: expected NAME=CHECKPOINT (a .pth path, or builtin:lite_medsam)")
    return ModelSpec(name.strip(), checkpoint.strip())


def model_specs(settings: ServiceSettings, single_model_name: str) -> tuple[ModelSpec, ...]:
    """The served models, the default first. The single-model flags name their model `single_model_name`."""
    if settings.models:
        if settings.checkpoint or settings.model_id:
            raise ValueError("give either --model (repeatable) or --checkpoint/--model-id, not both")
        specs = tuple(parse_model_spec(text) for text in settings.models)
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"--model names must differ: {names}")
        return specs
    if settings.checkpoint is None and settings.model_id is None:
        raise ValueError("no model: give --model NAME=CHECKPOINT, or --checkpoint (SAMSVC_MODELS / SAMSVC_CHECKPOINT)")
    checkpoint = None if settings.checkpoint is None else str(settings.checkpoint)
    return (ModelSpec(single_model_name, checkpoint, settings.arch, settings.model_id),)
