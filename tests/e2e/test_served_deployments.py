"""The deployments of prefect.yaml served by `greenapi-migrate serve` against the session's Prefect server:
event triggers, one run per instance at a time, and the fleet sweep."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, FlowRunFilter, FlowRunFilterDeploymentId
from prefect.deployments import run_deployment
from prefect.events import emit_event

from tasks import GreenApiInstance
from tasks.accounts import last_seen_wid, record_wid
from tasks.events import instance_resource

pytestmark = pytest.mark.e2e

CLI = str(Path(sys.executable).with_name("greenapi-migrate"))
HANDLE = "handle-account-change/handle-account-change"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@pytest.fixture(scope="module")
def served(prefect_server, emulator_server, tmp_path_factory):
    """`greenapi-migrate serve --no-receiver` in a subprocess, polling for runs every second."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GREEN_API_", "PREFECT_"))}
    env.update(
        PREFECT_API_URL=prefect_server.api_url,
        PREFECT_HOME=str(tmp_path_factory.mktemp("served-home")),
        PREFECT_RUNNER_POLL_FREQUENCY="1",
        GREEN_API_COUNT_REFRESH_SECONDS="1",
        GREEN_API_CLEAR_INTERVAL_SECONDS="3",
        GREEN_API_RETRY_BACKOFF_INITIAL_SECONDS="0.05",
    )
    log = tmp_path_factory.mktemp("served-log") / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen([CLI, "serve", "--no-receiver"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   cwd=tmp_path_factory.mktemp("served-cwd"))
    try:
        asyncio.run(_wait_for_deployments(process, log))
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


async def _wait_for_deployments(process, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"serve exited {process.returncode}:\n{log.read_text()[-3000:]}")
            found = await client.read_deployments(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["handle-account-change", "sweep-instances"]))
            )
            if len(found) == 2 and "Your deployments are being served" in log.read_text():
                return
            await asyncio.sleep(0.5)
    raise AssertionError(f"deployments never appeared:\n{log.read_text()[-3000:]}")


async def _register(seeded, emulator, name: str | None = None) -> str:
    name = name or f"e2e-{seeded.id_instance}"
    await GreenApiInstance(api_url=emulator.url, id_instance=seeded.id_instance, api_token_instance=seeded.token).asave(name, overwrite=True)
    return name


async def _handle_runs(instance_param: str | None = None):
    async with get_client() as client:
        deployment = await client.read_deployment_by_name(HANDLE)
        runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id])))
    return [r for r in runs if instance_param is None or r.parameters.get("instance") == instance_param]


async def _wait_final(flow_run_ids, timeout: float = 90):
    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while True:
            runs = [await client.read_flow_run(i) for i in flow_run_ids]
            if all(r.state and r.state.type.value in FINAL for r in runs):
                return runs
            if time.monotonic() > deadline:
                raise AssertionError(f"runs not finished: {[(r.name, r.state and r.state.type.value) for r in runs]}")
            await asyncio.sleep(0.5)


