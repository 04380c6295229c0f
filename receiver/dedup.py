"""In-memory memory of accepted event ids, bounded in time and size (``cachetools.TTLCache``)."""

from __future__ import annotations

import time
from typing import Callable, Generic, TypeVar

import cachetools

V = TypeVar("V")


class TTLCache(Generic[V]):
    """Keys expire ``ttl_seconds`` after they were added; past ``max_entries`` the oldest added go first."""

    def __init__(self, ttl_seconds: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: cachetools.TTLCache[str, V] = cachetools.TTLCache(maxsize=max_entries, ttl=ttl_seconds, timer=clock)

    def get(self, key: str) -> V | None:
        # `in` honours the expiry without counting as a use, and so does the base class's read. TTLCache's own
        # read would move the key to the back of its eviction order (least recently used), not oldest added.
        return cachetools.Cache.__getitem__(self._entries, key) if key in self._entries else None

    def add(self, key: str, value: V) -> None:
        if self.ttl_seconds > 0:  # a zero TTL remembers nothing
            self._entries[key] = value

    def __len__(self) -> int:
        return len(self._entries)
