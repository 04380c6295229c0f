"""`greenapi-migrate task-worker` as its own process: it runs the reports handed to it, and a worker that
dies mid-run leaves that run Crashed (the project's automation), not Running forever."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings

from flows.reported import handle_reported_change
from tasks import GreenApiInstance
from tasks.accounts import Reason

pytestmark = pytest.mark.e2e

CLI = str(Path(sys.executable).with_name("greenapi-migrate"))
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@pytest.fixture
def task_worker(prefect_server, tmp_path):
    """A task worker process; the test process shares its background-task storage, as a receiver would."""
    storage = tmp_path / "task-storage"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GREEN_API_", "PREFECT_"))}
    env.update(
        PREFECT_API_URL=prefect_server.api_url, PREFECT_HOME=str(tmp_path / "worker-home"),
        PREFECT_RESULTS_LOCAL_STORAGE_PATH=str(storage),
        GREEN_API_COUNT_REFRESH_SECONDS="1", GREEN_API_CLEAR_INTERVAL_SECONDS="3", GREEN_API_READ_TIMEOUT_SECONDS="30",
    )
    log = tmp_path / "task-worker.log"
    with log.open("w") as out:
        process = subprocess.Popen([CLI, "task-worker", "--limit", "5"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        with temporary_settings(updates={PREFECT_RESULTS_LOCAL_STORAGE_PATH: storage}):
            yield process, log
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


async def _register(seeded, emulator) -> None:
    await GreenApiInstance(api_url=emulator.url, id_instance=seeded.id_instance, api_token_instance=seeded.token).asave(
        f"tw-{seeded.id_instance}", overwrite=True)


async def _run_for(id_instance: int, timeout: float = 60):
    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while time.monotonic() < deadline:
            runs = await client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["handle-account-change"])))
            mine = [r for r in runs if r.parameters.get("instance") == str(id_instance)]
            if mine:
                return mine[0]
            await asyncio.sleep(0.25)
    raise AssertionError(f"no run for instance {id_instance} within {timeout} s")


async def _wait_state(flow_run_id, wanted: set[str], timeout: float):
    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while True:
            run = await client.read_flow_run(flow_run_id)
            if run.state and run.state.type.value in wanted:
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run.name} still {run.state and run.state.type.value} after {timeout} s")
            await asyncio.sleep(0.5)


async def test_a_task_worker_runs_a_handed_over_report_to_completion(task_worker, emulator, seed_instance):
    seeded = seed_instance(state="blocked", notifications=4)
    await _register(seeded, emulator)

    await asyncio.to_thread(handle_reported_change.delay, seeded.id_instance, Reason.number_blocked, "e2e-report")

    run = await _wait_state((await _run_for(seeded.id_instance)).id, FINAL, timeout=90)
    assert run.state.type.value == "COMPLETED", run.state.message
    assert run.deployment_id is None and "receiver" in run.tags  # run by the task worker, not a deployment's process
    assert emulator.state.instance(seeded.id_instance)["queue_length"] == 0
    assert seeded.token not in task_worker[1].read_text()


async def test_a_killed_task_worker_leaves_its_run_crashed(task_worker, emulator, seed_instance):
    process, log = task_worker
    emulator.state.set_config({"clear_window_seconds": 120})
    seeded = seed_instance(state="blocked", notifications=4, cleared_seconds_ago=1)  # leftTime 119 s
    await _register(seeded, emulator)

    await asyncio.to_thread(handle_reported_change.delay, seeded.id_instance, Reason.number_blocked, "e2e-report")
    run = await _run_for(seeded.id_instance)
    deadline = time.monotonic() + 60
    while not any(c["body_summary"].get("leftTime") for c in emulator.state.calls(instance=seeded.id_instance, method="clearWebhooksQueue")):
        assert time.monotonic() < deadline, f"the run never reached its leftTime wait:\n{log.read_text()[-2000:]}"
        await asyncio.sleep(0.2)
    process.send_signal(signal.SIGKILL)  # a machine going away: no cleanup, no state change
    process.wait(timeout=10)

    # Heartbeats every 10 s, three missed: Crashed within about 30 s plus the trigger service's pass.
    crashed = await _wait_state(run.id, FINAL, timeout=90)
    assert crashed.state.type.value == "CRASHED", crashed.state.message
    assert emulator.state.instance(seeded.id_instance)["queue_length"] == 4  # nothing reported empty that was not
