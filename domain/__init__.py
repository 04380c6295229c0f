"""The product's words: why a queue is reset and how a reset ended. Imports nothing heavy (no Prefect),
so the receiver and the CLI can name them before any Prefect machinery loads."""

from __future__ import annotations

from enum import Enum


class Reason(str, Enum):
    """Why an instance's queue is reset."""

    number_blocked = "number_blocked"
    account_changed = "account_changed"


class Outcome(str, Enum):
    """How a queue reset ended."""

    cleared = "cleared"  # cleared, then verified empty
    already_empty = "already_empty"  # count 0 confirmed by a peek: nothing to clear
    not_empty = "not_empty"  # cleared, but notifications were still queued within the bounds
    clear_refused = "clear_refused"  # isCleared false with a reason other than the rate limit
    gave_up_waiting = "gave_up_waiting"  # leftTime waits would exceed the attempt or wait bounds
    api_error = "api_error"  # an API call failed for good (auth, quota, server, bad answer)


VERIFIED_OUTCOMES = frozenset({Outcome.cleared, Outcome.already_empty})

__all__ = ["Outcome", "Reason", "VERIFIED_OUTCOMES"]
