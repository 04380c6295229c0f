"""Typed results of the steps: what each task returns and the flow decides on."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class InstanceInfo(_Result):
    id_instance: int
    state_instance: str
    wid: str
    webhook_url_set: bool
    checked_at: datetime = Field(default_factory=utc_now)


class CountResult(_Result):
    queue: Literal["incoming", "outgoing"]
    count: int
    counted_at: datetime = Field(default_factory=utc_now)


class ClearAttempt(_Result):
    """One ClearWebhooksQueue call: cleared, too early (with leftTime), or refused (with a reason)."""

    kind: Literal["cleared", "too_early", "refused"]
    left_time: int | None = None
    reason: str = ""
    attempted_at: datetime = Field(default_factory=utc_now)


class WaitResult(_Result):
    seconds: float
    kind: str
    why: str


class Verification(_Result):
    count_after: int
    peeked_empty: bool | None = Field(description="None when the peek was not possible (webhookUrl set).")
    checked_at: datetime = Field(default_factory=utc_now)

    @property
    def empty(self) -> bool:
        return self.count_after == 0 and self.peeked_empty is not False

    @property
    def method(self) -> str:
        return "count" if self.peeked_empty is None else "count+peek"


class WebhookDetach(_Result):
    """detach-webhook: whether the webhookUrl was remembered and SetSettings saved an empty one. Never the values."""

    remembered: bool
    detached: bool
    token_set: bool = Field(default=False, description="Whether a webhookUrlToken was remembered (never its value).")


class WebhookApplied(_Result):
    """How long SetSettings' empty webhookUrl took to show in GetSettings (GREEN-API: within 5 minutes)."""

    applied: bool
    waited_seconds: float
    reads: int


class WebhookRestore(_Result):
    """restore-webhook: whether remembered settings were found, put back (SetSettings saved) and forgotten."""

    found: bool
    restored: bool = False
    forgotten: bool = False
    superseded: bool = Field(default=False, description="Another webhookUrl was set since the detach: left as it is.")
