"""The runbook for one instance after its number was blocked or its account changed, in whatever flow run
calls it (handle-account-change, or the sweep handling an instance inline); its caller holds the instance.

1. Inspect the instance: state, account (wid), whether a webhookUrl is set.
2. With detach_webhook and a webhookUrl set: remember it (a Secret block), SetSettings an empty one, wait
   until it applies. Only then can a peek prove anything.
3. Count the incoming notification queue and the outgoing message queue; clear the outgoing one after a
   block (unless told not to), or when asked to.
4. Clear the incoming queue. "Too many requests" comes with leftTime: wait exactly that, clear again.
5. Peek while waiting for the count snapshot to postdate the clear, then count: empty when the count is 0
   and the peek (where the webhookUrl is empty) found nothing. A webhookUrl set: the count only, said so.
6. Not empty yet: clear again once the clear window allows, within the attempt and wait bounds.
7. Whatever happened: put a detached webhookUrl and webhookUrlToken back (also one an earlier run left).
Completed only when the queue is verified empty. Otherwise the runbook raises QueueNotVerifiedEmpty
(carrying the report) and the flow ends Failed with what is left and why, that exception as its data.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import httpx

from prefect import get_run_logger

from domain import VERIFIED_OUTCOMES, Outcome, Reason
from domain.changes import clear_outgoing_for, observation_stands
from flows.limits import RunLimits
from flows.models import WRONG_ZERO_COUNT, QueueNotVerifiedEmpty, QueueResetReport, count_was_wrong_zero
from flows.report import publish_report
from flows.steps import record_step
from greenapi import ClientConfig, GreenAPIClient, GreenAPIError, GreenApiTimings, InstanceCredentials, green_api_timings
from tasks import (
    clear_notifications,
    clear_outgoing_messages,
    count_notifications,
    count_outgoing_messages,
    inspect_instance,
    peek_notification,
    verify_empty,
    wait_seconds,
)
from tasks import webhook as webhook_steps
from tasks.connections import open_client
from instances.memory import next_clear_allowed_at, record_next_clear_allowed
from tasks.results import InstanceInfo, Verification, utc_now
from tasks.wait import WaitKind


class _Stop(Exception):
    """Ends the runbook early with an outcome; never leaves this module."""

    def __init__(self, outcome: Outcome, message: str) -> None:
        super().__init__(message)
        self.outcome, self.message = outcome, message


COUNT_ONLY_CAVEAT = (
    "verified by the count only: with a webhookUrl set GREEN-API allows no peek, and GREEN-API's count has been "
    "reported to read 0 on a full queue (GREEN-API issue #1108); detach_webhook verifies with a peek"
)
WEBHOOK_CLEAR_HINT = (
    "GREEN-API has been reported to refuse clears while a webhookUrl is set (GREEN-API issue #1107): "
    "detach_webhook removes it for the clear and puts it back"
)


async def reset_instance_queue(
    reason: Reason,
    credentials: InstanceCredentials,
    config: ClientConfig,
    *,
    limits: RunLimits = RunLimits(),
    timings: GreenApiTimings | None = None,
    clear_outgoing: bool | None = None,
    detach_webhook: bool = False,
    observed: InstanceInfo | None = None,
    http_client: httpx.AsyncClient | None = None,
) -> QueueResetReport:
    """The runbook on one instance whose slot the caller holds (:func:`instances.locks.instance_lock`): runs
    for one instance take turns, so the second sees the first one's result, not a half-cleared queue.

    Args:
        reason: why the queue is reset.
        credentials: the instance's.
        config: the GREEN-API client's timeouts and retries.
        limits: the run's bounds (clear calls, waits).
        timings: GREEN-API's windows; None: GREEN-API's own (or the emulator's, in the tests and the demo).
        clear_outgoing: also clear messages not yet sent; None: after a block only.
        detach_webhook: GREEN-API's workaround for a webhookUrl (see handle_account_change).
        observed: the sweep's inspection of the instance: while it stands (domain.changes.observation_stands) the
            run skips its own, and still counts the queue before the clear (GetWebhooksCount, not rate-limited like
            GetSettings), so it says what it removed.
        http_client: a fleet run's shared HTTP client (the sweep's), else the run opens its own connections.

    Returns:
        The report, when the queue was verified empty; otherwise QueueNotVerifiedEmpty carries it.
    """
    clear_outgoing = clear_outgoing_for(reason, clear_outgoing)
    if observed is not None and not _observation_stands(observed, credentials.id_instance):
        observed = None
    report = QueueResetReport(id_instance=credentials.id_instance, reason=reason, started_at=utc_now())
    async with open_client(credentials, config, http_client) as client:
        runbook = _Runbook(client, limits, timings or green_api_timings(), report)
        await runbook.run_to_an_outcome(clear_outgoing, detach_webhook, observed)
    return await _conclude(report, stopped_at=runbook.current_step())


async def _conclude(report: QueueResetReport, *, stopped_at: str) -> QueueResetReport:
    """Say what was removed, publish the report; the report when the queue is verified empty, else raise."""
    account_removed(report, stopped_at=stopped_at)
    report.verified_empty = report.outcome in VERIFIED_OUTCOMES
    report.finished_at = utc_now()
    await publish_report(report)
    if report.verified_empty:
        get_run_logger().info("Instance %s: %s", report.id_instance, report.message)
        return report
    raise QueueNotVerifiedEmpty(report)


class _Runbook:
    """One run's steps on one instance; each step a task, each recorded in the report."""

    def __init__(self, client: GreenAPIClient, limits: RunLimits, timings: GreenApiTimings, report: QueueResetReport) -> None:
        self.client, self.limits, self.timings, self.report = client, limits, timings, report
        self.can_peek = False
        self.must_restore = False  # a detach was attempted (here or by an earlier run): put it back at the end
        self.refusals = 0
        self.last_check: Verification | None = None

    def current_step(self) -> str:
        """The step that failed (a wait run beside a failed peek may have finished after it), else the last one."""
        failed = [step.step for step in self.report.steps if step.failed]
        return failed[-1] if failed else self.report.steps[-1].step if self.report.steps else "start"

    async def run_to_an_outcome(self, clear_outgoing: bool, detach_webhook: bool, observed: InstanceInfo | None) -> None:
        """The steps until one decides the outcome (in the report); a detached webhookUrl put back whatever happened."""
        try:
            await self.run(clear_outgoing, detach_webhook, observed)
        except _Stop as stop:
            self.report.outcome, self.report.message = stop.outcome, stop.message
        except GreenAPIError as exc:
            self.report.outcome, self.report.message = Outcome.api_error, f"{self.current_step()} step failed: {exc}"
        finally:  # a crash skips this: the Secret block survives, and the next run puts the webhook back
            await self.put_webhook_back()

    async def run(self, clear_outgoing: bool, detach_webhook: bool, observed: InstanceInfo | None) -> None:
        report = self.report
        if observed is None:
            info = await record_step(report, "inspect", inspect_instance(self.client), lambda i: f"{i.state_instance}, wid {i.wid or '—'}")
        else:  # the sweep inspected it moments ago: its answer stands; the run still counts before the clear
            info = observed
        report.state_instance, report.wid, report.webhook_url_set = info.state_instance, info.wid, info.webhook_url_set
        self.can_peek = not info.webhook_url_set
        if await webhook_steps.remembered_webhook(self.client.id_instance) is not None:
            # An earlier run detached the webhookUrl and did not put it back: this run puts it back after its work.
            self.must_restore = True
            report.webhook_detached = not info.webhook_url_set
        if detach_webhook and info.webhook_url_set:
            await self.detach()
        await self.count_before(clear_outgoing, count_outgoing=observed is None or clear_outgoing)
        # A window an earlier run learned of (its clear, or a leftTime), on any worker, is known: no clear inside it.
        window_left = _seconds_until(await next_clear_allowed_at(self.client.id_instance))
        await self.stop_if_already_empty(window_left)
        await self.wait("clear-window", window_left, Outcome.gave_up_waiting, "an earlier run's clear window is still open")
        await self.clear_until_verified()

    async def detach(self) -> None:
        """GREEN-API's workaround for a webhookUrl: remembered first, so a failure or a crash still puts it back."""
        self.must_restore = True
        detached = await record_step(self.report, "detach webhook", webhook_steps.detach_webhook(self.client),
                                     lambda d: "webhookUrl remembered, empty one saved" if d.detached else "SetSettings did not save")
        if not detached.detached:
            raise _Stop(Outcome.api_error, "detach webhook step failed: SetSettings did not save an empty webhookUrl")
        applied = await record_step(
            self.report, "wait (webhook detached)",
            webhook_steps.wait_webhook_detached(self.client, self.timings.settings_apply_seconds, self.timings.settings_poll_seconds),
            lambda a: f"{'applied' if a.applied else 'NOT applied'} after {a.waited_seconds:.1f} s",
        )
        self.report.waited_seconds = round(self.report.waited_seconds + applied.waited_seconds, 3)
        if not applied.applied:
            raise _Stop(Outcome.gave_up_waiting, f"the empty webhookUrl did not apply within "
                        f"{self.timings.settings_apply_seconds:.0f} s (GREEN-API: SetSettings applies within 5 minutes); no clear was sent")
        self.report.webhook_detached, self.can_peek = True, True

    async def count_before(self, clear_outgoing: bool, *, count_outgoing: bool) -> None:
        """The "before" counts: the incoming queue in every run (a sweep's too: what the clear removes is the count
        before it); the outgoing one unless the sweep's inspection stands and no outgoing clear follows."""
        report = self.report
        try:
            before = await record_step(report, "count", count_notifications(self.client), lambda c: f"{c.count} queued")
        except GreenAPIError as exc:
            report.count_before_unknown = f"GetWebhooksCount failed: {exc}"
            raise
        report.count_before = before.count
        if count_outgoing:
            outgoing = await record_step(report, "count outgoing", count_outgoing_messages(self.client), lambda c: f"{c.count} queued")
            report.outgoing_count = outgoing.count
            if clear_outgoing and outgoing.count:
                cleared = await record_step(report, "clear outgoing", clear_outgoing_messages(self.client), lambda a: a.kind)
                report.outgoing_cleared = cleared.kind == "cleared"

    async def stop_if_already_empty(self, window_left: float) -> None:
        """A count of 0 is evidence, not proof: a peek that also finds nothing, or a clear moments ago, skips the clear."""
        report = self.report
        if report.count_before != 0:
            return
        if self.can_peek:
            if await record_step(report, "peek", peek_notification(self.client), _describe_peek):
                report.count_after, report.verified_by = 0, "count+peek"
                raise _Stop(Outcome.already_empty, "the queue was already empty (count 0, peek found nothing); no clear needed")
        elif window_left > 0:
            report.count_after, report.verified_by, report.caveat = 0, "count", COUNT_ONLY_CAVEAT
            raise _Stop(Outcome.already_empty, f"count 0, and an earlier run cleared the queue: its clear window "
                        f"is open {window_left:.0f} s more; no clear needed; {COUNT_ONLY_CAVEAT}")

    def check_wait(self, seconds: float, give_up: Outcome, what: str) -> None:
        if self.report.waited_seconds + seconds > self.limits.max_total_wait_seconds:
            raise _Stop(give_up, f"{what}; waiting {seconds:.0f} s more would pass "
                        f"max_total_wait_seconds={self.limits.max_total_wait_seconds:.0f}")

    async def wait(self, kind: WaitKind, seconds: float, give_up: Outcome, what: str, *, checked: bool = False) -> None:
        if seconds <= 0:
            return
        if not checked:
            self.check_wait(seconds, give_up, what)
        await record_step(self.report, f"wait ({kind})", wait_seconds(self.client.id_instance, seconds, kind), lambda w: f"{w.seconds:.1f} s")
        self.report.waited_seconds = round(self.report.waited_seconds + seconds, 3)

    async def clear_until_verified(self) -> None:
        report, limits = self.report, self.limits
        while True:
            if report.clear_attempts >= limits.max_clear_attempts:
                raise self.out_of_attempts()
            attempt = await record_step(report, "clear", clear_notifications(self.client), _describe_clear)
            report.clear_attempts += 1
            if attempt.kind == "too_early":
                await record_next_clear_allowed(self.client.id_instance, attempt.attempted_at + timedelta(seconds=attempt.left_time))
                if report.clear_attempts < limits.max_clear_attempts:  # no point waiting for a clear the bound forbids
                    await self.wait("left-time", attempt.left_time + limits.left_time_margin_seconds, Outcome.gave_up_waiting,
                                    f"GREEN-API asks to wait {attempt.left_time} s before clearing")
            elif attempt.kind == "refused":
                await self.after_refusal(attempt.reason)
            else:
                await self.after_clear(attempt.attempted_at)

    async def after_refusal(self, reason: str) -> None:
        self.refusals += 1
        refusal = f"GREEN-API refused to clear the queue: {reason or 'no reason given'}"
        if self.report.webhook_url_set and not self.report.webhook_detached:
            refusal = f"{refusal}; {WEBHOOK_CLEAR_HINT}"
        if self.refusals > self.limits.max_refused_clears or self.report.clear_attempts >= self.limits.max_clear_attempts:
            raise _Stop(Outcome.clear_refused, f"{refusal} ({self.refusals} time(s))")
        # "The system could not process the request" may pass: try again shortly, a bounded number of times.
        await self.wait("refused", self.limits.refused_retry_seconds, Outcome.clear_refused, refusal)

    async def after_clear(self, attempted_at: datetime) -> None:
        """Verify a clear: peek while the count snapshot ages past it, then count. Stops when verified empty."""
        report, window = self.report, self.timings.clear_interval_seconds
        cleared_at = time.monotonic()
        await record_next_clear_allowed(self.client.id_instance, attempted_at + timedelta(seconds=window))
        check = await self.verify()
        report.count_after, report.verified_by = check.count_after, check.method
        if check.empty:
            report.caveat = "" if self.can_peek else COUNT_ONLY_CAVEAT
            before = ("unknown" if report.count_before is None
                      else "unknown: the count said 0, a peek found some" if count_was_wrong_zero(report)
                      else f"{report.count_before}, the count before the clear")
            raise _Stop(Outcome.cleared, f"queue cleared and verified empty by {check.method} (removed: {before}; "
                        f"clear calls: {report.clear_attempts})" + (f"; {report.caveat}" if report.caveat else ""))
        get_run_logger().warning(
            "Instance %s: still %d notification(s) counted after the clear (peek %s); clearing again when the window allows",
            self.client.id_instance, check.count_after, {True: "empty", False: "found one", None: "not possible"}[check.peeked_empty],
        )
        if report.clear_attempts < self.limits.max_clear_attempts:  # else the bound check at the top reports it
            window_left = window - (time.monotonic() - cleared_at)
            await self.wait("clear-window", window_left, Outcome.not_empty, f"{_left_over(check)} after the clear")

    async def verify(self) -> Verification:
        """The peek waits its receiveTimeout while the count-refresh wait runs: the larger of the two, not their sum."""
        seconds = self.timings.count_refresh_seconds
        self.check_wait(seconds, Outcome.not_empty, "the count cannot be trusted yet after the clear")
        waiting = self.wait("count-refresh", seconds, Outcome.not_empty, "", checked=True)
        if self.can_peek:
            peeking = record_step(self.report, "peek (during the wait)", peek_notification(self.client), _describe_peek)
            waited, peeked_empty = await asyncio.gather(waiting, peeking, return_exceptions=True)
            for outcome in (waited, peeked_empty):
                if isinstance(outcome, BaseException):
                    raise outcome
        else:
            await waiting
            peeked_empty = None
        self.last_check = await record_step(self.report, "verify", verify_empty(self.client, peeked_empty), _describe_verification)
        return self.last_check

    def out_of_attempts(self) -> _Stop:
        report, check = self.report, self.last_check
        if check is not None and not check.empty:
            return _Stop(Outcome.not_empty, f"{_left_over(check)} after {report.clear_attempts} clear call(s) "
                         f"(max_clear_attempts); notifications may keep arriving")
        return _Stop(Outcome.gave_up_waiting, f"the queue is not cleared after {report.clear_attempts} clear call(s) (max_clear_attempts)")

    async def put_webhook_back(self) -> None:
        """Restore what a detach remembered, whatever happened before; a failure here is said, not hidden."""
        if not self.must_restore:
            return
        report = self.report
        try:
            restored = await record_step(report, "restore webhook", webhook_steps.restore_webhook(self.client), _describe_restore)
        except GreenAPIError as exc:
            report.webhook_restored = False
            report.outcome = Outcome.api_error
            report.message = (f"{report.message}; " if report.message else "") + (
                f"restore webhook step failed: {exc}; the webhookUrl is remembered in Secret block "
                f"{webhook_steps.detached_webhook_block_name(self.client.id_instance)}, the next run puts it back")
            return
        report.webhook_restored = restored.restored if restored.found and not restored.superseded else None
        if restored.found and not restored.restored and not restored.superseded:
            report.outcome = Outcome.api_error
            report.message = f"{report.message}; SetSettings did not save the remembered webhookUrl back: the next run tries again"
        elif restored.restored:
            report.message = f"{report.message}; webhookUrl and webhookUrlToken put back (SetSettings restarts the instance; applies within 5 minutes)"


