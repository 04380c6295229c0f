"""Which instances the receiver acts for: those registered as greenapi-instance blocks.

The registered idInstances are read in one call (``instances.lookup.registered_ids``, no secret is read)
and a hit is answered from that set for ``ttl_seconds``. A miss is always answered from a read that started
after the request arrived, so an instance registered a moment ago is never turned away; misses that arrive
while a read is in flight share it, so a burst of reports for unknown instances costs few reads.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, Protocol

from instances.lookup import registered_ids


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


class PrefectCredentials:
    """The credentials of each registered instance, for the relay's GetSettings checks.

    Read from the greenapi-instance blocks in one call on first need and kept: a later miss reads them again,
    at most once per ``miss_ttl_seconds``, so an instance registered since is found and an unknown one costs
    no call per notification. Raises what Prefect's client raises when the server does not answer.
    """

    def __init__(self, *, miss_ttl_seconds: float = 30.0, lookup=None, clock: Callable[[], float] = time.monotonic) -> None:
        from instances.lookup import registered_instances

        self._lookup = lookup or registered_instances
        self._clock, self.miss_ttl_seconds = clock, miss_ttl_seconds
        self._by_id: dict[int, object] = {}
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()
        self.reads = 0

    async def get(self, id_instance: int):
        """The InstanceCredentials, or None when no block is registered for the instance."""
        if id_instance in self._by_id:
            return self._by_id[id_instance]
        async with self._lock:
            if id_instance not in self._by_id and self._clock() - self._read_at >= self.miss_ttl_seconds:
                found = await self._lookup()
                self._by_id = {registered.id_instance: registered.credentials for registered in found}
                self._read_at = self._clock()
                self.reads += 1
        return self._by_id.get(id_instance)
