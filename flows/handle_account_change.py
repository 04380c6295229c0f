"""The runbook for one instance after its number was blocked or its account changed.

1. Inspect the instance: state, account (wid), whether a webhookUrl is set.
2. Count the incoming notification queue (and the outgoing message queue, cleared only on request).
3. Clear the incoming queue. "Too many requests" comes with leftTime: wait exactly that, clear again.
4. Wait until the count snapshot postdates the clear, then verify: count 0, and a peek finds
   nothing where the webhookUrl is empty.
5. Not empty yet: clear again once the clear window allows, within the attempt and wait bounds.
Completed only when the queue is verified empty. Otherwise the run raises QueueNotVerifiedEmpty
(carrying the report), so it ends Failed with what is left and why.
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime, timedelta
from typing import Annotated

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from pydantic import Field

from flows.cancellation import stop_when_cancelled
from flows.models import VERIFIED_OUTCOMES, Outcome, QueueNotVerifiedEmpty, QueueResetReport, Reason
from flows.report import publish_report
from flows.steps import record_step
from greenapi import GreenAPIClient, GreenAPIError, GreenAPISettings, InstanceCredentials, get_settings
from tasks import (
    clear_notifications,
    clear_outgoing_messages,
    count_notifications,
    count_outgoing_messages,
    inspect_instance,
    peek_notification,
    resolve_credentials,
    verify_empty,
    wait_seconds,
)
from tasks.accounts import next_clear_allowed_at, record_next_clear_allowed
from tasks.connections import open_client
from tasks.locks import instance_lock
from tasks.results import InstanceInfo
from tasks.results import utc_now
from tasks.wait import WaitKind


def _run_name() -> str:
    parameters = flow_run.parameters
    reason = getattr(parameters.get("reason"), "value", parameters.get("reason"))
    return f"{reason}-{parameters.get('instance') or 'from-settings'}"


class _Stop(Exception):
    """Ends the runbook early with an outcome; never leaves this module."""

    def __init__(self, outcome: Outcome, message: str) -> None:
        super().__init__(message)
        self.outcome, self.message = outcome, message


@flow(name="handle-account-change", flow_run_name=_run_name, retries=0)
async def handle_account_change(
    reason: Reason,
    instance: Annotated[str | None, Field(max_length=255)] = None,
    clear_outgoing: bool = False,
    max_clear_attempts: Annotated[int | None, Field(ge=1, le=50)] = None,
    max_total_wait_seconds: Annotated[int | None, Field(ge=0, le=3600)] = None,
    observed: InstanceInfo | None = None,
) -> QueueResetReport:
    """Clear and verify a GREEN-API instance's incoming notification queue.

    Args:
        reason: number_blocked (the number was blocked) or account_changed (another WhatsApp account is on the instance).
        instance: a greenapi-instance block name, or an idInstance (the block registered for it). Empty: the GREEN_API_* settings.
        clear_outgoing: also clear messages not yet sent (GREEN-API advises it after a block, before reconnecting).
        max_clear_attempts: ClearWebhooksQueue calls allowed in this run (1-50). Empty: GREEN_API_MAX_CLEAR_ATTEMPTS.
        max_total_wait_seconds: all waits of this run together (0-3600 s). Empty: GREEN_API_MAX_TOTAL_WAIT_SECONDS.
        observed: filled in by the sweep, which has just inspected the instance; leave it empty. The run
            then skips its own inspection and the "before" counts, and goes straight to the clear.
    """
    overrides = {"max_clear_attempts": max_clear_attempts, "max_total_wait_seconds": max_total_wait_seconds}
    settings = get_settings(**{key: value for key, value in overrides.items() if value is not None})
    credentials = await resolve_credentials(instance, settings)
    return await stop_when_cancelled(
        reset_instance_queue(reason, credentials, settings, clear_outgoing=clear_outgoing, observed=observed),
        poll_seconds=settings.cancel_check_seconds,
    )


async def reset_instance_queue(
    reason: Reason,
    credentials: InstanceCredentials,
    settings: GreenAPISettings,
    *,
    clear_outgoing: bool = False,
    observed: InstanceInfo | None = None,
    already_locked: bool = False,
) -> QueueResetReport:
    """The runbook itself, in whatever flow run calls it: this module's flow, or the sweep handling an
    instance inline, whose run then shows the instance's steps as its own task runs. Raises
    QueueNotVerifiedEmpty (with the report) unless the queue was verified empty. ``already_locked``:
    the caller holds the instance's slot (the sweep locks a batch's instances together)."""
    report = QueueResetReport(id_instance=credentials.id_instance, reason=reason, started_at=utc_now())
    # Runs for the same instance take turns: the second sees the first one's result, not a half-cleared queue.
    lock = contextlib.nullcontext() if already_locked else instance_lock(
        credentials.id_instance, timeout_seconds=settings.instance_lock_timeout_seconds,
        lease_seconds=settings.instance_lock_lease_seconds)
    async with lock:
        report.started_at = utc_now()
        async with open_client(credentials, settings) as client:
            try:
                await _reset_queue(client, settings, report, clear_outgoing, observed)
            except _Stop as stop:
                report.outcome, report.message = stop.outcome, stop.message
            except GreenAPIError as exc:
                failed_step = report.steps[-1].step if report.steps else "start"
                report.outcome, report.message = Outcome.api_error, f"{failed_step} step failed: {exc}"
    report.verified_empty = report.outcome in VERIFIED_OUTCOMES
    report.finished_at = utc_now()
    await publish_report(report)
    if report.verified_empty:
        get_run_logger().info("Instance %s: %s", report.id_instance, report.message)
        return report
    raise QueueNotVerifiedEmpty(report)


async def _reset_queue(
    client: GreenAPIClient,
    settings: GreenAPISettings,
    report: QueueResetReport,
    clear_outgoing: bool,
    observed: InstanceInfo | None,
) -> None:
    if observed is None:
        info = await record_step(report, "inspect", inspect_instance(client), lambda i: f"{i.state_instance}, wid {i.wid or '—'}")
    else:  # the sweep inspected it moments ago: its answer stands, and the run goes straight to the clear
        info = observed
    report.state_instance, report.wid, report.webhook_url_set = info.state_instance, info.wid, info.webhook_url_set
    can_peek = not info.webhook_url_set

    if observed is None:
        before = await record_step(report, "count", count_notifications(client), lambda c: f"{c.count} queued")
        report.count_before = before.count
    if observed is None or clear_outgoing:
        outgoing = await record_step(report, "count outgoing", count_outgoing_messages(client), lambda c: f"{c.count} queued")
        report.outgoing_count = outgoing.count
        if clear_outgoing and outgoing.count:
            cleared = await record_step(report, "clear outgoing", clear_outgoing_messages(client), lambda a: a.kind)
            report.outgoing_cleared = cleared.kind == "cleared"

    # A window an earlier run learned of (its clear, or a leftTime), on any worker, is known: no clear inside it.
    window_left = _seconds_until(await next_clear_allowed_at(client.id_instance))

    # A count of 0 is evidence, not proof: a peek that also finds nothing, or a clear moments ago, skips the clear.
    if report.count_before == 0 and can_peek:
        if await record_step(report, "peek", peek_notification(client), lambda e: "nothing queued" if e else "found one"):
            report.count_after, report.verified_by = 0, "count+peek"
            raise _Stop(Outcome.already_empty, "the queue was already empty (count 0, peek found nothing); no clear needed")
    elif report.count_before == 0 and window_left > 0:
        report.count_after, report.verified_by = 0, "count"
        raise _Stop(Outcome.already_empty, f"count 0, and an earlier run cleared the queue: its clear window "
                    f"is open {window_left:.0f} s more; no clear needed")

    async def wait(kind: WaitKind, seconds: float, give_up: Outcome, what: str) -> None:
        if seconds <= 0:
            return
        if report.waited_seconds + seconds > settings.max_total_wait_seconds:
            raise _Stop(give_up, f"{what}; waiting {seconds:.0f} s more would pass max_total_wait_seconds={settings.max_total_wait_seconds:.0f}")
        await record_step(report, f"wait ({kind})", wait_seconds(client.id_instance, seconds, kind), lambda w: f"{w.seconds:.1f} s")
        report.waited_seconds = round(report.waited_seconds + seconds, 3)

    await wait("clear-window", window_left, Outcome.gave_up_waiting, "an earlier run's clear window is still open")
    refusals = 0
    while True:
        if report.clear_attempts >= settings.max_clear_attempts:
            left = f"{report.count_after} notification(s) still counted" if report.count_after else "the queue is not cleared"
            raise _Stop(
                Outcome.not_empty if report.count_after else Outcome.gave_up_waiting,
                f"{left} after {report.clear_attempts} clear call(s) (max_clear_attempts); notifications may keep arriving",
            )
        attempt = await record_step(report, "clear", clear_notifications(client), _describe_clear)
        report.clear_attempts += 1
        if attempt.kind == "too_early":
            await record_next_clear_allowed(client.id_instance, attempt.attempted_at + timedelta(seconds=attempt.left_time))
            if report.clear_attempts >= settings.max_clear_attempts:
                continue  # no point waiting for a clear the bound forbids
            await wait("left-time", attempt.left_time + settings.left_time_margin_seconds, Outcome.gave_up_waiting,
                       f"GREEN-API asks to wait {attempt.left_time} s before clearing")
            continue
        if attempt.kind == "refused":
            refusals += 1
            refusal = f"GREEN-API refused to clear the queue: {attempt.reason or 'no reason given'}"
            if refusals > settings.max_refused_clears or report.clear_attempts >= settings.max_clear_attempts:
                raise _Stop(Outcome.clear_refused, f"{refusal} ({refusals} time(s))")
            # "The system could not process the request" may pass: try again shortly, a bounded number of times.
            await wait("refused", settings.refused_retry_seconds, Outcome.clear_refused, refusal)
            continue

        cleared_at = time.monotonic()
        await record_next_clear_allowed(client.id_instance, attempt.attempted_at + timedelta(seconds=settings.clear_interval_seconds))
        await wait("count-refresh", settings.count_refresh_seconds, Outcome.not_empty,
                   "the count cannot be trusted yet after the clear")
        check = await record_step(report, "verify", verify_empty(client, can_peek), _describe_verification)
        report.count_after, report.verified_by = check.count_after, check.method
        if check.empty:
            raise _Stop(Outcome.cleared, f"queue cleared and verified empty by {check.method} "
                        f"(count before: {report.count_before}, clear calls: {report.clear_attempts})")
        get_run_logger().warning(
            "Instance %s: still %d notification(s) after the clear; clearing again when the window allows",
            client.id_instance, check.count_after,
        )
        if report.clear_attempts >= settings.max_clear_attempts:
            continue  # the bound check at the top reports it
        window_left = settings.clear_interval_seconds - (time.monotonic() - cleared_at)
        await wait("clear-window", window_left, Outcome.not_empty,
                   f"{check.count_after} notification(s) still queued after the clear")


def _seconds_until(moment: datetime | None) -> float:
    return 0.0 if moment is None else max(0.0, (moment - utc_now()).total_seconds())


def _describe_clear(attempt) -> str:
    if attempt.kind == "too_early":
        return f"too early: leftTime {attempt.left_time} s"
    if attempt.kind == "refused":
        return f"refused: {attempt.reason}"
    return "cleared"


def _describe_verification(check) -> str:
    peek = {True: "peek empty", False: "peek found one", None: "no peek"}[check.peeked_empty]
    return f"count {check.count_after}, {peek}: {'empty' if check.empty else 'NOT empty'}"
