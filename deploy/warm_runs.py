"""Runs a deployment's scheduled runs inside the serving process, as soon as they are due.

Why: Prefect's runner starts every run in a freshly spawned Python process. On a 2-core machine
that costs about 2 CPU-seconds per run (interpreter, Prefect, the project), so runs started one a
second by webhooks queue behind each other's start-up (bench/NOTES.md). The flow here is already
imported, and a run starts in this event loop within ``poll_seconds`` of being scheduled.

Runs are claimed the way Prefect's workers and runners claim them: by proposing Pending, which the
server grants to one claimant only, so a run another worker or runner took first is left alone.
At most ``limit`` runs are in flight here; further runs stay Scheduled until a slot frees (in
``serve`` this is the deployment's only executor). A run cancelled from the UI is stopped within one
poll and marked Cancelled.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any
from uuid import UUID

from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.exceptions import Abort, ObjectNotFound
from prefect.flow_engine import run_flow
from prefect.flows import Flow
from prefect.logging import get_logger
from prefect.states import Cancelled, Pending
from prefect.utilities.engine import propose_state

from tasks.quick_api import QuickPrefectAPI, QuickRetriesExhausted

logger = get_logger("greenapi.warm_runs")


class WarmRunner:
    """Claims and runs the scheduled runs of one deployment in this process's event loop."""

    def __init__(self, flow: Flow, deployment_name: str, *, poll_seconds: float = 0.25, limit: int = 50) -> None:
        self.flow, self.deployment_name = flow, deployment_name
        self.poll_seconds, self.limit = poll_seconds, limit
        self.running: dict[UUID, asyncio.Task] = {}
        self.started_runs = 0

    async def run(self) -> None:
        """Poll until cancelled; in-flight runs are cancelled with it."""
        self._quick = QuickPrefectAPI()
        async with get_client() as client:
            deployment_id = await self._wait_for_deployment(client)
            logger.info("warm runs: running %s in this process (poll %.2f s, %d at most)",
                        self.deployment_name, self.poll_seconds, self.limit)
            try:
                while True:
                    try:
                        await self._start_due(client, deployment_id)
                        await self._cancel_requested(client)
                    except Exception as exc:  # a busy or restarting server: the next poll tries again
                        logger.warning("warm runs: poll failed: %s", type(exc).__name__)
                    await asyncio.sleep(self.poll_seconds)
            finally:
                for task in self.running.values():
                    task.cancel()
                await asyncio.gather(*self.running.values(), return_exceptions=True)
                await self._quick.aclose()

    async def _wait_for_deployment(self, client: PrefectClient) -> UUID:
        while True:
            try:
                return (await client.read_deployment_by_name(self.deployment_name)).id
            except ObjectNotFound:
                await asyncio.sleep(self.poll_seconds)

    async def _start_due(self, client: PrefectClient, deployment_id: UUID) -> None:
        free = self.limit - len(self.running)
        if free <= 0:
            return
        due = await client.get_scheduled_flow_runs_for_deployments(
            [deployment_id], scheduled_before=datetime.datetime.now(datetime.timezone.utc), limit=free
        )
        for flow_run in due:
            if flow_run.id in self.running or not await self._claim(client, flow_run.id):
                continue
            self.started_runs += 1
            task = asyncio.create_task(self._execute(flow_run), name=f"flow-run-{flow_run.name}")
            self.running[flow_run.id] = task
            task.add_done_callback(lambda _, run_id=flow_run.id: self.running.pop(run_id, None))

    async def _claim(self, client: PrefectClient, flow_run_id: UUID) -> bool:
        try:
            return await self._quick.propose_pending(flow_run_id)
        except QuickRetriesExhausted:
            pass
        try:
            state = await propose_state(client, Pending(), flow_run_id=flow_run_id)
        except Abort:  # another runner or worker claimed it first
            return False
        return state.is_pending()

    async def _execute(self, flow_run: Any) -> None:
        try:
            await run_flow(self.flow, flow_run=flow_run, return_type="state")
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the engine has recorded the run's final state; keep serving
            logger.info("warm runs: run %s ended with %s", flow_run.name, type(exc).__name__)

    async def _cancel_requested(self, client: PrefectClient) -> None:
        if not self.running:
            return
        runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(self.running))))
        for flow_run in runs:
            if flow_run.state and flow_run.state.is_cancelling():
                task = self.running.get(flow_run.id)
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                # After the engine has recorded the interrupted run (as Crashed): Cancelled is what happened.
                await propose_state(client, Cancelled(message="Cancelled while running in the serving process"),
                                    flow_run_id=flow_run.id, force=True)
                logger.info("warm runs: cancelled run %s", flow_run.name)
