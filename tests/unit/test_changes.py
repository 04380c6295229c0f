"""The rules by which the sweep, the receiver, the relay and the runbook act on what they see (domain.changes):
pure functions, no server."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from domain import Outcome, Reason
from domain.changes import (
    OBSERVATION_STANDS_FOR, LastReset, SeenAccount, account_of, block_already_handled, clear_outgoing_for,
    compares_accounts, last_reset_decides, next_seen, observation_stands, reason_for, why_not_acted_on,
)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
BLOCKED_SINCE_T0 = SeenAccount(state="blocked", since=T0, wid="7911@c.us")


def test_a_block_is_number_blocked_whatever_the_account():
    assert reason_for("blocked", "", "7911@c.us") is Reason.number_blocked


def test_another_account_than_recorded_is_an_account_change():
    assert reason_for("authorized", "7922@c.us", "7911@c.us") is Reason.account_changed


def test_the_recorded_account_is_no_change():
    assert reason_for("authorized", "7911@c.us", "7911@c.us") is None


def test_one_account_written_with_and_without_a_plus_is_no_change():
    assert reason_for("authorized", "+79111111111@c.us", "79111111111@c.us") is None


def test_ids_of_forms_that_do_not_compare_are_told_apart_by_their_text():
    assert reason_for("authorized", "12345678901234@lid", "79111111111@c.us") is Reason.account_changed


def test_the_first_account_seen_is_no_change():
    assert reason_for("authorized", "7922@c.us", None) is None  # nothing to compare with yet


def test_authorized_without_an_account_is_no_change():
    assert reason_for("authorized", "", "7911@c.us") is None


def test_other_states_are_no_change():
    assert reason_for("notAuthorized", "7922@c.us", "7911@c.us") is None


def test_only_blocked_and_authorized_states_are_acted_on():
    assert why_not_acted_on("sleepMode", "7911@c.us") == "only the blocked and authorized states are acted on"


def test_authorized_without_an_account_is_not_acted_on():
    assert why_not_acted_on("authorized", "") == "authorized without an account (instanceData.wid)"


def test_a_block_and_an_account_may_need_action():
    assert (why_not_acted_on("blocked", ""), why_not_acted_on("authorized", "7911@c.us")) == (None, None)


def test_only_an_authorized_state_needs_the_recorded_account():
    assert (compares_accounts("authorized"), compares_accounts("blocked")) == (True, False)


def test_the_account_on_the_instance_is_named_only_by_an_authorized_state():
    assert (account_of("authorized", "7911@c.us"), account_of("blocked", "7911@c.us"), account_of("authorized", "")) == (
        "7911@c.us", None, None)


def test_after_a_block_the_outgoing_queue_is_cleared_unless_told_not_to():
    assert (clear_outgoing_for(Reason.number_blocked), clear_outgoing_for(Reason.number_blocked, False)) == (True, False)


def test_after_an_account_change_the_outgoing_queue_is_kept_unless_asked():
    assert (clear_outgoing_for(Reason.account_changed), clear_outgoing_for(Reason.account_changed, True)) == (False, True)


def test_the_sweeps_inspection_stands_only_for_a_while():
    assert observation_stands(T0, T0 + OBSERVATION_STANDS_FOR)
    assert not observation_stands(T0, T0 + OBSERVATION_STANDS_FOR + timedelta(seconds=1))


def test_the_first_check_is_recorded():
    assert next_seen(None, "authorized", "7911@c.us", T0) == SeenAccount(state="authorized", since=T0, wid="7911@c.us")


def test_the_same_state_and_account_write_nothing():
    first = SeenAccount(state="authorized", since=T0, wid="7911@c.us")
    assert next_seen(first, "authorized", "7911@c.us", T0 + timedelta(minutes=15)) is None


def test_a_block_keeps_the_last_account_authorized():
    # So a new account after the block is an account change.
    first = SeenAccount(state="authorized", since=T0, wid="7911@c.us")
    blocked = next_seen(first, "blocked", "", T0 + timedelta(minutes=30))
    assert blocked == SeenAccount(state="blocked", since=T0 + timedelta(minutes=30), wid="7911@c.us")


def test_a_block_seen_again_writes_nothing():
    assert next_seen(BLOCKED_SINCE_T0, "blocked", "", T0 + timedelta(minutes=45)) is None


def _reset(minutes: int, verified: bool = True, reason: Reason = Reason.number_blocked) -> LastReset:
    return LastReset(reason=reason, outcome=Outcome.cleared if verified else Outcome.not_empty, verified_empty=verified,
                     finished_at=T0 + timedelta(minutes=minutes))


def test_a_block_is_handled_by_a_verified_reset_after_it_was_seen():
    assert block_already_handled("blocked", BLOCKED_SINCE_T0, _reset(5))


def test_a_block_is_tried_again_after_an_unverified_reset():
    assert not block_already_handled("blocked", BLOCKED_SINCE_T0, _reset(5, verified=False))


def test_a_reset_that_ended_before_the_block_was_seen_does_not_handle_it():
    assert not block_already_handled("blocked", BLOCKED_SINCE_T0, _reset(-5))


def test_an_account_change_reset_does_not_handle_a_block():
    assert not block_already_handled("blocked", BLOCKED_SINCE_T0, _reset(5, reason=Reason.account_changed))


def test_a_block_without_a_reset_is_not_handled():
    assert not block_already_handled("blocked", BLOCKED_SINCE_T0, None)


def test_a_block_not_seen_at_the_last_check_is_new():
    assert not block_already_handled("blocked", SeenAccount(state="authorized", since=T0), _reset(5))
    assert not last_reset_decides("blocked", SeenAccount(state="authorized", since=T0))


def test_an_instance_no_longer_blocked_needs_no_last_reset():
    assert not last_reset_decides("authorized", BLOCKED_SINCE_T0)


def test_a_last_reset_record_written_by_an_older_version_reads():
    older = {"reason": "number_blocked", "outcome": "cleared", "verified_empty": True,
             "finished_at": "2026-12-01T12:05:00+00:00", "state_instance": "blocked", "wid": "7911@c.us", "extra": 1}
    record = LastReset.model_validate(older)
    assert record == LastReset(reason=Reason.number_blocked, outcome=Outcome.cleared, verified_empty=True,
                               finished_at=T0 + timedelta(minutes=5), state_instance="blocked", wid="7911@c.us")


def test_a_last_reset_record_round_trips_through_json():
    record = _reset(5)
    assert LastReset.model_validate(record.model_dump(mode="json")) == record
