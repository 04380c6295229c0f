"""`greenapi-migrate task-worker` as its own process: it runs the reports handed to it, and a worker that
dies mid-run leaves that run Crashed (the project's automation), not Running forever."""

from __future__ import annotations

import asyncio
import signal
import subprocess

import pytest
from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings

from domain import Reason
from flows.reported import handle_reported_change
from tests.e2e.conftest import on_sqlite_only
from tests.helpers import await_left_time, await_until, handle_runs, register_seeded, stored_events, wait_for_final
from bench.servers import CLI, FAST_GREEN_API, client_env, stop_process

pytestmark = [pytest.mark.e2e, on_sqlite_only]


@pytest.fixture
def task_worker(prefect_server, tmp_path):
    """A task worker process; the test process shares its background-task storage, as a receiver would."""
    storage = tmp_path / "task-storage"
    env = client_env(
        prefect_server.api_url, tmp_path / "worker-home",
        PREFECT_RESULTS_LOCAL_STORAGE_PATH=str(storage),
        **FAST_GREEN_API,
    )
    log = tmp_path / "task-worker.log"
    with log.open("w") as out:
        process = subprocess.Popen([CLI, "task-worker", "--limit", "5"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        with temporary_settings(updates={PREFECT_RESULTS_LOCAL_STORAGE_PATH: storage}):
            yield process, log
    finally:
        stop_process(process)


async def _run_for(id_instance: int, timeout: float = 60):
    """The handle-account-change run the task worker started for the instance."""
    runs = await await_until(lambda: handle_runs(str(id_instance), deployment=False), timeout=timeout,
                             message=f"no run for instance {id_instance}")
    return runs[0]


async def test_a_task_worker_runs_a_handed_over_report_to_completion(task_worker, prefect_server, emulator, seed_instance):
    seeded = seed_instance(state="blocked", notifications=4)
    await register_seeded(seeded, emulator, f"tw-{seeded.id_instance}")

    await asyncio.to_thread(handle_reported_change.delay, seeded.id_instance, Reason.number_blocked, "e2e-report")

    (run,) = await wait_for_final([(await _run_for(seeded.id_instance)).id], timeout=90)
    assert run.state.type.value == "COMPLETED", run.state.message
    assert run.deployment_id is None and "receiver" in run.tags  # run by the task worker, not a deployment's process
    assert emulator.state.instance(seeded.id_instance)["queue_length"] == 0
    assert seeded.token not in task_worker[1].read_text()
    # Not in the deployment's Runs tab, so it is named where an operator looks: the instance's event links the run.
    handled = await await_until(lambda: [payload for _, name, _, payload in
                                         stored_events(prefect_server, [f"greenapi.instance.{seeded.id_instance}"])
                                         if name == "greenapi.report.handled"], timeout=30, message="no greenapi.report.handled")
    assert handled[0]["flow_run_id"] == str(run.id) and handled[0]["final_state"] == "COMPLETED"
    assert f"run number_blocked-{seeded.id_instance} ended COMPLETED" in task_worker[1].read_text()


async def test_a_killed_task_worker_leaves_its_run_crashed(task_worker, emulator, seed_instance):
    process, log = task_worker
    emulator.state.set_config({"clear_window_seconds": 120})
    seeded = seed_instance(state="blocked", notifications=4, cleared_before_first_call_seconds=1)  # leftTime 119 s
    await register_seeded(seeded, emulator, f"tw-{seeded.id_instance}")

    await asyncio.to_thread(handle_reported_change.delay, seeded.id_instance, Reason.number_blocked, "e2e-report")
    run = await _run_for(seeded.id_instance)
    await await_left_time(emulator, seeded.id_instance, process=process, log=log)
    process.send_signal(signal.SIGKILL)  # a machine going away: no cleanup, no state change
    process.wait(timeout=10)

    # Heartbeats every 10 s, three missed: Crashed within about 30 s plus the trigger service's pass.
    (crashed,) = await wait_for_final([run.id], timeout=90)
    assert crashed.state.type.value == "CRASHED", crashed.state.message
    assert emulator.state.instance(seeded.id_instance)["queue_length"] == 4  # nothing reported empty that was not
