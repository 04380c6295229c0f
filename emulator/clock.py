"""A clock that tests can push forward: monotonic time plus an adjustable offset."""

from __future__ import annotations

import threading
import time


class Clock:
    """``now()`` is ``time.monotonic()`` plus an offset; ``wall()`` is ``time.time()`` plus the same offset.

    ``advance(seconds)`` moves both forward at once (virtual time jumps), so windows expire,
    snapshots age and arrivals happen without anyone sleeping.
    """

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    @property
    def offset(self) -> float:
        with self._lock:
            return self._offset

    def now(self) -> float:
        return time.monotonic() + self.offset

    def wall(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += float(seconds)
            return self._offset
