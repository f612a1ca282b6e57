"""Where extents are kept: in memory, bounded in bytes, or in Redis, shared by replicas.

A store never breaks an answer: Redis unreachable reads as an empty cache (the request is
answered from Prometheus) and a failed write is dropped, each said once in the log.
"""

from __future__ import annotations

import hashlib
import logging

import redis.asyncio as redis
from cachetools import LRUCache

from query_service.extents import Extent, dumps, loads

_log = logging.getLogger("query_service")


class MemoryStore:
    """Extents per key, as objects (a hit decodes nothing), bounded by their estimated bytes;
    least recently used go first. Nobody changes an extent once stored: merge() copies."""

    def __init__(self, max_bytes: int) -> None:
        self._cache: LRUCache[str, list[Extent]] = LRUCache(
            maxsize=max_bytes, getsizeof=lambda extents: sum(e.size() for e in extents)
        )

    async def get(self, key: str) -> list[Extent]:
        return self._cache.get(key, [])

    async def put(self, key: str, extents: list[Extent]) -> None:
        if sum(e.size() for e in extents) <= self._cache.maxsize:  # larger than the whole cache: not kept
            self._cache[key] = extents

    async def purge(self) -> int:
        count = len(self._cache)
        self._cache.clear()
        return count


class RedisStore:
    """Extents in Redis under otel-kit-query:3:<sha256 of the key>, expiring with Prometheus's retention.

    Size Redis with maxmemory and `maxmemory-policy allkeys-lru` (docs/query-service.md).
    """

    PREFIX = "otel-kit-query:3:"  # 3: each series as label set, times and encoded points

    def __init__(self, url: str, ttl_ms: int) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._ttl_ms = ttl_ms
        self._url = url
        self._failing = False

    def _name(self, key: str) -> str:
        return self.PREFIX + hashlib.sha256(key.encode()).hexdigest()

    async def get(self, key: str) -> list[Extent]:
        try:
            data = await self._redis.get(self._name(key))
        except redis.RedisError as error:
            self._failed(error)
            return []
        self._failing = False
        return loads(data) if data is not None else []

    async def put(self, key: str, extents: list[Extent]) -> None:
        try:
            await self._redis.set(self._name(key), dumps(extents), px=self._ttl_ms)
        except redis.RedisError as error:
            self._failed(error)

    async def purge(self) -> int:
        names = [name async for name in self._redis.scan_iter(match=self.PREFIX + "*")]
        if names:
            await self._redis.delete(*names)
        return len(names)

    async def close(self) -> None:
        await self._redis.aclose()

    def _failed(self, error: Exception) -> None:
        if not self._failing:
            _log.warning(
                "query service: Redis at %s failed (%s); answering from Prometheus", self._url, error
            )
        self._failing = True
