"""Where extents are kept: in memory, bounded in bytes (cachetools' LRU, sized by each entry's bytes)."""

from __future__ import annotations

import threading

from cachetools import LRUCache

from query_service.extents import Extent, dumps, loads


class MemoryStore:
    """Extents per key, serialized (so that the bound counts real bytes); least recently used go first."""

    def __init__(self, max_bytes: int) -> None:
        self._cache: LRUCache[str, bytes] = LRUCache(maxsize=max_bytes, getsizeof=len)
        self._lock = threading.Lock()

    def get(self, key: str) -> list[Extent]:
        with self._lock:
            data = self._cache.get(key)
        return loads(data) if data is not None else []

    def put(self, key: str, extents: list[Extent]) -> None:
        data = dumps(extents)
        with self._lock:
            if len(data) <= self._cache.maxsize:  # larger than the whole cache: not kept
                self._cache[key] = data

    def purge(self) -> int:
        with self._lock:
            count = len(self._cache)
            self._cache.clear()
        return count

    @property
    def bytes(self) -> int:
        return int(self._cache.currsize)
