"""The hold-back rule (domain.accounts): held back only on knowledge, checked when what is known is not enough."""

from __future__ import annotations

import pytest

from domain.accounts import (CLOCK_SKEW_SECONDS, REFRESH_AFTER_SECONDS, TRUST_SECONDS, KnownAccount, Verdict,
                             account_key, after_check, judge, needs_refresh, same_account)

OLD, NEW = "71230000001@c.us", "71230000002@c.us"
NOW = 1_800_000_000.0


@pytest.mark.parametrize("a, b, expected", [
    (OLD, "+71230000001@C.US ", True),
    (OLD, NEW, False),
    (OLD, "", None),  # no account on the instance: nothing to compare
    (OLD, "9f3b2c1d@lid", None),  # a phone id and a LID may be one account
    ("9f3b2c1d@lid", "9f3b2c1d@lid", True),
    (OLD, "not an account", None),
])
def test_accounts_compare_only_in_one_form(a, b, expected):
    assert same_account(a, b) is expected


def test_an_unknown_form_has_no_key():
    assert account_key(None) is None and account_key("x y@c.us") is None and account_key(OLD) == OLD


@pytest.mark.parametrize("wid, timestamp, known, expected", [
    # another account than the one confirmed just now, made before that: held back
    (OLD, NOW - 30, KnownAccount(NEW, NOW - 0.5), Verdict.hold),
    # no timestamp (quotaExceeded has none), another account confirmed just now: held back
    (OLD, None, KnownAccount(NEW, NOW - 0.5), Verdict.hold),
    # another account, made after the last confirmation: it may be the account that came since
    (NEW, NOW - 0.1, KnownAccount(OLD, NOW - 0.5), Verdict.check),
    # knowledge too old to decide, either way: FIFO hides the webhook that would announce a change
    (OLD, NOW - 30, KnownAccount(NEW, NOW - TRUST_SECONDS - 1), Verdict.check),
    (OLD, NOW - 1, KnownAccount(OLD, NOW - TRUST_SECONDS - 0.1), Verdict.check),
    # the account confirmed just now, however late the notification: passes without a call
    (OLD, NOW - 600, KnownAccount(OLD, NOW - 0.2), Verdict.forward),
    # nothing known yet
    (OLD, NOW, None, Verdict.check),
    # no wid, or one that cannot be compared: never held back on a guess
    ("", NOW - 600, KnownAccount(NEW, NOW), Verdict.forward),
    ("abc@lid", NOW - 600, KnownAccount(NEW, NOW), Verdict.forward),
    # the instance has no account now (not authorized): nothing is known to differ
    (OLD, NOW - 600, KnownAccount("", NOW), Verdict.forward),
])
def test_judge(wid, timestamp, known, expected):
    assert judge(wid, timestamp, known, NOW) is expected


def test_made_within_the_clock_skew_of_the_confirmation_is_checked_not_held():
    made = NOW - 1.0
    assert judge(OLD, made, KnownAccount(NEW, made + CLOCK_SKEW_SECONDS / 2), NOW) is Verdict.check
    assert judge(OLD, made, KnownAccount(NEW, made + CLOCK_SKEW_SECONDS), NOW) is Verdict.hold


def test_knowledge_is_refreshed_before_it_is_too_old_to_decide():
    assert REFRESH_AFTER_SECONDS < TRUST_SECONDS
    assert not needs_refresh(None, NOW) and not needs_refresh(KnownAccount(OLD, NOW - REFRESH_AFTER_SECONDS), NOW)
    assert needs_refresh(KnownAccount(OLD, NOW - REFRESH_AFTER_SECONDS - 0.01), NOW)


@pytest.mark.parametrize("wid, known, expected", [
    (OLD, KnownAccount(NEW, NOW), Verdict.hold),
    (NEW, KnownAccount(NEW, NOW), Verdict.forward),
    (OLD, None, Verdict.forward),  # GREEN-API could not be asked: forwarded
    (OLD, KnownAccount("", NOW), Verdict.forward),
])
def test_after_a_check(wid, known, expected):
    assert after_check(wid, known) is expected
