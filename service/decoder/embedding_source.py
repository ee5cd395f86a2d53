"""Where the decoder finds an embedding: its in-process LRU, then Redis."""

from __future__ import annotations

from service.cache.codec import StoredEmbedding, decode_embedding
from service.cache.keys import ImageKey
from service.cache.store import EmbeddingStore
from service.decoder.embedding_lru import EmbeddingLru
from service.decoder.metrics import LRU_REQUESTS, REDIS_FETCHES
from service.errors import CorruptEmbedding, NotFound


class EmbeddingSource:
    """Looks embeddings up for the served models: NotFound for the key, Unavailable for Redis, CorruptEmbedding
    for a damaged value."""

    def __init__(self, store: EmbeddingStore, lru: EmbeddingLru, model_ids: tuple[str, ...]) -> None:
        self.store = store
        self.lru = lru
        self.model_ids = model_ids

    def check_model(self, image_key: ImageKey, field: str = "image_key") -> None:
        """NotFound for a key of a model this decoder does not serve.

        Another model's key is NOT_FOUND rather than INVALID_ARGUMENT: after new weights roll out, keys clients
        still hold are as good as expired, and NOT_FOUND makes the client re-embed with the new model.
        """
        if image_key.model_id not in self.model_ids:
            raise NotFound(
                f"{image_key.short} is an embedding of model {image_key.model_id!r}; this decoder serves "
                f"{', '.join(repr(model_id) for model_id in self.model_ids)} (embed the image again with an "
                "encoder of one of them)",
                field,
            )

    async def get(self, image_key: ImageKey, field: str = "image_key") -> StoredEmbedding:
        self.check_model(image_key, field)
        key = str(image_key)
        stored = self.lru.get(key)
        if stored is not None:
            LRU_REQUESTS.labels("hit").inc()
            return stored
        LRU_REQUESTS.labels("miss").inc()
        value = await self.store.get(key)
        if value is None or value.header is None:
            REDIS_FETCHES.labels("not_found").inc()
            raise NotFound(f"{key!r} is not in the cache (unknown or expired); embed the image again", field)
        REDIS_FETCHES.labels("found").inc()
        try:
            stored = decode_embedding(value.header, value.chunks, expected_model_id=image_key.model_id)
        except CorruptEmbedding as error:
            raise CorruptEmbedding(f"the cached embedding {key!r} {error.reason}", field) from error
        self.lru.put(key, stored)
        return stored
