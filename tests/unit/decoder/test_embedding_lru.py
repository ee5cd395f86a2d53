"""The decoder's in-process embedding LRU is bounded in bytes and evicts the least recently used first."""

from __future__ import annotations

import numpy as np
from prometheus_client import REGISTRY

from service.cache.codec import StoredEmbedding
from service.decoder.embedding_lru import EmbeddingLru
from service.runtime.preprocess import image_info_of


def _stored(nbytes: int) -> StoredEmbedding:
    return StoredEmbedding(
        {"image_embeddings": np.zeros(nbytes // 2, dtype=np.float16)}, image_info_of((10, 10)), "tiny-x"
    )


def test_evicts_least_recently_used_to_stay_within_bytes() -> None:
    lru = EmbeddingLru(max_bytes=300)
    lru.put("a", _stored(100))
    lru.put("b", _stored(100))
    lru.put("c", _stored(100))
    assert lru.get("a") is not None  # a is now the most recently used
    lru.put("d", _stored(100))
    assert "b" not in lru and {"a", "c", "d"} <= set(lru._entries)
    assert lru.total_bytes == 300
    assert REGISTRY.get_sample_value("sam_decoder_lru_bytes") == 300
    lru.put("e", _stored(200))
    assert lru.total_bytes == 300 and set(lru._entries) == {"d", "e"}


def test_counts_hits_and_misses_and_replaces_an_entry() -> None:
    lru = EmbeddingLru(max_bytes=1000)
    assert lru.get("a") is None
    lru.put("a", _stored(100))
    lru.put("a", _stored(200))
    assert lru.get("a") is not None
    assert (lru.hits, lru.misses, lru.total_bytes, len(lru)) == (1, 1, 200, 1)


def test_an_entry_bigger_than_the_bound_is_not_kept() -> None:
    lru = EmbeddingLru(max_bytes=100)
    lru.put("a", _stored(50))
    lru.put("big", _stored(200))
    assert "big" not in lru and "a" in lru and lru.total_bytes == 50
    lru.discard("a")
    assert lru.total_bytes == 0 and len(lru) == 0