async def _wait_for_runs(instance_param: str, count: int, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = await _handle_runs(instance_param)
        if len(runs) >= count:
            return runs
        await asyncio.sleep(0.5)
    raise AssertionError(f"expected {count} run(s) for instance {instance_param}, found {len(await _handle_runs(instance_param))}")


@pytest.mark.usefixtures("served")
async def test_a_number_blocked_event_starts_a_run_that_clears_the_queue(emulator, seed_instance):
    seeded = seed_instance(state="blocked", notifications=6)
    await _register(seeded, emulator)

    emit_event(event="greenapi.instance.number-blocked", resource=instance_resource(seeded.id_instance),
               payload={"source": "e2e"})

    runs = await _wait_for_runs(str(seeded.id_instance), 1)
    (run,) = await _wait_final([r.id for r in runs])
    assert run.state.type.value == "COMPLETED", run.state.message
    assert run.parameters == {"reason": "number_blocked", "instance": str(seeded.id_instance), "clear_outgoing": False}
    assert emulator.state.instance(seeded.id_instance)["queue_length"] == 0


@pytest.mark.usefixtures("served")
async def test_two_runs_for_one_instance_take_turns_and_the_second_does_not_clear(emulator, seed_instance):
    seeded = seed_instance(notifications=9)
    block = await _register(seeded, emulator)

    first, second = await asyncio.gather(
        run_deployment(HANDLE, parameters={"reason": "number_blocked", "instance": block}, timeout=0),
        run_deployment(HANDLE, parameters={"reason": "account_changed", "instance": block}, timeout=0),
    )
    runs = await _wait_final([first.id, second.id])

    assert [r.state.type.value for r in runs] == ["COMPLETED", "COMPLETED"], [r.state.message for r in runs]
    methods = [c["method"] for c in emulator.state.calls(instance=seeded.id_instance)]
    one_clearing_run = ["getStateInstance", "getSettings", "getWebhooksCount", "getMessagesCount",
                        "clearWebhooksQueue", "getWebhooksCount", "receiveNotification"]
    already_empty_run = ["getStateInstance", "getSettings", "getWebhooksCount", "getMessagesCount", "receiveNotification"]
    assert methods == one_clearing_run + already_empty_run  # no interleaving, one clear
    assert emulator.state.violations() == []


@pytest.mark.usefixtures("served")
async def test_runs_for_different_instances_proceed_in_parallel(emulator, seed_instance):
    a = seed_instance(notifications=3)
    b = seed_instance(notifications=3)
    for seeded in (a, b):  # each run spends 3 s in its first count, so sequential runs could not overlap
        emulator.state.add_faults(seeded.id_instance, [{"method": "getWebhooksCount", "fault": {"kind": "delay", "seconds": 3}, "times": 1}])
    blocks = [await _register(s, emulator) for s in (a, b)]
    runs = await asyncio.gather(*(
        run_deployment(HANDLE, parameters={"reason": "account_changed", "instance": block}, timeout=0) for block in blocks
    ))
    finished = await _wait_final([r.id for r in runs])

    assert [r.state.type.value for r in finished] == ["COMPLETED", "COMPLETED"]
    spans = []
    for seeded in (a, b):
        calls = emulator.state.calls(instance=seeded.id_instance)
        spans.append((calls[0]["started_at"], calls[-1]["finished_at"]))
    (a_start, a_end), (b_start, b_end) = spans
    assert a_start < b_end and b_start < a_end, spans  # the two runs overlapped in time


async def _clear_registry() -> None:
    async with get_client() as client:
        for document in await client.read_block_documents_by_type("greenapi-instance", include_secrets=False):
            await client.delete_block_document(document.id)


@pytest.mark.usefixtures("served")
async def test_the_sweep_hands_over_exactly_the_blocked_and_the_changed_instances(emulator, seed_instance):
    from flows import sweep_instances

    await _clear_registry()
    healthy = [seed_instance(notifications=4, wid=f"7900000000{i}@c.us") for i in range(4)]
    blocked = seed_instance(state="blocked", notifications=5, wid="79111111111@c.us")
    changed = seed_instance(notifications=7, wid="79222222222@c.us")
    for seeded in (*healthy, blocked, changed):
        await _register(seeded, emulator)
    await record_wid(changed.id_instance, "79333333333@c.us")  # the account seen last time
    await record_wid(healthy[0].id_instance, "79000000000@c.us")  # same account as before: healthy

    report = await sweep_instances(max_concurrency=3)

    found = {f.id_instance: f for f in report.findings}
    assert report.checked == 6 and report.affected == 2 and report.failed_checks == 0
    assert found[blocked.id_instance].reason.value == "number_blocked"
    assert found[changed.id_instance].reason.value == "account_changed"
    assert all(found[h.id_instance].reason is None for h in healthy)

    started = {}
    for seeded in (blocked, changed):
        runs = await _wait_for_runs(f"e2e-{seeded.id_instance}", 1)
        started[seeded.id_instance] = runs
        (run,) = await _wait_final([r.id for r in runs])
        assert run.state.type.value == "COMPLETED", run.state.message
        assert emulator.state.instance(seeded.id_instance)["queue_length"] == 0
    assert started[changed.id_instance][0].parameters["reason"] == "account_changed"
    for seeded in healthy:
        assert await _handle_runs(f"e2e-{seeded.id_instance}") == []
        assert emulator.state.instance(seeded.id_instance)["queue_length"] == 4  # untouched
        assert "clearWebhooksQueue" not in [c["method"] for c in emulator.state.calls(instance=seeded.id_instance)]
    # Every authorized account seen is recorded for the next sweep.
    assert await last_seen_wid(changed.id_instance) == "79222222222@c.us"
    assert await last_seen_wid(healthy[1].id_instance) == "79000000001@c.us"
