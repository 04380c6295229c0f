"""The fleet sweep: find instances whose number was blocked or whose account changed, and reset each queue.

1. List the registered instances (greenapi-instance blocks), or (``fleet="partner"``) the partner account's.
2. Check them in batches of ``max_concurrency`` (one task run per batch, a few batches at a time):
   2 API calls each, each instance within its own time limit, at most ``max_concurrency`` instances
   checked and requests in flight at once, fleet-wide; the accounts recorded last time are read meanwhile.
3. Blocked: number_blocked. Authorized with another wid than recorded: account_changed. Record new wids.
4. Hand each affected instance over as soon as it is found: to a handle-account-change run on any
   worker (``handle="deployment"``), or here, its steps as this run's tasks (``handle="inline"``), which reuses the
   inspection and shares this sweep's connections; a batch's affected instances are then locked in one write.
5. Report what was found and done: a progress artifact while it runs, a markdown table at the end.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact, acreate_progress_artifact, aupdate_progress_artifact
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from flows.models import QueueNotVerifiedEmpty
from greenapi import get_settings
from tasks.accounts import Reason, last_seen_wids, reason_for, record_wid
from tasks.connections import open_client, shared_connections
from tasks.credentials import RegisteredInstance, partner_fleet, registered_instances, resolve_partner
from tasks.inspect import check_instances
from tasks.locks import instances_locked_together
from tasks.results import InstanceInfo, utc_now

HANDLE_DEPLOYMENT = "handle-account-change/handle-account-change"
PROGRESS_EVERY_SECONDS = 1.0
BATCHES_IN_FLIGHT = 4


class InstanceFinding(BaseModel):
    id_instance: int
    block_name: str
    state_instance: str | None = None
    wid: str | None = None
    recorded_wid: str | None = None
    reason: Reason | None = None
    error: str | None = None
    handled_by: str | None = None
    outcome: str | None = None


class SweepReport(BaseModel):
    checked: int
    affected: int
    failed_checks: int
    findings: list[InstanceFinding]


class SweepIncomplete(Exception):
    """Some instances could not be checked or handled; the others were still handled."""


class _Progress:
    """A progress artifact that moves as instances are checked, updated at most once a second."""

    def __init__(self, artifact_id, total: int) -> None:
        self.artifact_id, self.total, self.done, self._sent_at = artifact_id, max(total, 1), 0, 0.0

    async def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.done == self.total or now - self._sent_at >= PROGRESS_EVERY_SECONDS:
            self._sent_at = now
            await aupdate_progress_artifact(self.artifact_id, round(100.0 * self.done / self.total, 1))


@flow(name="sweep-instances", flow_run_name=lambda: f"sweep-{utc_now():%Y%m%d-%H%M%S}")
async def sweep_instances(
    max_concurrency: Annotated[int, Field(ge=1, le=200)] = 20,
    check_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 30,
    start_runs: bool = True,
    handle: Literal["deployment", "inline"] = "deployment",
    deployment_name: Annotated[str, Field(min_length=3)] = HANDLE_DEPLOYMENT,
    fleet: Literal["blocks", "partner"] = "blocks",
    partner_block: str | None = None,
) -> SweepReport:
    """Check every registered GREEN-API instance and reset the queue of each blocked or changed one.

    Args:
        max_concurrency: GREEN-API requests in flight at once, across the fleet (1-200).
        check_timeout_seconds: time limit for each request of one instance's check, counted while the request is
            on the wire (not while it queues behind others); a slow instance fails alone.
        start_runs: hand affected instances over (off: only report them).
        handle: "deployment" starts a handle-account-change run per affected instance on the work pool
            (scales with workers); "inline" runs the same runbook here, right after the check, its
            steps as this run's task runs.
        deployment_name: the deployment started per affected instance, as "flow-name/deployment-name".
        fleet: "blocks": every greenapi-instance block; "partner": the instances the partner account lists
            (Partner API getInstances; deleted and expired ones left out), no block per instance needed.
            Their tokens exist only in this run, so affected ones are handled inline.
        partner_block: with fleet="partner", a greenapi-partner block (default: GREEN_API_PARTNER_* settings).
    """
    logger = get_run_logger()
    settings = get_settings()
    if handle == "deployment" and start_runs and fleet == "blocks" and not await _deployment_exists(deployment_name):
        # Called as a plain flow (Prefect's temporary server, nothing deployed): the runbook runs here instead.
        logger.warning("Deployment %s not found: affected instances are handled inside this run", deployment_name)
        handle = "inline"
    if fleet == "partner":
        instances = await partner_fleet(await resolve_partner(partner_block, settings))
        if handle == "deployment" and start_runs:
            logger.info("Partner fleet: affected instances are handled inside this run (no block holds their tokens)")
        handle = "inline"
    else:
        instances = await registered_instances()
    logger.info("Sweeping %d %s instance(s), %d request(s) in flight at most", len(instances),
                "partner" if fleet == "partner" else "registered", max_concurrency)
    progress = _Progress(
        await acreate_progress_artifact(0.0, key="sweep-progress", description="Instances checked, in percent"),
        len(instances),
    )
    findings: list[InstanceFinding | None] = [None] * len(instances)
    hand_overs: list[asyncio.Task] = []
    # Batches are checked a few at a time, so one batch's Prefect bookkeeping (its task run) overlaps
    # the next batch's checks; the check slots keep GREEN-API requests within max_concurrency.
    batch_window = asyncio.Semaphore(BATCHES_IN_FLIGHT)
    # A check's time limit is the time each of its requests may take on the wire, not time spent queueing here.
    check_settings = settings.model_copy(update={
        "read_timeout_seconds": check_timeout_seconds,
        "connect_timeout_seconds": min(settings.connect_timeout_seconds, check_timeout_seconds),
    })
    check_slots = asyncio.Semaphore(max_concurrency)

    async def check_batch(start: int, batch: list[RegisteredInstance]) -> None:
        async with batch_window:
            clients = [open_client(r.credentials, check_settings) for r in batch]
            try:
                # The accounts recorded last time are read while the batch is checked, not all before the sweep starts.
                results, recorded = await asyncio.gather(
                    check_instances(clients, batch[0].id_instance, batch[-1].id_instance, slots=check_slots),
                    last_seen_wids(r.id_instance for r in batch),
                )
            finally:
                await asyncio.gather(*(client.aclose() for client in clients))
        new_wids: list[tuple[int, str]] = []
        to_handle_inline: list[tuple[InstanceFinding, RegisteredInstance, InstanceInfo]] = []
        for offset, (registered, result) in enumerate(zip(batch, results)):
            finding = InstanceFinding(
                id_instance=registered.id_instance, block_name=registered.block_name,
                recorded_wid=recorded.get(registered.id_instance),
            )
            findings[start + offset] = finding
            if isinstance(result, str):
                finding.error = result
                continue
            finding.state_instance, finding.wid = result.state_instance, result.wid
            finding.reason = reason_for(result.state_instance, result.wid, finding.recorded_wid)
            if result.state_instance == "authorized" and result.wid and result.wid != finding.recorded_wid:
                new_wids.append((registered.id_instance, result.wid))
            if finding.reason and start_runs and handle == "inline":
                to_handle_inline.append((finding, registered, result))
            elif finding.reason and start_runs:
                # Handed over at once, while the sweep goes on checking the rest.
                hand_overs.append(asyncio.create_task(_start_run(finding, registered, result, deployment_name)))
        if to_handle_inline:
            hand_overs.append(asyncio.create_task(_handle_inline(to_handle_inline, settings)))
        # Recorded after the batch's hand-overs have started, all at once: no hand-over waits behind a write.
        await asyncio.gather(*(record_wid(id_instance, wid) for id_instance, wid in new_wids))
        await progress.advance(len(batch))

    async with shared_connections(max_concurrency):
        size = max_concurrency
        await asyncio.gather(*(check_batch(start, instances[start:start + size]) for start in range(0, len(instances), size)))
        await asyncio.gather(*hand_overs)
    findings = [f for f in findings if f is not None]
    if not instances:
        await aupdate_progress_artifact(progress.artifact_id, 100.0)
    report = SweepReport(
        checked=len(findings),
        affected=sum(1 for f in findings if f.reason),
        failed_checks=sum(1 for f in findings if f.error),
        findings=findings,
    )
    await acreate_markdown_artifact(key="sweep-report", markdown=_render(report), description="What the sweep found and did")
    logger.info("Sweep done: %d checked, %d affected, %d could not be checked", report.checked, report.affected, report.failed_checks)
    if report.failed_checks:
        raise SweepIncomplete(f"{report.failed_checks} of {report.checked} instance(s) could not be checked; see the sweep-report artifact")
    return report


async def _handle_inline(batch: list[tuple[InstanceFinding, RegisteredInstance, InstanceInfo]], settings) -> None:
    """The runbook for a batch's affected instances, here: their steps become this sweep run's task runs
    (named <step>-<idInstance>), not subflows, since a subflow per instance costs the Prefect server a
    dozen more writes (bench/NOTES.md). The batch's instances are locked together when all are free (one
    write to take their slots, one to release them); otherwise each takes its own lock."""
    async with instances_locked_together([registered.id_instance for _, registered, _ in batch],
                                         lease_seconds=settings.instance_lock_lease_seconds) as locked:
        await asyncio.gather(*(_handle_one_inline(finding, registered, info, settings, already_locked=locked)
                               for finding, registered, info in batch))


async def _handle_one_inline(
    finding: InstanceFinding, registered: RegisteredInstance, info: InstanceInfo, settings, *, already_locked: bool
) -> None:
    from flows.handle_account_change import reset_instance_queue

    finding.handled_by = "inline"
    try:
        await reset_instance_queue(finding.reason, registered.credentials, settings, observed=info, already_locked=already_locked)
        finding.outcome = "completed"
    except QueueNotVerifiedEmpty as exc:
        finding.outcome = f"failed: {exc.report.outcome.value if exc.report.outcome else 'not verified'}"
    except Exception as exc:  # one instance's failure must not stop the others; the sweep reports it
        finding.outcome = f"failed: {type(exc).__name__}"
        get_run_logger().error("Instance %s: handling failed: %s", registered.id_instance, type(exc).__name__)


async def _deployment_exists(name: str) -> bool:
    async with get_client() as client:
        try:
            await client.read_deployment_by_name(name)
        except ObjectNotFound:
            return False
    return True


async def _start_run(finding: InstanceFinding, registered: RegisteredInstance, info: InstanceInfo, deployment_name: str) -> None:
    """A handle-account-change run on the work pool, for any worker to pick up.

    The idempotency key makes a retried sweep start each run once. The inspection goes along: the run
    does not ask GREEN-API again what the sweep has just been told (2 calls saved, and no second
    GetStateInstance within GREEN-API's 1 s rate limit when the run starts at once).
    """
    parameters = {"reason": finding.reason.value, "instance": registered.block_name, "observed": info.model_dump(mode="json")}
    run = await run_deployment(
        name=deployment_name, parameters=parameters, timeout=0, tags=["greenapi", "sweep"],
        idempotency_key=f"sweep-{flow_run.id}-{registered.id_instance}",
    )
    finding.handled_by, finding.outcome = f"run {run.name}", "started"
    get_run_logger().info("Instance %s: %s, started run %s", registered.id_instance, finding.reason.value, run.name)


def _render(report: SweepReport) -> str:
    lines = [
        f"# Sweep: {report.checked} checked, {report.affected} affected, {report.failed_checks} not checked",
        "",
        "| instance | block | state | wid | recorded wid | finding | action |",
        "|---|---|---|---|---|---|---|",
    ]
    ordered = sorted(report.findings, key=lambda f: (f.reason is None and f.error is None, f.id_instance))
    for f in ordered:
        finding = f.reason.value if f.reason else ("check failed: " + f.error if f.error else "healthy")
        action = f"{f.handled_by}: {f.outcome}" if f.handled_by else "—"
        lines.append(
            f"| {f.id_instance} | {f.block_name} | {f.state_instance or '—'} | {f.wid or '—'} | "
            f"{f.recorded_wid or '—'} | {finding.replace('|', '/')} | {action} |"
        )
    return "\n".join(lines) + "\n"
