"""The fleet sweep: find instances whose number was blocked or whose account changed, and hand each to
``handle-account-change``.

1. List the registered instances (greenapi-instance blocks).
2. Check each one (state, wid), a bounded number at a time, each with its own time limit.
3. Blocked: number_blocked. Authorized with another wid than recorded: account_changed. Record the wids seen.
4. Start one handle-account-change run per affected instance (on any worker of the pool), without waiting.
5. Report what was found and done: a progress artifact while it runs, a markdown table at the end.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact, acreate_progress_artifact, aupdate_progress_artifact
from prefect.deployments import run_deployment
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from greenapi import get_settings
from tasks.accounts import Reason, last_seen_wid, reason_for, record_wid
from tasks.credentials import RegisteredInstance, registered_instances
from tasks.inspect import check_instance
from tasks.results import utc_now

HANDLE_DEPLOYMENT = "handle-account-change/handle-account-change"


class InstanceFinding(BaseModel):
    id_instance: int
    block_name: str
    state_instance: str | None = None
    wid: str | None = None
    recorded_wid: str | None = None
    reason: Reason | None = None
    error: str | None = None
    started_run: str | None = None


class SweepReport(BaseModel):
    checked: int
    affected: int
    failed_checks: int
    findings: list[InstanceFinding]


class SweepIncomplete(Exception):
    """Some instances could not be checked; the affected ones found were still handed over."""


@flow(name="sweep-instances", flow_run_name=lambda: f"sweep-{utc_now():%Y%m%d-%H%M%S}")
async def sweep_instances(
    max_concurrency: Annotated[int, Field(ge=1, le=200)] = 20,
    check_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 30,
    start_runs: bool = True,
    deployment_name: Annotated[str, Field(min_length=3)] = HANDLE_DEPLOYMENT,
) -> SweepReport:
    """Check every registered GREEN-API instance and start handle-account-change where needed.

    Args:
        max_concurrency: instances checked at the same time (1-200).
        check_timeout_seconds: time limit for one instance's check; a slow instance fails alone.
        start_runs: start handle-account-change runs for affected instances (off: only report them).
        deployment_name: the deployment started per affected instance, as "flow-name/deployment-name".
    """
    logger = get_run_logger()
    settings = get_settings()
    instances = await registered_instances()
    logger.info("Sweeping %d registered instance(s), %d at a time", len(instances), max_concurrency)
    progress = await acreate_progress_artifact(0.0, key="sweep-progress", description="Instances checked, in percent")
    slots = asyncio.Semaphore(max_concurrency)
    checker = check_instance.with_options(timeout_seconds=check_timeout_seconds)
    done = 0

    async def sweep_one(registered: RegisteredInstance) -> InstanceFinding:
        nonlocal done
        finding = InstanceFinding(id_instance=registered.id_instance, block_name=registered.block_name)
        async with slots:
            state = await checker(registered.credentials, settings, return_state=True)
        if state.is_completed():
            info = await state.aresult()
            finding.state_instance, finding.wid = info.state_instance, info.wid
            finding.recorded_wid = await last_seen_wid(registered.id_instance)
            finding.reason = reason_for(info.state_instance, info.wid, finding.recorded_wid)
            if info.state_instance == "authorized":
                await record_wid(registered.id_instance, info.wid)
            if finding.reason and start_runs:
                finding.started_run = await _start_handling(deployment_name, registered, finding.reason)
        else:
            finding.error = state.message or state.type.value
        done += 1
        await aupdate_progress_artifact(progress, 100.0 * done / max(len(instances), 1))
        return finding

    findings = list(await asyncio.gather(*(sweep_one(r) for r in instances)))
    if not instances:
        await aupdate_progress_artifact(progress, 100.0)
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


async def _start_handling(deployment_name: str, registered: RegisteredInstance, reason: Reason) -> str:
    """Start the per-instance run and return its name. The idempotency key makes a retried sweep start it once."""
    flow_run_model = await run_deployment(
        name=deployment_name,
        parameters={"reason": reason.value, "instance": registered.block_name},
        timeout=0,
        idempotency_key=f"sweep-{flow_run.id}-{registered.id_instance}",
        tags=["greenapi", "sweep"],
    )
    get_run_logger().info(
        "Instance %s: %s, started run %s", registered.id_instance, reason.value, flow_run_model.name
    )
    return flow_run_model.name


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
        action = f"started {f.started_run}" if f.started_run else "—"
        lines.append(
            f"| {f.id_instance} | {f.block_name} | {f.state_instance or '—'} | {f.wid or '—'} | "
            f"{f.recorded_wid or '—'} | {finding.replace('|', '/')} | {action} |"
        )
    return "\n".join(lines) + "\n"
