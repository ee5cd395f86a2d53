"""The byte-bounded LRU reports its size and each lookup's outcome to its hooks (metrics)."""

from __future__ import annotations

import numpy as np

from service.byte_lru import ByteLru


def test_hooks_hear_sizes_and_lookups() -> None:
    sizes: list[int] = []
    lookups: list[bool] = []
    lru: ByteLru[np.ndarray] = ByteLru(250, sizes.append, lookups.append)
    lru.put("a", np.zeros(100, dtype=np.uint8))
    lru.put("b", np.zeros(100, dtype=np.uint8))
    lru.put("c", np.zeros(100, dtype=np.uint8))  # evicts a
    lru.put("huge", np.zeros(300, dtype=np.uint8))  # not kept
    assert lru.get("a") is None and lru.get("c") is not None
    lru.discard("c")
    assert sizes == [100, 200, 200, 200, 100] and lookups == [False, True]
    assert (lru.hits, lru.misses, len(lru), lru.total_bytes) == (1, 1, 1, 100)
