"""A worker on "another machine" runs both deployments from code it pulled itself: prefect.yaml's pull steps
(git_clone of the repository and branch in the greenapi_repository and greenapi_branch Variables, then
pip_install_requirements of requirements.lock), as docs/deploy.md sets it up.

The repository is a bare git repository made from this checkout's HEAD (a file:// URL), carrying it as a branch
this checkout does not have. The worker is `prefect worker start --pool greenapi` from a fresh virtualenv in its
own temporary directory, with nothing but prefect pip-installed (pip's cache and the package index allowed) and
nothing in its environment that leads to this checkout. The deployments come from `prefect deploy --all` run
here, exactly as prefect.yaml declares them; so this module has its own Prefect server, with no scheduler: the
sweep's */15 cron would otherwise start sweeps of its own mid-test, and pool and deployment names are the
production ones, which other tests' served deployments use on the shared server.

Wall time measured on 2 cores shared with other work (load average 13 to 29): 18 minutes, of which about 7 for the
worker's virtualenv (pip install prefect) and 6 for the first run's install of requirements.lock; the sweep and the
runbook from the worker's start to both Completed: 4 minutes.
"""

from __future__ import annotations

import subprocess
import time

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.deployments import run_deployment

from tests.helpers import handle_runs, methods_called, register_seeded, wait_for_final
from bench.servers import (
    FAST_GREEN_API,
    PULL_BRANCH,
    PrefectServer,
    PullingWorker,
    bare_repository,
    deploy_from_prefect_yaml,
    machine_env,
    talking_to,
    worker_python,
)

# Bounded, but for a busy machine: the first run installs requirements.lock into the fresh Python (1 minute on a
# quiet machine, 6 with a load average of 24).
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]

SWEEP = "sweep-instances/sweep-instances"
HANDLE = "handle-account-change/handle-account-change"
# What Prefect's run logger says of the pull steps (prefect/deployments/steps/core.py, run_steps).
PULL_LOG_LINES = ("Executing deployment step: git_clone", "Deployment step 'git_clone' completed successfully",
                  "Deployment step 'pip_install_requirements' completed successfully", "All deployment steps completed successfully")


@pytest.fixture(scope="module")
def prefect_home_server():
    """This module's own `prefect server start` (SQLite), without the scheduler service. Its start may take minutes:
    this test is for a machine busy enough that it runs alone (150 s were seen with a load average of 18)."""
    with PrefectServer(None, start_timeout=300, PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false") as server:
        yield server


@pytest.fixture
def machine(prefect_home_server, tmp_path):
    """A worker machine: its own directory, its own Python with only prefect in it, an environment pointing
    at the Prefect server and at nothing of this checkout."""
    directory = tmp_path / "worker-machine"
    directory.mkdir()
    env = machine_env(prefect_home_server.api_url, directory / "prefect-home", PREFECT_WORKER_QUERY_SECONDS="1",
                      PREFECT_LOGGING_COLORS="false", PYTHONUNBUFFERED="1", **FAST_GREEN_API)
    bin_dir = worker_python(directory / "venv", env)
    return directory, env, bin_dir


def _imports(bin_dir, env, directory, module: str) -> bool:
    done = subprocess.run([str(bin_dir / "python"), "-c", f"import {module}"], env=env, cwd=directory, capture_output=True, timeout=120)
    return done.returncode == 0


async def _run_logs(flow_run_id) -> list:
    """The flow run's log records on the Prefect server, oldest first."""
    async with get_client() as client:
        logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return sorted(logs, key=lambda log: log.timestamp)


def _pulled_at(logs: list) -> float:
    """When the run's pull steps had all completed (epoch seconds), from its log line saying so."""
    (done,) = [log for log in logs if log.message == PULL_LOG_LINES[-1]]
    return done.timestamp.timestamp()


async def test_a_worker_that_never_saw_the_checkout_runs_the_sweep_and_the_runbook_from_pulled_code(
        prefect_home_server, machine, emulator, seed_instance, tmp_path):
    directory, env, bin_dir = machine
    # The worker's Python knows nothing of this project, nor of its locked test-only dependencies.
    assert not _imports(bin_dir, env, directory, "flows") and not _imports(bin_dir, env, directory, "hypothesis")

    repository = bare_repository(tmp_path / "greenapi-queue-reset.git")
    deploy_from_prefect_yaml(prefect_home_server.client_env, repository)

    blocked = seed_instance(state="blocked", notifications=6, wid="79000000001@c.us")
    healthy = seed_instance(notifications=3, wid="79000000002@c.us")
    started = time.monotonic()
    with talking_to(prefect_home_server.api_url), PullingWorker(bin_dir, env, directory):
        blocks = {s.id_instance: await register_seeded(s, emulator) for s in (blocked, healthy)}
        sweep = await run_deployment(SWEEP, timeout=0)
        (sweep,) = await wait_for_final([sweep.id], timeout=1200)
        handles = await handle_runs(deployment=HANDLE)
        assert len(handles) == 1, [(r.name, r.parameters) for r in handles]
        (handle,) = await wait_for_final([handles[0].id], timeout=600)
        logs = {run.name: await _run_logs(run.id) for run in (sweep, handle)}
    elapsed = time.monotonic() - started

    # Both runs completed, and each pulled the code before it ran: Prefect's own log lines of the pull steps.
    for run in (sweep, handle):
        text = "\n".join(log.message for log in logs[run.name])
        assert run.state.type.value == "COMPLETED", (run.name, run.state.type.value, run.state.message, text[-3000:])
        missing = [line for line in PULL_LOG_LINES if line not in text]
        assert not missing, (run.name, missing, text[-3000:])
    assert handle.parameters["instance"] == blocks[blocked.id_instance] and handle.parameters["reason"] == "number_blocked"

    # GREEN-API (the emulator) saw the work done, each call after the calling run had pulled its code: the sweep's
    # checks after the sweep's pull, the clear after the runbook's; the blocked instance emptied, the healthy one untouched.
    calls = emulator.state.calls()
    assert calls and min(c["started_at"] for c in calls) > _pulled_at(logs[sweep.name])
    (clear,) = emulator.state.calls(instance=blocked.id_instance, method="clearWebhooksQueue")
    assert clear["started_at"] > _pulled_at(logs[handle.name])
    state = emulator.state.instance(blocked.id_instance)
    assert state["clears_done"] == 1 and state["queue_length"] == 0, state
    assert "clearWebhooksQueue" not in methods_called(emulator, healthy.id_instance)
    assert emulator.state.violations() == []

    # The code came from the clone: the worker's Python still cannot import the project outside a run, and the
    # locked dependencies it had not got before are there now (pip_install_requirements into the worker's Python).
    assert not _imports(bin_dir, env, directory, "flows")
    assert _imports(bin_dir, env, directory, "hypothesis")
    print(f"\nsweep and runbook from pulled code in {elapsed:.1f} s after the worker started (branch {PULL_BRANCH})")
