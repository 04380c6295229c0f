"""The fleet sweep: find instances whose number was blocked or whose account changed, and reset each queue.

1. List the registered instances (greenapi-instance blocks), or (``fleet="partner"``) the partner account's.
2. Check them in batches of ``max_concurrency`` (one task run per batch, a few batches at a time):
   2 API calls each, each instance within its own time limit, at most ``max_concurrency`` instances
   checked and requests in flight at once, fleet-wide; the accounts recorded last time are read meanwhile.
3. Act on changes. Blocked: number_blocked, once per block (again only while no reset since the block
   was first seen verified the queue empty). Authorized with another wid than the last one: account_changed.
   What each check saw (state, since when, last wid) is recorded where it changed.
4. Hand each affected instance over as soon as it is found: to a handle-account-change run on any
   worker (``handle="deployment"``), or here, its steps as this run's tasks (``handle="inline"``), which reuses the
   inspection and shares this sweep's connections; a batch's affected instances are then locked in one write.
5. Report what was found and done: a progress artifact while it runs, a markdown table at the end.
   The sweep ends Failed when an instance could not be checked or handled, after handling all the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Awaitable, Callable, Literal, TypeVar

import httpx
from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact, acreate_progress_artifact, aupdate_progress_artifact
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from domain import Handling, Reason, RunOutcome
from domain.changes import SeenAccount, block_already_handled, last_reset_decides, next_seen, parse_time, reason_for
from flows.limits import INSTANCE_LOCK_LEASE_SECONDS, INSTANCE_LOCK_TIMEOUT_SECONDS
from flows.models import QueueNotVerifiedEmpty
from flows.naming import run_name, run_url
from flows.runbook import reset_instance_queue
from greenapi import get_settings
from tasks.connections import fleet_http, open_client
from tasks.inspect import check_instances
from instances.locks import instance_lock, instances_locked_together
from instances.lookup import RegisteredInstance, partner_fleet, registered_instances, resolve_partner
from instances.memory import last_resets, last_seen_many, record_seen
from tasks.results import InstanceInfo, utc_now

HANDLE_DEPLOYMENT = "handle-account-change/handle-account-change"
PROGRESS_EVERY_SECONDS = 1.0
BATCHES_IN_FLIGHT = 4
# The sweep's Variable reads in flight, across its batches: fewer than the Prefect client's 16 connections, so
# requests never queue inside its connection pool, where each one rescans the whole queue (bench/NOTES.md).
READS_IN_FLIGHT = 8
ERROR_CELL_CHARS = 80
# Pauses between tries of the sweep's own Prefect writes while the server answers 5xx (about a minute in all).
PREFECT_RETRY_PAUSES = (1, 2, 4, 8, 15, 30)
T = TypeVar("T")


class InstanceFinding(BaseModel):
    id_instance: int
    block_name: str
    state_instance: str | None = None
    wid: str | None = None
    seen_before: SeenAccount | None = None
    reason: Reason | None = None
    note: str = ""
    error: str | None = None
    handled_by: str | None = None
    run_url: str | None = None
    outcome: RunOutcome | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None or (self.outcome is not None and self.outcome.failed)


class SweepReport(BaseModel):
    checked: int
    not_checked: int
    affected: int
    already_handled: int
    failed_handling: int
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
            await self.send(round(100.0 * self.done / self.total, 1))

    async def send(self, percent: float) -> None:
        """A progress the server could not take is left out (the next one, or the report, says more)."""
        try:
            await aupdate_progress_artifact(self.artifact_id, percent)
        except httpx.HTTPError as exc:
            get_run_logger().warning("Progress not updated: %s", _http_error(exc))


@flow(name="sweep-instances", flow_run_name=lambda: f"sweep-{utc_now():%Y%m%d-%H%M%S}")
async def sweep_instances(
    max_concurrency: Annotated[int, Field(ge=1, le=200)] = 20,
    check_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 30,
    start_runs: bool = True,
    handle: Literal["deployment", "inline"] = "deployment",
    deployment_name: Annotated[str, Field(min_length=3)] = HANDLE_DEPLOYMENT,
    fleet: Literal["blocks", "partner"] = "blocks",
    partner_block: str | None = None,
    clear_outgoing_after_block: bool = True,
) -> SweepReport:
    """Check every registered GREEN-API instance and reset the queue of each newly blocked or changed one.

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
        partner_block: with fleet="partner", a greenapi-partner block (default: GREEN_API_PARTNER_TOKEN on GREEN_API_API_URL).
        clear_outgoing_after_block: after a block, also clear the messages not yet sent, as GREEN-API
            advises before another number is connected.
    """
    logger = get_run_logger()
    settings = get_settings()
    instances, handle = await _fleet_and_handling(fleet, partner_block, settings, handle, start_runs, deployment_name)
    logger.info("Sweeping %d %s instance(s), %d request(s) in flight at most", len(instances),
                "partner" if fleet == "partner" else "registered", max_concurrency)
    sweep = _Sweep(settings, max_concurrency, check_timeout_seconds,
                   _HandOver(start_runs, handle, deployment_name, clear_outgoing_after_block))
    sweep.progress = _Progress(await _prefect_write("creating the progress artifact", lambda: acreate_progress_artifact(
        0.0, key="sweep-progress", description="Instances checked, in percent")), len(instances))
    report = await sweep.run(instances)
    await _prefect_write("creating the sweep report", lambda: acreate_markdown_artifact(
        key="sweep-report", markdown=_render(report), description="What the sweep found and did"))
    # The run's final state is written by Prefect's engine right after this returns: first wait (bounded) until the
    # server answers again, should its database be restarting.
    await _prefect_write("reading this run", _read_own_run)
    logger.info("Sweep done: %d checked, %d could not be checked; %d affected, %d blocked and already handled",
                report.checked, report.not_checked, report.affected, report.already_handled)
    _raise_if_incomplete(report)
    return report


async def _fleet_and_handling(fleet: str, partner_block: str | None, settings, handle: str, start_runs: bool,
                              deployment_name: str) -> tuple[list[RegisteredInstance], str]:
    """The instances to sweep, and how affected ones are handled: inline when nothing is deployed (a plain flow
    on Prefect's temporary server) and for a partner fleet (no block holds their tokens)."""
    logger = get_run_logger()
    starts_deployments = handle == "deployment" and start_runs
    if starts_deployments and fleet == "blocks" and not await _deployment_exists(deployment_name):
        logger.warning("Deployment %s not found: affected instances are handled inside this run", deployment_name)
        handle = "inline"
    if fleet != "partner":
        return await registered_instances(), handle
    instances = await partner_fleet(await resolve_partner(partner_block, settings))
    if starts_deployments:
        logger.info("Partner fleet: affected instances are handled inside this run (no block holds their tokens)")
    return instances, "inline"


def _raise_if_incomplete(report: SweepReport) -> None:
    """SweepIncomplete naming the instances not checked and those not handled, when there are any."""
    problems = [f"{report.not_checked} of {len(report.findings)} instance(s) could not be checked"
                f" ({_ids(f for f in report.findings if f.error)})"] if report.not_checked else []
    problems += [f"{report.failed_handling} could not be handled ({_ids(f for f in report.findings if f.error is None and f.failed)})"
                 ] if report.failed_handling else []
    if problems:
        raise SweepIncomplete("; ".join(problems) + "; see the sweep-report artifact")


async def _prefect_write(what: str, call: Callable[[], Awaitable[T]]) -> T:
    """``call()``, tried again after a pause while the Prefect server answers 5xx: it answers 500 (which Prefect's
    client does not retry, unlike 503) while its PostgreSQL restarts. Bounded: the last error is raised."""
    for pause in (*PREFECT_RETRY_PAUSES, None):
        try:
            return await call()
        except httpx.HTTPStatusError as exc:
            if pause is None or exc.response.status_code < 500:
                raise
            get_run_logger().warning("Prefect answered %s while %s: trying again in %s s", _http_error(exc), what, pause)
        await asyncio.sleep(pause)
    raise AssertionError("unreachable")


def _http_error(exc: httpx.HTTPError) -> str:
    return f"HTTP {exc.response.status_code}" if isinstance(exc, httpx.HTTPStatusError) else type(exc).__name__


async def _read_own_run() -> None:
    async with get_client() as client:
        await client.read_flow_run(flow_run.id)


def _ids(findings, shown: int = 10) -> str:
    ids = [str(f.id_instance) for f in findings]
    return ", ".join(ids[:shown]) + (f" and {len(ids) - shown} more" if len(ids) > shown else "")


@dataclass(frozen=True)
class _HandOver:
    start_runs: bool
    handle: Literal["deployment", "inline"]
    deployment_name: str
    clear_outgoing_after_block: bool

    @property
    def clear_outgoing(self) -> bool | None:
        """What the runs are told: None lets the runbook decide by the reason (domain.changes.clear_outgoing_for)."""
        return None if self.clear_outgoing_after_block else False


class _Sweep:
    """One sweep's batches: check, decide, hand over, record what was seen."""

    def __init__(self, settings, max_concurrency: int, check_timeout_seconds: float, hand_over: _HandOver) -> None:
        self.config, self.max_concurrency, self.hand_over = settings.client_config(), max_concurrency, hand_over
        # A check's time limit is the time each of its requests may take on the wire, not time spent queueing here.
        self.check_config = self.config.with_timeout(check_timeout_seconds)
        self.check_slots = asyncio.Semaphore(max_concurrency)
        # Batches are checked a few at a time, so one batch's Prefect bookkeeping (its task run) overlaps
        # the next batch's checks; the check slots keep GREEN-API requests within max_concurrency.
        self.batch_window = asyncio.Semaphore(BATCHES_IN_FLIGHT)
        self.read_slots = asyncio.Semaphore(READS_IN_FLIGHT)
        self.hand_overs: list[asyncio.Task] = []
        self.progress: _Progress | None = None
        self.http: httpx.AsyncClient | None = None  # the fleet's one connection pool, while the sweep runs

    async def run(self, instances: list[RegisteredInstance]) -> SweepReport:
        findings: list[InstanceFinding] = []
        async with fleet_http(self.max_concurrency) as self.http:
            size = self.max_concurrency
            for batch_findings in await asyncio.gather(
                    *(self.check_batch(instances[start:start + size]) for start in range(0, len(instances), size))):
                findings.extend(batch_findings)
            await asyncio.gather(*self.hand_overs)
        if not instances and self.progress:
            await self.progress.send(100.0)
        return SweepReport(
            checked=sum(1 for f in findings if f.error is None),
            not_checked=sum(1 for f in findings if f.error is not None),
            affected=sum(1 for f in findings if f.reason),
            already_handled=sum(1 for f in findings if f.note and not f.reason),
            failed_handling=sum(1 for f in findings if f.error is None and f.failed),
            findings=findings,
        )

    async def check_batch(self, batch: list[RegisteredInstance]) -> list[InstanceFinding]:
        async with self.batch_window:
            clients = [open_client(r.credentials, self.check_config, self.http) for r in batch]
            try:
                # What the last checks saw is read while the batch is checked, not all before the sweep starts.
                state, seen = await asyncio.gather(
                    check_instances(clients, batch[0].id_instance, batch[-1].id_instance, slots=self.check_slots,
                                    return_state=True),
                    last_seen_many((r.id_instance for r in batch), self.read_slots),
                )
            finally:
                await asyncio.gather(*(client.aclose() for client in clients))
            results = await state.aresult(raise_on_failure=False)  # Failed when some could not be checked
        findings = [InstanceFinding(id_instance=r.id_instance, block_name=r.block_name, seen_before=seen.get(r.id_instance))
                    for r in batch]
        await self.decide(findings, results)
        # Recorded before the batch's hand-overs start, while the server is not yet busy with their runbooks: a
        # write racing them was answered 503 on SQLite and retried after Prefect's client backed off 2, 4, 8, 16 s,
        # which kept a sweep waiting long after its last runbook (bench/NOTES.md, session 12).
        now = utc_now()
        changes = [(f.id_instance, next_seen(f.seen_before, f.state_instance, f.wid, now)) for f in findings if f.error is None]
        await asyncio.gather(*(_prefect_write(f"recording what instance {i} showed", functools.partial(record_seen, i, changed))
                               for i, changed in changes if changed is not None))
        self.start_hand_overs(findings, batch, results)
        if self.progress:
            await self.progress.advance(len(batch))
        return findings

    async def decide(self, findings: list[InstanceFinding], results: list[InstanceInfo | str]) -> None:
        still_blocked = [f.id_instance for f, r in zip(findings, results)
                         if isinstance(r, InstanceInfo) and last_reset_decides(r.state_instance, f.seen_before)]
        resets = await last_resets(still_blocked, self.read_slots) if still_blocked else {}
        for finding, result in zip(findings, results):
            if isinstance(result, str):
                finding.error = result
                continue
            finding.state_instance, finding.wid = result.state_instance, result.wid
            recorded_wid = finding.seen_before.wid if finding.seen_before else None
            reason = reason_for(result.state_instance, result.wid, recorded_wid)
            reset = resets.get(finding.id_instance)
            if block_already_handled(result.state_instance, finding.seen_before, reset):
                finding.note = f"handled: reset verified empty {_when(reset.finished_at, short=True)}"
                continue
            finding.reason = reason

    def start_hand_overs(self, findings: list[InstanceFinding], batch: list[RegisteredInstance],
                         results: list[InstanceInfo | str]) -> None:
        affected = [(f, r, info) for f, r, info in zip(findings, batch, results) if f.reason]
        if not affected or not self.hand_over.start_runs:
            return
        if self.hand_over.handle == "inline":
            self.hand_overs.append(asyncio.create_task(self.handle_inline(affected)))
            return
        for finding, registered, info in affected:  # handed over at once, while the sweep goes on checking the rest
            self.hand_overs.append(asyncio.create_task(self.start_run(finding, registered, info)))

    async def handle_inline(self, batch: list[tuple[InstanceFinding, RegisteredInstance, InstanceInfo]]) -> None:
        """The runbook for a batch's affected instances, here: their steps become this sweep run's task runs
        (named <step>-<idInstance>), not subflows, since a subflow per instance costs the Prefect server a
        dozen more writes (bench/NOTES.md). The batch's instances are locked together when all are free (one
        write to take their slots, one to release them); otherwise each takes its own lock."""
        try:
            async with instances_locked_together([registered.id_instance for _, registered, _ in batch],
                                                 lease_seconds=INSTANCE_LOCK_LEASE_SECONDS) as locked:
                await asyncio.gather(*(self.handle_one_inline(finding, registered, info, locked_with_batch=locked)
                                       for finding, registered, info in batch))
        except Exception as exc:  # taking or giving back the lock: the batch's others are reported, the sweep goes on
            for finding, _, _ in batch:
                finding.handled_by = "inline"
                finding.outcome = finding.outcome or RunOutcome(handling=Handling.failed, error=type(exc).__name__)
            get_run_logger().error("Instances %s: the lock failed: %s", _ids(f for f, _, _ in batch), type(exc).__name__)

    async def handle_one_inline(self, finding: InstanceFinding, registered: RegisteredInstance, info: InstanceInfo,
                                *, locked_with_batch: bool) -> None:
        finding.handled_by = "inline"
        hold = contextlib.nullcontext() if locked_with_batch else instance_lock(
            registered.id_instance, timeout_seconds=INSTANCE_LOCK_TIMEOUT_SECONDS, lease_seconds=INSTANCE_LOCK_LEASE_SECONDS)
        try:
            async with hold:
                await reset_instance_queue(finding.reason, registered.credentials, self.config, observed=info,
                                           clear_outgoing=self.hand_over.clear_outgoing,
                                           http_client=self.http)
            finding.outcome = RunOutcome(handling=Handling.completed)
        except QueueNotVerifiedEmpty as exc:
            finding.outcome = RunOutcome(handling=Handling.failed, reset=exc.report.outcome, error="not verified")
        except Exception as exc:  # one instance's failure must not stop the others; the sweep reports it
            finding.outcome = RunOutcome(handling=Handling.failed, error=type(exc).__name__)
            get_run_logger().error("Instance %s: handling failed: %s", registered.id_instance, type(exc).__name__)

    async def start_run(self, finding: InstanceFinding, registered: RegisteredInstance, info: InstanceInfo) -> None:
        """A handle-account-change run on the work pool, named as every run for the instance is, for any worker.

        The idempotency key makes a retried sweep start each run once. The inspection goes along (the
        ``observed`` parameter): the run does not ask GREEN-API again what the sweep has just been told.
        """
        name = run_name(finding.reason, registered.id_instance)
        try:
            run = await run_deployment(
                name=self.hand_over.deployment_name, timeout=0, tags=["greenapi", "sweep"], flow_run_name=name,
                parameters={"reason": finding.reason.value, "instance": registered.block_name,
                            "clear_outgoing": self.hand_over.clear_outgoing, "observed": info.model_dump(mode="json")},
                idempotency_key=f"sweep-{flow_run.id}-{registered.id_instance}",
            )
        except Exception as exc:  # the others are still handed over; this one shows as failed in the report
            finding.handled_by = "run"
            finding.outcome = RunOutcome(handling=Handling.failed, error=f"{type(exc).__name__} starting {name}")
            get_run_logger().error("Instance %s: could not start run %s: %s", registered.id_instance, name, type(exc).__name__)
            return
        finding.handled_by, finding.run_url = f"run {run.name}", run_url(run.id)
        finding.outcome = RunOutcome(handling=Handling.started)
        get_run_logger().info("Instance %s: %s, started run %s", registered.id_instance, finding.reason.value, run.name)


async def _deployment_exists(name: str) -> bool:
    async with get_client() as client:
        try:
            await client.read_deployment_by_name(name)
        except ObjectNotFound:
            return False
    return True


def _when(value, *, short: bool = False) -> str:
    moment = parse_time(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        return "—"
    return f"{moment:%m-%d %H:%M}" if short else f"{moment:%Y-%m-%d %H:%M} UTC"


# The Prefect UI draws a markdown table without wrapping its cells (white-space: nowrap) and hides its
# scrollbar, so a long cell pushes the columns after it out of sight with nothing that says so. Each cell
# is therefore kept short: long values are wrapped onto lines of their own (<br>, which the UI renders) or
# cut with an ellipsis. Widths are in characters of visible text per line.
# Five columns of at most 95 characters in all: the artifact page gives the table about 810 px of a 1400 px window
# (a side panel takes the rest), and the UI's 14 px font is about 7 px a character, plus each cell's padding.
CELL_WIDTHS = {"instance": 16, "finding": 16, "action": 18, "error": 26, "state, wid (before)": 17}
CELL_LINES = {"instance": 3, "finding": 3, "action": 2, "error": 4, "state, wid (before)": 6}
COLUMNS = tuple(CELL_WIDTHS)


def _short(text: str, limit: int = ERROR_CELL_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _lines(text: str, width: int, max_lines: int) -> list[str]:
    """``text`` on lines of at most ``width`` characters (words kept whole where they fit), at most
    ``max_lines`` of them, the last one ending in an ellipsis when something was left out."""
    lines: list[str] = []
    for paragraph in text.split("\n"):  # a line break of its own: a new line
        start = len(lines)
        for word in paragraph.split():
            while len(word) > width:  # a word longer than a line (a URL, a block name) is split
                lines.append(word[:width])
                word = word[width:]
            if len(lines) > start and len(lines[-1]) + 1 + len(word) <= width:
                lines[-1] += " " + word
            elif word:
                lines.append(word)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = (lines[-1][:width - 1] if len(lines[-1]) >= width else lines[-1]) + "…"
    return lines


def _escape(text: str) -> str:
    """Text as a table cell shows it: no column separator, no markup of its own."""
    # "@" escaped: the UI would make a wid (79990001111@c.us) a mailto: link.
    return (text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
            .replace("@", "\\@"))


def _cell(column: str, text: str, *, link: str | None = None, linked: str | None = None) -> str:
    """One cell: ``text`` within its column's width (wrapped, or cut with an ellipsis); ``linked`` (a prefix
    of the text) becomes a link to ``link``."""
    width, max_lines = CELL_WIDTHS[column], CELL_LINES.get(column, 1)
    if max_lines == 1:
        lines = [_short(text, width)]
    else:
        lines = _lines(text, width, max_lines)
    cells = [_escape(line) for line in lines]
    if link and linked and lines and lines[0].startswith(linked):
        cells[0] = f"[{_escape(linked)}]({link})" + _escape(lines[0][len(linked):])
    return "<br>".join(cells) or "—"


def visible_lines(cell: str) -> list[str]:
    """What the UI shows of a rendered cell, line by line (links as their text, entities decoded)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", cell)
    return [line.replace("\\|", "|").replace("\\@", "@").replace("&lt;", "<").replace("&gt;", ">").replace("\\\\", "\\")
            for line in text.split("<br>")]


def _state_now_and_before(f: InstanceFinding) -> str:
    """The state and account seen now, then what an earlier sweep saw (its state, since when, its account)."""
    now = f"{f.state_instance or '—'}\n{f.wid or 'no wid'}"
    seen = f.seen_before
    if seen is None:
        return now
    return f"{now}\nwas {seen.state or '—'}\nfrom {_when(seen.since, short=True)}\n{seen.wid or 'no wid'}"


def _finding(f: InstanceFinding) -> str:
    return f.reason.value if f.reason else ("not checked" if f.error else f.note or "healthy")


def _action(f: InstanceFinding) -> tuple[str, str | None]:
    """The action's text and the part of it that links to the run."""
    if f.handled_by is None:
        return (f"not handled: {f.outcome}" if f.outcome else "—"), None
    who = "run" if f.handled_by.startswith("run") else f.handled_by
    return (f"{who}: {f.outcome}" if f.outcome else who), (who if f.run_url else None)


HEALTHY_IDS_NAMED = 10  # of the instances with nothing to do in a state other than authorized, the first few by id


def _needs_a_row(f: InstanceFinding) -> bool:
    """Failed, not checked, affected or already handled: the instances the report lists one by one."""
    return f.failed or f.error is not None or f.reason is not None or bool(f.note)


def _healthy_summary(healthy: list[InstanceFinding]) -> str:
    """The instances with nothing to do, in one line: how many in each state, and the first few not authorized."""
    if not healthy:
        return "No instance with nothing to do."
    states = Counter(f.state_instance or "—" for f in healthy)
    counts = ", ".join(f"{count:,} {state}" for state, count in sorted(states.items(), key=lambda item: (-item[1], item[0])))
    line = f"**{len(healthy):,} with nothing to do** (same account as recorded, not blocked): {counts}."
    others = sorted(f.id_instance for f in healthy if f.state_instance != "authorized")
    if others:
        named = ", ".join(str(i) for i in others[:HEALTHY_IDS_NAMED])
        line += f" Not authorized: {named}" + (f" and {len(others) - HEALTHY_IDS_NAMED:,} more." if len(others) > HEALTHY_IDS_NAMED else ".")
    return line


def _render(report: SweepReport) -> str:
    """The sweep-report artifact: the answer, the instances that need a look (failed first), then one line for the
    rest, so it stays readable in the UI at 10,000 instances."""
    failed = sum(1 for f in report.findings if f.failed)
    listed = [f for f in report.findings if _needs_a_row(f)]
    lines = [
        f"# Sweep: {report.checked} checked, {report.not_checked} could not be checked",
        "",
        f"{report.affected} affected, {report.already_handled} blocked and already handled, "
        f"{report.failed_handling} could not be handled."
        + (f" The {failed} that failed come first." if failed else ""),
        "",
        _healthy_summary([f for f in report.findings if not _needs_a_row(f)]),
        "",
    ]
    if not listed:
        return "\n".join(lines)
    lines += [
        "Per instance that was affected, failed or could not be checked (and its block): the finding, the action "
        "(a link to the run), the error; then the state and account seen now, and what an earlier sweep saw.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for f in sorted(listed, key=lambda f: (not f.failed, f.error is None, f.reason is None, f.id_instance)):
        action, linked = _action(f)
        cells = [
            _cell("instance", f"{f.id_instance}\n{f.block_name}"),
            _cell("finding", _finding(f)),
            _cell("action", action, link=f.run_url, linked=linked),
            _cell("error", _short(f.error)) if f.error else "",  # at most ERROR_CELL_CHARS, on lines of its width
            _cell("state, wid (before)", _state_now_and_before(f)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
