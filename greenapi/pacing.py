"""Per-method request pacing: GREEN-API's per-instance rate limits, kept by one client.

GREEN-API allows getStateInstance and getSettings once per second per instance, and
receiveNotification and deleteNotification 100 times per second
(https://green-api.com/en/docs/api/ratelimiter/). A client holds one :class:`Pacer`, so it never
sends one method twice within that method's interval, its own retries included.

The interval is counted from the moment the previous request of the method **finished** (answer,
error or timeout), not from when it was sent: the server saw that request before the client saw its
end, so the gap the server sees is never shorter than the interval, whatever the network latency.
Two requests of one method on one client also never overlap: each waits its turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping

from greenapi.timings import RATE_LIMITS_PER_SECOND

logger = logging.getLogger("greenapi.pacing")

#: Seconds between two requests of a method on one instance; methods not listed are not paced.
MIN_INTERVAL_SECONDS: Mapping[str, float] = {method: 1 / per_second for method, per_second in RATE_LIMITS_PER_SECOND.items()}


class Pacer:
    """Spacing of one client's requests, per method.

    ``async with pacer.turn(method)`` around everything one call does (retries included), then per
    attempt ``await pacer.wait(method)`` before sending and ``pacer.done(method)`` once it is over.
    ``clock`` and ``sleep`` must agree (a fake sleep must move a fake clock).
    """

    def __init__(
        self,
        intervals: Mapping[str, float] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._intervals = dict(MIN_INTERVAL_SECONDS if intervals is None else intervals)
        self._clock = clock
        self._sleep = sleep
        self._last_done: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def interval(self, method: str) -> float:
        """The method's minimum interval in seconds (0 when it is not paced)."""
        return self._intervals.get(method, 0.0)

    def remaining(self, method: str) -> float:
        """Seconds until ``method`` may be sent again (0 when it may be sent now)."""
        last = self._last_done.get(method)
        if last is None:
            return 0.0
        return max(0.0, last + self.interval(method) - self._clock())

    def done(self, method: str) -> None:
        """A request of ``method`` is over (answered, failed or timed out): its interval starts now."""
        if self.interval(method) > 0:
            self._last_done[method] = self._clock()

    @contextlib.asynccontextmanager
    async def turn(self, method: str) -> AsyncIterator[None]:
        """One call of a paced method at a time (per pacer); unpaced methods never wait here."""
        if self.interval(method) <= 0:
            yield
            return
        lock = self._locks.get(method)
        if lock is None:
            lock = self._locks[method] = asyncio.Lock()
        async with lock:
            yield

    async def wait(self, method: str, *, at_least: float | None = None) -> float:
        """Sleep until ``method`` may be sent, and at least ``at_least`` seconds (a retry's backoff).

        With ``at_least`` given it always sleeps (possibly 0 s), as a retry always did; without it,
        only when pacing asks for a wait. Returns the seconds slept.
        """
        pacing = self.remaining(method)
        seconds = max(pacing, at_least or 0.0)
        if pacing > (at_least or 0.0):  # pacing, not backoff, decides this wait
            logger.debug(
                "pacing %s: waiting %.3f s (GREEN-API allows one %s per %.2f s per instance%s)",
                method, seconds, method, self.interval(method),
                "" if at_least is None else f"; backoff alone was {at_least:.3f} s",
            )
        if at_least is not None or seconds > 0:
            await self._sleep(seconds)
        return seconds
