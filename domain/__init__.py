"""The product's words: why a queue is reset and how a reset ended. Imports nothing heavy (no Prefect),
so the receiver and the CLI can name them before any Prefect machinery loads."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict


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


class Handling(str, Enum):
    """Where an affected instance's reset stands, as the sweep that handed it over knows it."""

    started = "started"  # a handle-account-change run was started: its own state says how it ends
    completed = "completed"  # reset here, and verified empty
    failed = "failed"


class RunOutcome(BaseModel):
    """How handing an affected instance over went: started, completed, or failed with the reset's outcome or the
    error's type (never its message: it may carry what the instance's API said)."""

    model_config = ConfigDict(frozen=True)

    handling: Handling
    reset: Outcome | None = None  # how the reset ended, when it ran here and was not verified
    error: str = ""  # what failed before a reset could say: an error's type, and what was being done

    @property
    def failed(self) -> bool:
        return self.handling is Handling.failed

    def __str__(self) -> str:
        why = self.reset.value if self.reset is not None else self.error
        return f"{self.handling.value}: {why}" if self.failed and why else self.handling.value


__all__ = ["Handling", "Outcome", "Reason", "RunOutcome", "VERIFIED_OUTCOMES"]
