"""Which instances the receiver acts for: those registered as greenapi-instance blocks.

The registered idInstances are read in one call (``tasks.credentials.registered_ids``, no secret read) and
reused for ``ttl_seconds``. An id missing from that set makes the receiver read it again, at most once per
``miss_refresh_seconds``, so an instance registered a moment ago is seen at once while a flood of reports
for unknown instances costs Prefect at most one call per interval.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, Protocol

from tasks.credentials import registered_ids


class InstanceRegistry(Protocol):
    async def is_registered(self, id_instance: int) -> bool: ...


class PrefectInstanceRegistry:
    """The greenapi-instance blocks on the Prefect server in effect, cached briefly."""

    def __init__(
        self,
        *,
        ttl_seconds: float = 10.0,
        miss_refresh_seconds: float = 1.0,
        lookup: Callable[[], Awaitable[set[int]]] = registered_ids,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.miss_refresh_seconds = min(miss_refresh_seconds, ttl_seconds)
        self._lookup, self._clock = lookup, clock
        self._ids: set[int] | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()
        self.reads = 0

    def _fresh(self, id_instance: int, now: float) -> bool:
        if self._ids is None:
            return False
        age = now - self._read_at
        return age < self.ttl_seconds and (id_instance in self._ids or age < self.miss_refresh_seconds)

    async def is_registered(self, id_instance: int) -> bool:
        """Raises whatever Prefect's client raises when the server does not answer (the receiver answers 503)."""
        if not self._fresh(id_instance, self._clock()):
            async with self._lock:
                if not self._fresh(id_instance, self._clock()):  # another request may have just read it
                    ids = await self._lookup()
                    self._ids, self._read_at = set(ids), self._clock()
                    self.reads += 1
        assert self._ids is not None
        return id_instance in self._ids
