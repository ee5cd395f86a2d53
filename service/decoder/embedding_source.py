"""Where the decoder finds an embedding: its in-process LRU, then Redis."""

from __future__ import annotations

from service.cache.codec import StoredEmbedding
from service.cache.keys import ImageKey
from service.cache.reader import check_tenant, read_embedding
from service.cache.store import EmbeddingStore
from service.decoder.embedding_lru import EmbeddingLru
from service.decoder.metrics import LRU_REQUESTS, REDIS_FETCHES
from service.errors import CorruptEmbedding, NotFound


class EmbeddingSource:
    """Looks embeddings up for the served models: NotFound for the key, Unavailable for Redis, CorruptEmbedding
    for a damaged value (which it removes from Redis, so that the next Embed of the image encodes it again)."""

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

    async def get(self, image_key: ImageKey, field: str = "image_key", tenant: str | None = None) -> StoredEmbedding:
        """The embedding under `image_key` for a caller of `tenant` (None: the shared keys); a key of another tenant
        is NotFound exactly as a key that does not exist, so a caller cannot even learn that it does."""
        self.check_model(image_key, field)
        check_tenant(image_key, tenant, field)
        key = str(image_key)
        stored = self.lru.get(key)
        if stored is not None:
            LRU_REQUESTS.labels("hit").inc()
            return stored
        LRU_REQUESTS.labels("miss").inc()
        try:
            stored = await read_embedding(self.store, image_key, field)
        except NotFound:
            REDIS_FETCHES.labels("not_found").inc()
            raise
        except CorruptEmbedding:
            REDIS_FETCHES.labels("damaged").inc()
            raise
        REDIS_FETCHES.labels("found").inc()
        self.lru.put(key, stored)
        return stored
