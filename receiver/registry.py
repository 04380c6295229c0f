"""Which instances the receiver acts for: those registered as greenapi-instance blocks.

The registered idInstances are read in one call (``tasks.lookup.registered_ids``, no secret is read)
and a hit is answered from that set for ``ttl_seconds``. A miss is always answered from a read that started
after the request arrived, so an instance registered a moment ago is never turned away; misses that arrive
while a read is in flight share it, so a burst of reports for unknown instances costs few reads.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, Protocol

from tasks.lookup import registered_ids


class InstanceRegistry(Protocol):
    async def is_registered(self, id_instance: int) -> bool: ...


class PrefectInstanceRegistry:
    """The greenapi-instance blocks on the Prefect server in effect, cached briefly."""

    def __init__(
        self,
        *,
        ttl_seconds: float = 10.0,
        lookup: Callable[[], Awaitable[set[int]]] = registered_ids,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self._lookup, self._clock = lookup, clock
        self._ids: set[int] | None = None
        self._read_started = float("-inf")
        self._lock = asyncio.Lock()
        self.reads = 0

    async def is_registered(self, id_instance: int) -> bool:
        """Raises whatever Prefect's client raises when the server does not answer (the receiver answers 503)."""
        asked_at = self._clock()
        if self._ids is not None and id_instance in self._ids and asked_at - self._read_started < self.ttl_seconds:
            return True
        async with self._lock:
            if self._ids is None or self._read_started < asked_at:  # no read began since this request arrived
                started = self._clock()
                ids = await self._lookup()
                self._ids, self._read_started = set(ids), started
                self.reads += 1
            return id_instance in self._ids
