"""Where the decoder finds an embedding: its in-process LRU, then Redis."""

from __future__ import annotations

from service.decoder.embedding_cache import EmbeddingLru
from service.decoder.metrics import LRU_REQUESTS, REDIS_FETCHES
from service.embedding_codec import StoredEmbedding, decode_embedding
from service.embedding_key import model_id_of_key
from service.embedding_store import EmbeddingStore
from service.errors import CorruptEmbedding, NotFound


class EmbeddingSource:
    """Looks embeddings up for one model: raises NotFound / InvalidArgument for the key, Unavailable for Redis."""

    def __init__(self, store: EmbeddingStore, lru: EmbeddingLru, model_id: str) -> None:
        self.store = store
        self.lru = lru
        self.model_id = model_id

    def check_key(self, image_key: str, field: str = "image_key") -> None:
        """InvalidArgument for a malformed key; NotFound for a key of another model.

        Another model's key is NOT_FOUND rather than INVALID_ARGUMENT: after new weights roll out, keys
        clients still hold are as good as expired, and NOT_FOUND makes the client re-embed with the new model.
        """
        key_model_id = model_id_of_key(image_key, field)
        if key_model_id != self.model_id:
            raise NotFound(
                f"{image_key!r} is an embedding of model {key_model_id!r}; this decoder serves {self.model_id!r} "
                "(embed the image again with an encoder of that model)",
                field,
            )

    async def get(self, image_key: str, field: str = "image_key") -> StoredEmbedding:
        self.check_key(image_key, field)
        stored = self.lru.get(image_key)
        if stored is not None:
            LRU_REQUESTS.labels("hit").inc()
            return stored
        LRU_REQUESTS.labels("miss").inc()
        value = await self.store.get(image_key)
        if value is None:
            REDIS_FETCHES.labels("not_found").inc()
            raise NotFound(f"{image_key!r} is not in the cache (unknown or expired); embed the image again", field)
        REDIS_FETCHES.labels("found").inc()
        try:
            stored = decode_embedding(value, expected_model_id=self.model_id)
        except CorruptEmbedding as error:
            # The service's own data is bad, not the request: the stream ends (DATA_LOSS), naming the key.
            raise CorruptEmbedding(f"the cached embedding {image_key!r} {error.reason}", field) from error
        self.lru.put(image_key, stored)
        return stored
