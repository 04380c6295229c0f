"""What a check of an instance means: the rules by which a block or an account change is acted on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from domain import Reason


def reason_for(state_instance: str | None, wid: str | None, recorded_wid: str | None) -> Reason | None:
    """Blocked means number_blocked; authorized with another account than recorded means account_changed.

    The first account ever seen on an instance is recorded, not reported: there is nothing to compare with.
    """
    if state_instance == "blocked":
        return Reason.number_blocked
    if state_instance == "authorized" and wid and recorded_wid and wid != recorded_wid:
        return Reason.account_changed
    return None


class SeenAccount(BaseModel):
    """What the last check saw on an instance: its state, since when, and the last account authorized on it."""

    model_config = ConfigDict(frozen=True)

    state: str | None = None
    since: datetime | None = None
    wid: str | None = None


def next_seen(seen: SeenAccount | None, state: str, wid: str | None, now: datetime) -> SeenAccount | None:
    """The record after a check that saw ``state`` and ``wid``; None when nothing changed, so nothing is written."""
    before = seen or SeenAccount()
    after = SeenAccount(
        state=state,
        since=before.since if before.state == state else now,  # unknown stays unknown: no write just for it
        wid=wid if state == "authorized" and wid else before.wid,
    )
    return None if after == before else after


def block_already_handled(seen: SeenAccount | None, last_reset: dict | None) -> bool:
    """Blocked at the last check too, and a number_blocked reset that ended after the block was first seen
    verified the queue empty: this block is handled. A failed or unverified reset is tried again."""
    if seen is None or seen.state != "blocked" or seen.since is None or not last_reset:
        return False
    finished = parse_time(last_reset.get("finished_at"))
    return (last_reset.get("reason") == Reason.number_blocked.value and last_reset.get("verified_empty") is True
            and finished is not None and finished >= seen.since)


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time as stored in a Variable; None for anything else."""
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
