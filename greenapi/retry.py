"""When to retry one request, and how long to wait before the next attempt."""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter; a Retry-After header wins, up to the cap.

    The client builds it from its ``ClientConfig`` (greenapi/client.py), which holds the defaults.
    """

    max_retries: int
    initial_seconds: float
    max_seconds: float
    jitter_ratio: float

    def delay(self, retry_number: int, retry_after: str | None = None, *, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based)."""
        server_delay = parse_retry_after(retry_after)
        if server_delay is not None:
            return min(server_delay, self.max_seconds)
        base = min(self.initial_seconds * 2 ** (retry_number - 1), self.max_seconds)
        jitter = (rng or random).uniform(0, self.jitter_ratio) * base
        return base - jitter


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date. Garbage is ignored."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
