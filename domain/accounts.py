"""Whose notification is it: the rule by which the relay holds back a notification of an account that is no
longer on its instance. Pure: no HTTP, no Prefect; the relay (receiver/relay.py) feeds it what it knows.

GREEN-API delivers one FIFO queue per instance, so after an account change the old account's backlog arrives
*before* the ``stateInstanceChanged`` that announces the new one. The relay therefore cannot wait for that
webhook: it judges each notification by the account it carries (``instanceData.wid``) against the account
GREEN-API (GetSettings) said is on the instance in the last ``TRUST_SECONDS``, and asks again when that is older.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

# How long a GetSettings answer is taken as the account on the instance now. GREEN-API allows GetSettings once a
# second per instance; with a check's round trip on top, 2 s lets a refresh started at 1.5 s land in time,
# so a steady stream never waits for one. An account cannot change (a phone scanning the QR code) faster.
TRUST_SECONDS = 2.0
# GREEN-API's timestamps and this machine's clock may differ by this much: a notification of another account made
# around the moment the account was last confirmed may be of an account that came since, so it is checked again.
CLOCK_SKEW_SECONDS = 2.0

_PHONE_ACCOUNT = re.compile(r"^\+?(\d{5,20})@c\.us$")
_OTHER_ACCOUNT = re.compile(r"^([A-Za-z0-9._-]{1,100})@([a-z.]{1,20})$")


def account_key(wid: str | None) -> str | None:
    """A comparable form of an account id, or None when there is none or its form is unknown.

    ``71231234567@c.us`` and ``+71231234567@c.us`` are one account. Other forms (WhatsApp's ``...@lid``) compare
    only with the same form: a phone id and a LID are never called different accounts, since they may be one.
    """
    text = (wid or "").strip().lower()
    if not text:
        return None
    if (phone := _PHONE_ACCOUNT.match(text)) is not None:
        return f"{phone.group(1)}@c.us"
    return text if _OTHER_ACCOUNT.match(text) else None


def same_account(a: str | None, b: str | None) -> bool | None:
    """True or False when both ids are comparable and of one form; None when that cannot be told."""
    key_a, key_b = account_key(a), account_key(b)
    if key_a is None or key_b is None or key_a.rpartition("@")[2] != key_b.rpartition("@")[2]:
        return None
    return key_a == key_b


@dataclass(frozen=True)
class KnownAccount:
    """The account on an instance, as of a moment (Unix seconds): a GetSettings answer, or an
    ``authorized`` stateInstanceChanged webhook (as of its timestamp)."""

    wid: str
    as_of: float


class Verdict(str, Enum):
    forward = "forward"  # the account it carries is, or may be, the one on the instance
    hold = "hold"  # the account it carries is known not to be the one on the instance
    check = "check"  # ask GREEN-API (GetSettings) first, then judge again


def judge(wid: str | None, timestamp: float | None, known: KnownAccount | None, now: float, *,
          trust_seconds: float = TRUST_SECONDS) -> Verdict:
    """What to do with one notification (not a stateInstanceChanged: those always pass).

    Only fresh knowledge decides: the instance's account as confirmed within ``trust_seconds``. Older knowledge
    is not enough either way, since FIFO hides the webhook that would announce a change: the relay asks first.
    Held back only when the fresh account is another one of the same form, confirmed after the notification was
    made (a notification made since may be of an account that came since: asked again). Without a comparable wid,
    or while the instance has no account, it passes.
    """
    if account_key(wid) is None:
        return Verdict.forward
    if known is None or now - known.as_of > trust_seconds:
        return Verdict.check
    same = same_account(wid, known.wid)
    if same is None or same:
        return Verdict.forward
    made_before = timestamp is None or timestamp <= known.as_of - CLOCK_SKEW_SECONDS
    return Verdict.hold if made_before else Verdict.check


# A background confirmation starts once what is known is this old: late enough to ask GREEN-API as seldom as the
# trust window allows (about once every REFRESH_AFTER_SECONDS per instance with traffic), early enough that its
# answer lands before the knowledge is too old to decide on.
REFRESH_AFTER_SECONDS = 1.5


def needs_refresh(known: KnownAccount | None, now: float) -> bool:
    """Whether to confirm the account again in the background, so notifications that keep coming never wait."""
    return known is not None and now - known.as_of > REFRESH_AFTER_SECONDS


def after_check(wid: str | None, known: KnownAccount | None) -> Verdict:
    """The verdict once GREEN-API was asked: ``known`` is its answer (None: it could not be asked, so no guess)."""
    if known is None:
        return Verdict.forward
    return Verdict.hold if same_account(wid, known.wid) is False else Verdict.forward