def account_removed(report: QueueResetReport, *, stopped_at: str) -> None:
    """Set what the run removed: the count before the clear once a clear went through (ClearWebhooksQueue
    deletes the whole queue), 0 when none did; "unknown" and why where that cannot be told."""
    if report.count_before is None and not report.count_before_unknown:
        report.count_before_unknown = f"not counted: the run stopped at the {stopped_at} step"
    clears = [step for step in report.steps if step.step == "clear"]
    went_through = any(step.result == "cleared" for step in clears)
    if went_through and count_was_wrong_zero(report):
        report.removed, report.removed_unknown = None, WRONG_ZERO_COUNT
    elif went_through:
        report.removed = report.count_before
        report.removed_unknown = "" if report.count_before is not None else f"a clear went through; count before {report.count_before_unknown}"
    elif any(step.failed for step in clears):  # no answer: the clear may have gone through
        report.removed = None
        report.removed_unknown = ("the clear call failed without an answer and may have gone through"
                                  + (f"; {report.count_before} were counted before it" if report.count_before is not None else ""))
    else:
        report.removed, report.removed_unknown = 0, ""


def _observation_stands(observed: InstanceInfo, id_instance: int) -> bool:
    """The sweep's inspection of this instance, recent enough to skip the run's own; said when it is not."""
    if observed.id_instance == id_instance and observation_stands(observed.checked_at, utc_now()):
        return True
    get_run_logger().info("Instance %s: the sweep's inspection (of instance %s at %s) no longer stands: inspecting again",
                          id_instance, observed.id_instance, f"{observed.checked_at:%H:%M:%S}")
    return False


def _seconds_until(moment: datetime | None) -> float:
    return 0.0 if moment is None else max(0.0, (moment - utc_now()).total_seconds())


def _describe_clear(attempt) -> str:
    if attempt.kind == "too_early":
        return f"too early: leftTime {attempt.left_time} s"
    if attempt.kind == "refused":
        return f"refused: {attempt.reason}"
    return "cleared"


def _left_over(check: Verification) -> str:
    if check.count_after:
        return f"{check.count_after} notification(s) still counted"
    return "a peek still found a notification (count 0)"


def _describe_peek(empty: bool) -> str:
    return "nothing queued" if empty else "found one"


def _describe_restore(restored) -> str:
    if not restored.found:
        return "nothing to put back"
    if restored.superseded:
        return "another webhookUrl was set since: left as it is"
    return "webhookUrl and webhookUrlToken put back" if restored.restored else "SetSettings did not save"


def _describe_verification(check) -> str:
    peek = {True: "peek empty", False: "peek found one", None: "no peek"}[check.peeked_empty]
    return f"count {check.count_after}, {peek}: {'empty' if check.empty else 'NOT empty'}"
