"""Which model made an embedding: its id (family, architecture, content hash of the weights), its architecture,
and the name a deployment serves it under; and how a caller's `model` picks one of the served models."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from service.errors import InvalidArgument, echo


@dataclass(frozen=True)
class ModelIdentity:
    """A served model: its id names its embeddings; callers may name it by id, architecture or served name."""

    model_id: str
    arch: str
    name: str = ""  # the served name (the encoder's Triton model); empty when the id is all that matters

    def answers_to(self, requested: str) -> bool:
        return bool(requested) and requested in (self.model_id, self.arch, self.name)


def arch_of_model_id(model_id: str) -> str:
    """The architecture a model id names: `<family>-<arch>-<hash>` (or `<arch>-<hash>`, as ids given by hand were)."""
    parts = model_id.split("-")
    return parts[1] if len(parts) >= 3 else parts[0]


def select_model(models: Sequence[ModelIdentity], requested: str, field: str = "model") -> ModelIdentity:
    """The model a caller's `model` names (empty: the first, the default); InvalidArgument when none answers."""
    if not requested:
        return models[0]
    for model in models:
        if model.answers_to(requested):
            return model
    served = ", ".join(repr(model.model_id) for model in models)
    raise InvalidArgument(f"this server embeds with {served}, not {echo(requested)}", field)
