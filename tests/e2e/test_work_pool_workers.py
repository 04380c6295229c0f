"""The fleet sweep in deployment mode on a real process work pool: one pool, two `prefect worker start`
subprocesses, the session's Prefect server and the emulator over loopback HTTP.

This is docs/fleet.md's handle="deployment" on one machine: the sweep only checks and decides, each affected
instance becomes its own handle-account-change run on the pool, and the pool's workers share them out.
Each worker runs at most one flow run at a time (`--limit 1`) and every run takes seconds (a new
Python process), so with four runs queued at once one worker cannot take them all: both must work.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from prefect import Flow
from domain import Handling
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
from prefect.exceptions import ObjectNotFound
from prefect.workers.process import ProcessWorker

from instances.memory import record_wid
from tests.e2e.conftest import on_sqlite_only
from tests.helpers import FINAL, await_until, clear_registry, methods_called, register_seeded
from bench.servers import BIN, FAST_GREEN_API, ROOT, clean_env

pytestmark = [pytest.mark.e2e, on_sqlite_only]

PREFECT = str(BIN / "prefect")
WORKER_COUNT = 2
# Written by the worker for every run it claims, and for every run it lost to another worker after
# trying (prefect/workers/base.py, BaseWorker._submit_scheduled_flow_runs / _propose_pending_state).
SUBMITTING = re.compile(r"Worker '([^']+)' submitting flow run '([0-9a-f-]{36})'")
ABORTED = re.compile(r"Aborted submission of flow run '([0-9a-f-]{36})'")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Worker:
    name: str
    process: subprocess.Popen
    log: Path

    def text(self) -> str:
        return ANSI.sub("", self.log.read_text(errors="replace"))

    def claimed(self) -> set[str]:
        """Flow run ids this worker submitted and did not lose to another worker."""
        text = self.text()
        tried = {run_id for name, run_id in SUBMITTING.findall(text) if name == self.name}
        return tried - set(ABORTED.findall(text))


@dataclass
class Pool:
    name: str
    deployment_name: str  # "flow-name/deployment-name", as the sweep takes it
    deployment_id: object
    workers: list[Worker]


@pytest.fixture
async def pool(prefect_server, emulator_server, tmp_path):
    """A fresh process work pool, handle-account-change deployed on it from this checkout, two workers."""
    suffix = secrets.token_hex(4)
    pool_name = f"greenapi-test-{suffix}"
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(
            name=pool_name, type="process", base_job_template=ProcessWorker.get_default_base_job_template(),
        ))
    workers: list[Worker] = []
    deployment_id = None
    try:
        # LocalStorage: the deployment's only pull step is set_working_directory(ROOT), the same
        # "checkout at the same path" that `prefect deploy` without a pull section gives in prefect.yaml.
        handle = await Flow.afrom_source(source=str(ROOT), entrypoint="flows/handle_account_change.py:handle_account_change")
        deployment_id = await handle.adeploy(
            name=f"workers-{suffix}", work_pool_name=pool_name, build=False, push=False,
            tags=["greenapi"], print_next_steps=False, ignore_warnings=True,
        )
        env = clean_env(
            PREFECT_API_URL=prefect_server.api_url,
            PREFECT_WORKER_QUERY_SECONDS="1",
            PREFECT_WORKER_PREFETCH_SECONDS="1",
            PREFECT_LOGGING_COLORS="false",
            PYTHONUNBUFFERED="1",
            **FAST_GREEN_API,
        )
        for index in range(WORKER_COUNT):
            name = f"{pool_name}-worker-{index}"
            home = tmp_path / f"home-{index}"
            home.mkdir()
            log = tmp_path / f"worker-{index}.log"
            with log.open("w") as out:
                process = subprocess.Popen(
                    [PREFECT, "worker", "start", "--pool", pool_name, "--type", "process", "--name", name, "--limit", "1"],
                    env={**env, "PREFECT_HOME": str(home)}, stdout=out, stderr=subprocess.STDOUT,
                    cwd=tmp_path, start_new_session=True,  # its own process group: teardown stops its flow runs too
                )
            workers.append(Worker(name=name, process=process, log=log))
        await _wait_for_workers(pool_name, workers)
        yield Pool(name=pool_name, deployment_name=f"{handle.name}/workers-{suffix}", deployment_id=deployment_id, workers=workers)
    finally:
        _stop_all([worker.process for worker in workers])
        async with get_client() as client:
            if deployment_id is not None:
                try:
                    await client.delete_deployment(deployment_id)
                except ObjectNotFound:
                    pass
            try:
                await client.delete_work_pool(pool_name)
            except ObjectNotFound:
                pass


def _stop_all(processes: list[subprocess.Popen], timeout: float = 20) -> None:
    """SIGTERM to every worker's process group at once, then SIGKILL to what is left after ``timeout`` seconds
    (the flow run processes included)."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)


async def _wait_for_workers(pool_name: str, workers: list[Worker], timeout: float = 90) -> None:
    """Until every worker has registered with the server and says it is polling."""
    async def all_online() -> bool:
        for worker in workers:
            if worker.process.poll() is not None:
                raise AssertionError(f"worker {worker.name} exited {worker.process.returncode}:\n{worker.text()[-3000:]}")
        async with get_client() as client:
            online = {w.name for w in await client.read_workers_for_work_pool(pool_name) if w.status.value == "ONLINE"}
        return online >= {w.name for w in workers} and all(f"Worker '{w.name}' started!" in w.text() for w in workers)

    await await_until(all_online, timeout=timeout, interval=0.5,
                      message=lambda: "workers never came online:\n" + "\n".join(f"{w.name}:\n{w.text()[-2000:]}" for w in workers))


