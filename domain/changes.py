"""What a check of an instance means: the rules by which a block or an account change is acted on, by the
sweep, the receiver, the relay and the runbook alike. Pure: no HTTP, no Prefect."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from domain import Outcome, Reason
from domain.accounts import same_account

# The two GREEN-API states (stateInstance) this project acts on.
BLOCKED = "blocked"
AUTHORIZED = "authorized"

# How long the sweep's inspection of an instance stands for the run it starts: a run that starts later (its
# worker was busy) inspects the instance again, since its webhookUrl may have been set since.
OBSERVATION_STANDS_FOR = timedelta(minutes=2)


def account_of(state_instance: str | None, wid: str | None) -> str | None:
    """The account a state says is on the instance: its wid when authorized with one, else None."""
    return wid if state_instance == AUTHORIZED and wid else None


def why_not_acted_on(state_instance: str | None, wid: str | None) -> str | None:
    """Why a reported state can never need action (no account needs reading for it); None when it may."""
    if state_instance not in (BLOCKED, AUTHORIZED):
        return f"only the {BLOCKED} and {AUTHORIZED} states are acted on"
    if compares_accounts(state_instance) and account_of(state_instance, wid) is None:
        return f"{AUTHORIZED} without an account (instanceData.wid)"
    return None


def compares_accounts(state_instance: str | None) -> bool:
    """Whether :func:`reason_for` needs the recorded account for this state (so it is read only then)."""
    return state_instance == AUTHORIZED


def reason_for(state_instance: str | None, wid: str | None, recorded_wid: str | None) -> Reason | None:
    """Blocked means number_blocked; authorized with another account than recorded means account_changed.

    The first account ever seen on an instance is recorded, not reported: there is nothing to compare with.
    """
    if state_instance == BLOCKED:
        return Reason.number_blocked
    account = account_of(state_instance, wid)
    if account and recorded_wid and another_account(account, recorded_wid):
        return Reason.account_changed
    return None


def another_account(wid: str, recorded_wid: str) -> bool:
    """Whether ``wid`` is another account than ``recorded_wid``: as the relay compares them where it can
    (``+7...@c.us`` and ``7...@c.us`` are one), else by their text (a phone id and a LID are then two)."""
    same = same_account(wid, recorded_wid)
    return wid != recorded_wid if same is None else not same


def clear_outgoing_for(reason: Reason, asked: bool | None = None) -> bool:
    """Whether a reset also clears the messages not yet sent: as asked, else after a block only (GREEN-API advises
    it before another number is connected; after an account change they are the new account's)."""
    return asked if asked is not None else reason is Reason.number_blocked


def observation_stands(checked_at: datetime, now: datetime) -> bool:
    """Whether the sweep's inspection made at ``checked_at`` still stands for a run starting ``now``."""
    return now - checked_at <= OBSERVATION_STANDS_FOR


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
        wid=account_of(state, wid) or before.wid,
    )
    return None if after == before else after


class LastReset(BaseModel):
    """How an instance's last queue reset ended (``instances list`` shows it; the sweep reads it for blocks).

    Written by the runbook at its end (flows/report.py). Records older versions stored (a plain dict with these
    keys, times as ISO 8601 text) read as they are; unknown keys are ignored.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    reason: Reason | None = None
    outcome: Outcome | None = None
    verified_empty: bool = False
    finished_at: datetime | None = None
    state_instance: str | None = None
    wid: str | None = None


def last_reset_decides(state_instance: str | None, seen: SeenAccount | None) -> bool:
    """Blocked now and at the last check too, since a known moment: whether a reset since then handled the block
    is what decides (the sweep reads the last reset only then)."""
    return state_instance == BLOCKED and seen is not None and seen.state == BLOCKED and seen.since is not None


def block_already_handled(state_instance: str | None, seen: SeenAccount | None, last_reset: LastReset | None) -> bool:
    """Blocked at the last check too, and a number_blocked reset that ended after the block was first seen
    verified the queue empty: this block is handled. A failed or unverified reset is tried again."""
    if last_reset is None or last_reset.finished_at is None or not last_reset_decides(state_instance, seen):
        return False
    return (last_reset.reason is Reason.number_blocked and last_reset.verified_empty
            and last_reset.finished_at >= seen.since)  # type: ignore[union-attr,operator]  (last_reset_decides: set)


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time as stored in a Variable; None for anything else."""
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
