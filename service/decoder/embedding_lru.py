"""Hot embeddings kept in process, least recently used first out, bounded by their bytes."""

from __future__ import annotations

import threading
from collections import OrderedDict

from service.cache.codec import StoredEmbedding
from service.decoder.metrics import LRU_BYTES


def embedding_bytes(stored: StoredEmbedding) -> int:
    return stored.nbytes


class EmbeddingLru:
    """A byte-bounded LRU of decoded embeddings by image key; an entry bigger than the bound is not kept.

    Locked because lookups run on the event loop while tests and benches may read it from threads.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, StoredEmbedding] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> StoredEmbedding | None:
        with self._lock:
            stored = self._entries.get(key)
            if stored is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return stored

    def put(self, key: str, stored: StoredEmbedding) -> None:
        size = embedding_bytes(stored)
        with self._lock:
            self._discard(key)
            if size > self.max_bytes:
                return
            while self._bytes + size > self.max_bytes and self._entries:
                oldest_key = next(iter(self._entries))
                self._discard(oldest_key)
            self._entries[key] = stored
            self._bytes += size
            LRU_BYTES.set(self._bytes)

    def discard(self, key: str) -> None:
        with self._lock:
            self._discard(key)
            LRU_BYTES.set(self._bytes)

    def _discard(self, key: str) -> None:
        stored = self._entries.pop(key, None)
        if stored is not None:
            self._bytes -= embedding_bytes(stored)
