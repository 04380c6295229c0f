"""In-memory memory of accepted event ids, bounded in time and size."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

V = TypeVar("V")


@dataclass(frozen=True)
class _Entry(Generic[V]):
    expires: float
    value: V


class TTLCache(Generic[V]):
    """Keys expire ``ttl_seconds`` after they were added; past ``max_entries`` the oldest go first.

    Every entry lives equally long, so insertion order is expiry order and pruning is O(expired).
    """

    def __init__(self, ttl_seconds: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry[V]] = OrderedDict()

    def _prune(self, now: float) -> None:
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if entry.expires > now:
                break
            del self._entries[key]

    def get(self, key: str) -> V | None:
        self._prune(self._clock())
        entry = self._entries.get(key)
        return entry.value if entry is not None else None

    def add(self, key: str, value: V) -> None:
        now = self._clock()
        self._prune(now)
        if self.ttl_seconds <= 0:
            return
        self._entries.pop(key, None)
        self._entries[key] = _Entry(now + self.ttl_seconds, value)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        self._prune(self._clock())
        return len(self._entries)
