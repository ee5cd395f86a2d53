"""Hot embeddings kept in process, least recently used first out, bounded by their bytes."""

from __future__ import annotations

from service.byte_lru import ByteLru
from service.cache.codec import StoredEmbedding
from service.decoder.metrics import LRU_BYTES


class EmbeddingLru(ByteLru[StoredEmbedding]):
    """A byte-bounded LRU of decoded embeddings by image key (lookups run on the event loop while tests and benches
    may read it from threads), its size in `sam_decoder_lru_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(max_bytes, LRU_BYTES.set)
