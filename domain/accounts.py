"""Whose notification is it: the rule by which the relay holds back a notification of an account that is no
longer on its instance. Pure: no HTTP, no Prefect; the relay (receiver/relay.py) feeds it what it knows.

GREEN-API delivers one FIFO queue per instance, so after an account change the old account's backlog arrives
*before* the ``stateInstanceChanged`` that announces the new one. The relay therefore cannot wait for that
webhook: it judges each notification by the account it carries (``instanceData.wid``) against the account it
knows to be on the instance, and asks GREEN-API (GetSettings) whenever what it knows is not enough.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

# How long a GetSettings answer is taken as the account on the instance now. GREEN-API allows GetSettings once a
# second per instance, so this is also the most often the relay asks; an account cannot change (a new phone
# scanning the QR code) faster than that.
TRUST_SECONDS = 1.0
# A notification created longer ago than this waited in GREEN-API's queue (it delivers in about 20 ms when the
# queue flows): the account may have changed since, so it is only forwarded on fresh knowledge.
LATE_AFTER_SECONDS = 5.0
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
          trust_seconds: float = TRUST_SECONDS, late_after_seconds: float = LATE_AFTER_SECONDS) -> Verdict:
    """What to do with one notification (not a stateInstanceChanged: those always pass).

    Held back only on knowledge: the instance's account, confirmed within ``trust_seconds`` and after the
    notification was made, is another account of the same form. Without a comparable wid it passes. A notification of the known account passes at once
    when it is not late; a late one (it waited in the queue: the account may have changed meanwhile, and FIFO
    hides the webhook that would say so) or one of another account waits for fresh knowledge.
    """
    if account_key(wid) is None:
        return Verdict.forward
    if known is None:
        return Verdict.check
    same = same_account(wid, known.wid)
    if same is None:
        return Verdict.forward
    trusted = now - known.as_of <= trust_seconds
    if not same:
        made_before = timestamp is None or timestamp <= known.as_of - CLOCK_SKEW_SECONDS
        return Verdict.hold if trusted and made_before else Verdict.check
    if trusted or (timestamp is not None and now - timestamp <= late_after_seconds):
        return Verdict.forward
    return Verdict.check


def after_check(wid: str | None, known: KnownAccount | None) -> Verdict:
    """The verdict once GREEN-API was asked: ``known`` is its answer (None: it could not be asked, so no guess)."""
    if known is None:
        return Verdict.forward
    return Verdict.hold if same_account(wid, known.wid) is False else Verdict.forward
