"""Which model made an embedding: its id (architecture + content hash of the weights) and architecture."""

from __future__ import annotations

from dataclasses import dataclass

from service.errors import InvalidArgument, echo


@dataclass(frozen=True)
class ModelIdentity:
    """The id that names a model's embeddings, and the architecture a caller may name instead."""

    model_id: str
    arch: str

    @classmethod
    def of_model_id(cls, model_id: str, arch: str | None = None) -> ModelIdentity:
        """From a given model id; the architecture is the id's prefix ("vit_h-3f2a…" → "vit_h") unless given."""
        return cls(model_id, arch or model_id.split("-", 1)[0])

    def check_requested(self, requested: str, field: str = "model") -> None:
        """A caller's `model` must be empty, this model's id or its architecture."""
        if requested and requested not in (self.model_id, self.arch):
            raise InvalidArgument(f"this server embeds with model {self.model_id!r}, not {echo(requested)}", field)
