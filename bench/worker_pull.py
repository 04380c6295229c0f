"""Benchmark: from a scheduled run to its first GREEN-API call, on a worker that pulls the code.

    python -m bench.worker_pull [--backend sqlite|postgres] [--runs N]

A worker machine as docs/deploy.md sets one up: a fresh virtualenv with only prefect in it, `prefect worker start
--pool greenapi` in its own directory with Prefect's default polling; the deployments from `prefect deploy --all`,
the repository a bare clone of this checkout's HEAD. Each run is a sweep-instances run scheduled LEAD_SECONDS ahead
(as its cron schedules one), on a fleet of one instance, measured from its scheduled time to the emulator's first
call, and split with Prefect's client: scheduled -> Running (the worker's poll, the process, the pull steps, whose
own span is read from the run's log), Running -> first call. The first run is the fresh worker's (it installs
requirements.lock); the others find it installed. Writes bench/out/worker-pull-<backend>.json (BENCH_SMALL=1:
two runs, worker-pull-small-<backend>.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from bench.infra import backend, emulator, prefect_server
from bench.servers import BIN, ROOT, PullingWorker, bare_repository, deploy_from_prefect_yaml, machine_env, worker_python

RUNS = 3
LEAD_SECONDS = 20  # the run is created this long before its scheduled time, as the scheduler does
RUN_TIMEOUT_SECONDS = 1800  # the fresh worker's first run installs requirements.lock
SWEEP = "sweep-instances/sweep-instances"
PULL_STARTED, PULL_DONE = "deployment pull step(s)", "All deployment steps completed successfully"  # Prefect's log lines


def _register_one(env: dict[str, str], emulator_url: str, folder: Path) -> int:
    """One emulated instance, registered as operators do (`greenapi-migrate instances import`); its idInstance."""
    id_instance, token = 3_400_000_001, secrets.token_hex(25)
    httpx.post(f"{emulator_url}/_emulator/instances", json={"id_instance": id_instance, "api_token": token, "notifications": 3},
               timeout=30).raise_for_status()
    fleet = folder / "fleet.csv"
    fleet.write_text(f"idInstance,apiTokenInstance,apiUrl,name\n{id_instance},{token},{emulator_url},bench-pull\n")
    subprocess.run([str(BIN / "greenapi-migrate"), "instances", "import", str(fleet)], env=env, cwd=ROOT, check=True,
                   capture_output=True, timeout=300)
    return id_instance


async def _scheduled_sweep(lead: float):
    """A sweep-instances run in state Scheduled, ``lead`` seconds from now."""
    from prefect.client.orchestration import get_client
    from prefect.states import Scheduled

    async with get_client() as client:
        deployment = await client.read_deployment_by_name(SWEEP)
        return await client.create_flow_run_from_deployment(
            deployment.id, state=Scheduled(scheduled_time=datetime.now(timezone.utc) + timedelta(seconds=lead)))


async def _finished(flow_run_id, timeout: float):
    """The run, its states and its log, once it is final (bounded)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while True:
            run = await client.read_flow_run(flow_run_id)
            if run.state and run.state.is_final():
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run.name} not final after {timeout} s: {run.state and run.state.type.value}")
            await asyncio.sleep(1)
        states = await client.read_flow_run_states(flow_run_id)
        logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return run, states, logs


def _first_log(logs, text: str) -> float | None:
    stamps = [log.timestamp.timestamp() for log in logs if text in log.message]
    return min(stamps) if stamps else None


def _measure(env: dict[str, str], emulator_url: str, id_instance: int) -> dict:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
        flow_run = asyncio.run(_scheduled_sweep(LEAD_SECONDS))
        run, states, logs = asyncio.run(_finished(flow_run.id, RUN_TIMEOUT_SECONDS))
    scheduled = flow_run.expected_start_time.timestamp()
    calls = httpx.get(f"{emulator_url}/_emulator/calls", params={"instance": id_instance}, timeout=30).json()
    first_call = min((c["started_at"] for c in calls if c["started_at"] >= scheduled), default=None)
    running = min((s.timestamp.timestamp() for s in states if s.type.value == "RUNNING"), default=None)
    pull_started, pull_done = _first_log(logs, PULL_STARTED), _first_log(logs, PULL_DONE)

    def span(start, end):
        return round(end - start, 2) if start is not None and end is not None else None

    return {"state": run.state.type.value, "scheduled_to_first_call_seconds": span(scheduled, first_call),
            "scheduled_to_running_seconds": span(scheduled, running), "pull_steps_seconds": span(pull_started, pull_done),
            "running_to_first_call_seconds": span(running, first_call)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.worker_pull")
    parser.add_argument("--backend", choices=("postgres", "sqlite"), help="the Prefect server's database (default: BENCH_BACKEND or sqlite)")
    parser.add_argument("--runs", type=int, help=f"sweeps, one after the other (default {RUNS}; BENCH_SMALL=1: 2)")
    args = parser.parse_args(argv)
    if args.backend:
        os.environ["BENCH_BACKEND"] = args.backend
    small = bool(os.environ.get("BENCH_SMALL"))
    runs = args.runs or (2 if small else RUNS)
    # No scheduler on the server: the sweep's */15 cron would add runs of its own.
    with tempfile.TemporaryDirectory(prefix="bench-worker-pull-") as folder, emulator() as emulator_url, \
            prefect_server(start_timeout=300, PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false") as env:
        folder = Path(folder)
        machine = folder / "worker-machine"
        machine.mkdir()
        worker_env = machine_env(env["PREFECT_API_URL"], machine / "prefect-home", PREFECT_LOGGING_COLORS="false")
        began = time.monotonic()
        bin_dir = worker_python(machine / "venv", worker_env)
        venv_seconds = time.monotonic() - began
        deploy_from_prefect_yaml(env, bare_repository(folder / "greenapi-queue-reset.git"))
        id_instance = _register_one(env, emulator_url, folder)
        with PullingWorker(bin_dir, worker_env, machine):
            results = []
            for index in range(runs):
                results.append({"run": index + 1, "worker": "fresh" if index == 0 else "warm", **_measure(env, emulator_url, id_instance)})
                print(json.dumps(results[-1]), flush=True)
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    report = {"backend": backend(), "lead_seconds": LEAD_SECONDS, "worker_venv_seconds": round(venv_seconds, 1), "runs": results}
    (out / f"worker-pull{'-small' if small else ''}-{backend()}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
