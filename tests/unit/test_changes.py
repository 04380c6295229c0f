"""The rules by which the sweep acts on what it sees (domain.changes): pure functions, no server."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from domain import Reason
from domain.changes import SeenAccount, block_already_handled, next_seen, reason_for

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def test_a_block_is_number_blocked_and_another_wid_an_account_change_but_the_first_wid_is_only_recorded():
    assert reason_for("blocked", "", "7911@c.us") is Reason.number_blocked
    assert reason_for("authorized", "7922@c.us", "7911@c.us") is Reason.account_changed
    assert reason_for("authorized", "7911@c.us", "7911@c.us") is None
    assert reason_for("authorized", "7922@c.us", None) is None  # nothing to compare with yet


def test_the_record_changes_only_when_the_state_or_the_account_does():
    first = next_seen(None, "authorized", "7911@c.us", T0)
    assert first == SeenAccount(state="authorized", since=T0, wid="7911@c.us")
    assert next_seen(first, "authorized", "7911@c.us", T0 + timedelta(minutes=15)) is None  # nothing to write
    blocked = next_seen(first, "blocked", "", T0 + timedelta(minutes=30))
    # Blocked keeps the last account authorized on it, so a new one afterwards is an account change.
    assert blocked == SeenAccount(state="blocked", since=T0 + timedelta(minutes=30), wid="7911@c.us")
    assert next_seen(blocked, "blocked", "", T0 + timedelta(minutes=45)) is None


def test_a_block_counts_as_handled_only_after_a_verified_reset_that_ended_after_it_was_seen():
    seen = SeenAccount(state="blocked", since=T0, wid="7911@c.us")

    def reset(minutes: int, verified: bool = True, reason: str = "number_blocked") -> dict:
        return {"reason": reason, "verified_empty": verified, "finished_at": (T0 + timedelta(minutes=minutes)).isoformat()}

    assert block_already_handled(seen, reset(5))
    assert not block_already_handled(seen, reset(5, verified=False))  # tried again until one verifies
    assert not block_already_handled(seen, reset(-5))  # ended before this block was seen
    assert not block_already_handled(seen, reset(5, reason="account_changed"))
    assert not block_already_handled(seen, None)
    assert not block_already_handled(SeenAccount(state="authorized", since=T0), reset(5))  # not blocked last time
