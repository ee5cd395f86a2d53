"""The GetEmbedding logic as plain async code: a cached embedding's tensors for a caller, under the decoder's rules
(service.cache.reader); service.rpc.encoder_servicer translates messages and status codes."""

from __future__ import annotations

from collections.abc import Sequence

from service.cache.codec import StoredEmbedding
from service.cache.keys import ImageKey, parse_image_key
from service.cache.reader import check_tenant, read_embedding
from service.cache.store import EmbeddingStore
from service.encoder.metrics import GET_EMBEDDING_REQUESTS
from service.errors import CorruptEmbedding, NotFound
from service.logs import log_context


class EmbeddingReader:
    """Reads whole embeddings of the served models out of Redis for their callers."""

    def __init__(self, store: EmbeddingStore, model_ids: Sequence[str]) -> None:
        self.store = store
        self.model_ids = tuple(model_ids)

    async def read(self, image_key_text: str, tenant: str | None = None) -> tuple[ImageKey, StoredEmbedding]:
        """The key and the embedding it names, for a caller of `tenant` (its token's; None: shared keys only).
        InvalidArgument for text that is no image key; NotFound for an unknown or expired key, another tenant's, or
        a model's this encoder does not serve; CorruptEmbedding (after removing it) for a damaged value."""
        image_key = parse_image_key(image_key_text)
        with log_context(image_key=image_key.short):
            try:
                self._check_model(image_key)
                check_tenant(image_key, tenant)
                stored = await read_embedding(self.store, image_key)
            except NotFound:
                GET_EMBEDDING_REQUESTS.labels("not_found").inc()
                raise
            except CorruptEmbedding:
                GET_EMBEDDING_REQUESTS.labels("damaged").inc()
                raise
        GET_EMBEDDING_REQUESTS.labels("found").inc()
        return image_key, stored

    def _check_model(self, image_key: ImageKey) -> None:
        if image_key.model_id not in self.model_ids:
            raise NotFound(
                f"{image_key.short} is an embedding of model {image_key.model_id!r}; this encoder serves "
                f"{', '.join(repr(model_id) for model_id in self.model_ids)}",
                "image_key",
            )
