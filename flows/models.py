"""What a queue-reset run is asked to do, and what it reports."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from domain import Outcome, Reason
from domain.changes import LastReset


class StepRecord(BaseModel):
    step: str
    result: str
    failed: bool = Field(default=False, description="The step raised: its result is the error, in words.")
    started_at: datetime
    seconds: float


class QueueResetReport(BaseModel):
    """The typed result of handle_account_change, also published as an artifact and an event."""

    id_instance: int
    reason: Reason
    state_instance: str | None = None
    wid: str | None = None
    webhook_url_set: bool | None = None
    count_before: int | None = Field(default=None, description="GetWebhooksCount before the clear; None: unknown (count_before_unknown says why).")
    count_before_unknown: str = Field(default="", description="Why count_before is None: the count failed, or the run stopped before it.")
    outgoing_count: int | None = None
    outgoing_cleared: bool = False
    clear_attempts: int = 0
    waited_seconds: float = 0.0
    count_after: int | None = None
    removed: int | None = Field(default=None, description="Notifications the clear removed: the count before it when a clear went through, 0 when none did; None: unknown (removed_unknown says why).")
    removed_unknown: str = Field(default="", description="Why removed is None.")
    verified_by: str | None = Field(default=None, description="'count+peek', 'count', or None when not verified")
    verified_empty: bool = False
    caveat: str = Field(default="", description="What the verification could not prove (a webhookUrl set: count only).")
    webhook_detached: bool = Field(default=False, description="The webhookUrl was removed for the clear (detach_webhook, or by an earlier run that did not put it back).")
    webhook_restored: bool | None = Field(default=None, description="The remembered webhookUrl and webhookUrlToken were put back; None when there was nothing to put back.")
    held_back_by_relay: int | None = Field(default=None, description="Notifications of an account no longer on the instance that the relay kept from the app, in all (greenapi-held-back-<id>); None when no relay held any back or it could not be read.")
    outcome: Outcome | None = None
    message: str = ""
    started_at: datetime
    finished_at: datetime | None = None
    steps: list[StepRecord] = Field(default_factory=list)


def last_reset_of(report: QueueResetReport) -> LastReset:
    """The instance's last-reset record, as a finished run leaves it."""
    return LastReset(reason=report.reason, outcome=report.outcome, verified_empty=report.verified_empty,
                     finished_at=report.finished_at or report.started_at, state_instance=report.state_instance,
                     wid=report.wid)


def removed_text(report: QueueResetReport) -> str:
    """How many notifications the run removed, in words: a number, or "unknown" and why."""
    return _known(report.removed, report.removed_unknown)


WRONG_ZERO_COUNT = "the count said 0, but a peek found notifications before the clear (GREEN-API's count was wrong)"


def count_was_wrong_zero(report: QueueResetReport) -> bool:
    """The count before the clear said 0, yet a peek before the first clear found a notification."""
    first_clear = next((n for n, step in enumerate(report.steps) if step.step == "clear"), len(report.steps))
    return report.count_before == 0 and any(step.step == "peek" and step.result == "found one"
                                            for step in report.steps[:first_clear])


def count_before_text(report: QueueResetReport) -> str:
    """The count before the clear, in words: a number, or "unknown" and why."""
    return _known(report.count_before, report.count_before_unknown)


def _known(value: int | None, why_unknown: str) -> str:
    return str(value) if value is not None else f"unknown ({why_unknown or 'not recorded'})"


class QueueNotVerifiedEmpty(Exception):
    """Raised at the end of a run that could not prove the queue empty; carries the full report."""

    def __init__(self, report: QueueResetReport) -> None:
        super().__init__(f"Instance {report.id_instance}: {report.outcome.value if report.outcome else 'failed'}: {report.message}")
        self.report = report

    def __reduce__(self):
        return (type(self), (self.report,))
