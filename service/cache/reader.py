"""Reading a whole embedding for a caller: the rule both services apply (the decoder to answer prompts, the encoder's
GetEmbedding to hand the tensors out). A key of another tenant is not found, exactly as a key that does not exist; a
damaged value is removed by the reader that finds it, so the next Embed of the image encodes it again."""

from __future__ import annotations

import logging

from service.cache.codec import StoredEmbedding, decode_embedding
from service.cache.keys import ImageKey
from service.cache.store import EmbeddingStore
from service.errors import CorruptEmbedding, NotFound

log = logging.getLogger(__name__)


def check_tenant(image_key: ImageKey, tenant: str | None, field: str = "image_key") -> None:
    """NotFound, word for word the answer for a key that does not exist, when `image_key` is not `tenant`'s (None:
    the shared keys), so that a caller cannot even learn that another tenant's key exists."""
    if image_key.tenant != tenant:
        raise not_cached(image_key, field)


async def read_embedding(store: EmbeddingStore, image_key: ImageKey, field: str = "image_key") -> StoredEmbedding:
    """The embedding under `image_key`: NotFound when there is none, CorruptEmbedding when its value is damaged,
    incomplete or another model's (the value is then removed, unless it changed meanwhile), Unavailable for Redis."""
    key = str(image_key)
    value = await store.get(key)
    if value is None or value.header is None:
        raise not_cached(image_key, field)
    try:
        return decode_embedding(value.header, value.chunks, expected_model_id=image_key.model_id)
    except CorruptEmbedding as error:
        # The encoder's cache hit reads only the header, so a damaged payload would otherwise be answered
        # `cached` for as long as hits keep refreshing its TTL: the reader that finds it removes it.
        removed = await store.delete_if_unchanged(key, value)
        log.warning("cached embedding %s %s; %s", image_key.short, error.reason, "removed" if removed else "replaced")
        raise CorruptEmbedding(
            f"the cached embedding {image_key.short} {error.reason}; it was removed: embed the image again", field
        ) from error


def not_cached(image_key: ImageKey, field: str = "image_key") -> NotFound:
    return NotFound(f"{str(image_key)!r} is not in the cache (unknown or expired); embed the image again", field)
