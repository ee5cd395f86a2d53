"""The cache key of an image's embedding: the model's identity plus the SHA-256 of the image bytes."""

from __future__ import annotations

import hashlib
import re

from service.constants import EMBEDDING_KEY_PREFIX
from service.errors import InvalidArgument

_KEY_PATTERN = re.compile(rf"^{EMBEDDING_KEY_PREFIX}:(?P<model_id>[A-Za-z0-9_.-]+):(?P<digest>[0-9a-f]{{64}})$")


def make_embedding_key(model_id: str, image_bytes: bytes) -> str:
    """`sam:<model_id>:<sha256 hex of image_bytes>`."""
    return f"{EMBEDDING_KEY_PREFIX}:{model_id}:{hashlib.sha256(image_bytes).hexdigest()}"


def model_id_of_key(embedding_key: str, field: str = "image_key") -> str:
    """The model id inside a key; InvalidArgument when the key is not one this service makes."""
    match = _KEY_PATTERN.match(embedding_key)
    if match is None:
        raise InvalidArgument(
            f"{embedding_key!r} is not an image key (expected '{EMBEDDING_KEY_PREFIX}:<model>:<sha256 hex>')",
            field,
        )
    return match.group("model_id")
