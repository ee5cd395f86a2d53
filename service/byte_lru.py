"""A least-recently-used map bounded by the bytes of its values (anything with `nbytes`), safe across threads."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class Sized(Protocol):
    @property
    def nbytes(self) -> int: ...


V = TypeVar("V", bound=Sized)


class ByteLru(Generic[V]):
    """Values by key, the least recently used evicted first to stay within `max_bytes`; a value bigger than the
    bound is not kept. `on_bytes` hears the total after each change (a gauge's set), `on_lookup` each get's
    outcome (True: a hit)."""

    def __init__(
        self,
        max_bytes: int,
        on_bytes: Callable[[int], None] | None = None,
        on_lookup: Callable[[bool], None] | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self._on_bytes = on_bytes
        self._on_lookup = on_lookup
        self._entries: OrderedDict[str, V] = OrderedDict()
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

    def get(self, key: str) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self.misses += 1
            else:
                self._entries.move_to_end(key)
                self.hits += 1
        if self._on_lookup is not None:
            self._on_lookup(value is not None)
        return value

    def put(self, key: str, value: V) -> None:
        size = int(value.nbytes)
        with self._lock:
            self._discard(key)
            if size <= self.max_bytes:
                while self._bytes + size > self.max_bytes and self._entries:
                    self._discard(next(iter(self._entries)))
                self._entries[key] = value
                self._bytes += size
            self._report()

    def discard(self, key: str) -> None:
        with self._lock:
            self._discard(key)
            self._report()

    def _discard(self, key: str) -> None:
        value = self._entries.pop(key, None)
        if value is not None:
            self._bytes -= int(value.nbytes)

    def _report(self) -> None:
        if self._on_bytes is not None:
            self._on_bytes(self._bytes)