@pytest.fixture
async def register(emulator):
    """Register a seeded instance as a greenapi-instance block (removed again after the test)."""
    names: list[str] = []

    async def _register(seeded) -> str:
        names.append(await register_seeded(seeded, emulator))
        return names[-1]

    yield _register
    async with get_client() as client:
        for name in names:
            try:
                document = await client.read_block_document_by_name(name, "greenapi-instance", include_secrets=False)
            except ObjectNotFound:
                continue
            await client.delete_block_document(document.id)


async def _pool_runs(deployment_id):
    async with get_client() as client:
        return await client.read_flow_runs(flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id])))


async def _wait_final(deployment_id, count: int, workers: list[Worker], timeout: float = 180):
    """At least ``count`` runs of the deployment, every one in a final state."""
    runs = []

    async def all_final() -> bool:
        nonlocal runs
        runs = await _pool_runs(deployment_id)
        return len(runs) >= count and all(r.state and r.state.type.value in FINAL for r in runs)

    await await_until(all_final, timeout=timeout, interval=0.5, message=lambda: (
        f"runs not finished: {[(r.name, r.state and r.state.type.value) for r in runs]}\n"
        + "\n".join(f"{w.name}:\n{w.text()[-2000:]}" for w in workers)))
    return runs


async def test_the_sweep_spreads_affected_instances_over_the_workers_of_one_pool(pool, emulator, seed_instance, register):
    from flows import sweep_instances

    await clear_registry()
    healthy = [seed_instance(notifications=4, wid=f"7800000000{i}@c.us") for i in range(4)]
    blocked = [seed_instance(state="blocked", notifications=5 + i, wid=f"7811111111{i}@c.us") for i in range(2)]
    changed = [seed_instance(notifications=7 + i, wid=f"7822222222{i}@c.us") for i in range(2)]
    blocks = {s.id_instance: await register(s) for s in (*healthy, *blocked, *changed)}
    for seeded in changed:
        await record_wid(seeded.id_instance, "78333333333@c.us")  # another account was seen last time
    await record_wid(healthy[0].id_instance, "78000000000@c.us")  # the same account as last time
    affected = {s.id_instance: "number_blocked" for s in blocked} | {s.id_instance: "account_changed" for s in changed}

    started = time.monotonic()
    report = await sweep_instances(handle="deployment", deployment_name=pool.deployment_name, max_concurrency=4)

    assert report.checked == 8 and report.affected == 4 and report.not_checked == 0, report
    found = {f.id_instance: f for f in report.findings}
    assert {i for i, f in found.items() if f.reason} == set(affected)
    assert all(found[i].outcome.handling is Handling.started for i in affected)

    runs = await _wait_final(pool.deployment_id, len(affected), pool.workers)
    elapsed = time.monotonic() - started

    # Each affected instance was handed over exactly once, with its reason, and its run completed.
    by_block = {}
    for run in runs:
        by_block.setdefault(run.parameters["instance"], []).append(run)
    assert sorted(by_block) == sorted(blocks[i] for i in affected), sorted(by_block)
    for id_instance, reason in affected.items():
        (run,) = by_block[blocks[id_instance]]
        assert run.state.type.value == "COMPLETED", (run.name, run.state.type.value, run.state.message)
        assert run.parameters["reason"] == reason
        assert run.run_count == 1, (run.name, run.run_count)

    # The emulator saw one successful clear per affected instance, none anywhere else.
    for id_instance in affected:
        state = emulator.state.instance(id_instance)
        assert state["clears_done"] == 1 and state["queue_length"] == 0, (id_instance, state["clears_done"], state["queue_length"])
    for seeded in healthy:
        state = emulator.state.instance(seeded.id_instance)
        assert state["clears_done"] == 0 and state["queue_length"] == 4, (seeded.id_instance, state)
        assert "clearWebhooksQueue" not in methods_called(emulator, seeded.id_instance)
    assert emulator.state.violations() == []

    # Who ran what: the worker's label on the run (set only by the worker whose Pending proposal won,
    # BaseWorker._give_worker_labels_to_flow_run) and, independently, each worker's own log.
    by_label = {str(run.id): run.labels.get("prefect.worker.name") for run in runs}
    claims = {w.name: w.claimed() for w in pool.workers}
    for run_id, worker_name in by_label.items():
        claimed_by = [name for name, ids in claims.items() if run_id in ids]
        assert claimed_by == [worker_name], (run_id, worker_name, claimed_by)  # exactly one worker ran it
    took = {w.name: sorted(r.name for r in runs if by_label[str(r.id)] == w.name) for w in pool.workers}
    print(f"\n{len(runs)} runs in {elapsed:.1f}s from the sweep's start; worker -> runs: {took}")
    assert all(took.values()), f"not every worker took a run: {took}"

    # Nothing the workers or their flow runs printed carries a token.
    for worker in pool.workers:
        text = worker.text()
        assert not [s.id_instance for s in (*healthy, *blocked, *changed) if s.token in text], worker.name
