"""deploy.warm_runs against the session's Prefect server and the emulator: claiming, running in this
process, leaving others' runs alone, the limit, and cancellation from the API."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

import pytest
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.states import Cancelling, Pending

from deploy.warm_runs import WarmRunner
from flows import handle_account_change
from tasks import GreenApiInstance

FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
_names = itertools.count(1)


@pytest.fixture
async def warm_deployment(prefect_server, greenapi_env):
    """A deployment of handle-account-change of its own (no other runner serves it) and its full name."""
    name = f"warm-{next(_names)}"
    deployment = await handle_account_change.ato_deployment(name=name)
    await deployment.aapply()
    return f"handle-account-change/{name}"


@contextlib.asynccontextmanager
async def serving(deployment_name: str, **options):
    warm = WarmRunner(handle_account_change, deployment_name, poll_seconds=0.1, **options)
    task = asyncio.create_task(warm.run())
    try:
        yield warm
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _register(seeded, emulator) -> str:
    name = f"warm-{seeded.id_instance}"
    await GreenApiInstance(api_url=emulator.url, id_instance=seeded.id_instance, api_token_instance=seeded.token).asave(name, overwrite=True)
    return name


async def _wait_final(run_id, timeout: float = 60):
    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while True:
            run = await client.read_flow_run(run_id)
            if run.state and run.state.type.value in FINAL:
                return run
            assert time.monotonic() < deadline, f"run still {run.state.type.value}"
            await asyncio.sleep(0.2)


async def test_a_scheduled_run_is_claimed_and_run_in_this_process(warm_deployment, emulator, seed_instance):
    seeded = seed_instance(state="blocked", notifications=4)
    block = await _register(seeded, emulator)

    async with serving(warm_deployment) as warm:
        run = await run_deployment(warm_deployment, parameters={"reason": "number_blocked", "instance": block}, timeout=0)
        finished = await _wait_final(run.id)

    assert finished.state.type.value == "COMPLETED", finished.state.message
    assert warm.started_runs == 1
    assert emulator.state.instance(seeded.id_instance)["queue_length"] == 0
    async with get_client() as client:
        states = [s.type.value for s in await client.read_flow_run_states(run.id)]
    assert states[:3] == ["SCHEDULED", "PENDING", "RUNNING"] and states[-1] == "COMPLETED"


async def test_a_run_someone_else_claimed_is_left_alone(warm_deployment, emulator, seed_instance):
    seeded = seed_instance(state="blocked", notifications=4)
    block = await _register(seeded, emulator)
    run = await run_deployment(warm_deployment, parameters={"reason": "number_blocked", "instance": block}, timeout=0)
    async with get_client() as client:
        await client.set_flow_run_state(run.id, Pending())  # a worker took it first

        async with serving(warm_deployment) as warm:
            await asyncio.sleep(1.5)  # fifteen polls

        assert (await client.read_flow_run(run.id)).state.type.value == "PENDING"
    assert warm.started_runs == 0
    assert emulator.state.calls(instance=seeded.id_instance) == []


async def test_runs_beyond_the_limit_wait_for_a_free_slot(warm_deployment, emulator, seed_instance):
    first, second = seed_instance(state="blocked", notifications=2), seed_instance(state="blocked", notifications=2)
    blocks = [await _register(s, emulator) for s in (first, second)]

    async with serving(warm_deployment, limit=1) as warm:
        runs = [await run_deployment(warm_deployment, parameters={"reason": "number_blocked", "instance": b}, timeout=0) for b in blocks]
        finished = [await _wait_final(r.id) for r in runs]

    assert [r.state.type.value for r in finished] == ["COMPLETED", "COMPLETED"]
    assert warm.started_runs == 2
    earlier, later = sorted(finished, key=lambda r: r.start_time)
    assert later.start_time >= earlier.end_time  # one slot: the second started only when the first had ended


async def test_a_run_cancelled_from_the_api_stops_before_it_clears(warm_deployment, emulator, seed_instance):
    seeded = seed_instance(state="blocked", notifications=4)
    # The count answers after 30 s: the run is mid-step when it is cancelled.
    emulator.state.add_faults(seeded.id_instance, [{"method": "getWebhooksCount", "fault": {"kind": "delay", "seconds": 30}, "times": 1}])
    block = await _register(seeded, emulator)

    async with serving(warm_deployment) as warm:
        run = await run_deployment(warm_deployment, parameters={"reason": "number_blocked", "instance": block}, timeout=0)
        while not emulator.state.calls(instance=seeded.id_instance, method="getSettings"):
            await asyncio.sleep(0.1)
        async with get_client() as client:
            await client.set_flow_run_state(run.id, Cancelling(), force=True)
        deadline = time.monotonic() + 10
        async with get_client() as client:
            # The engine records the interrupted run as Crashed; the warm runner then marks it Cancelled.
            while (finished := await client.read_flow_run(run.id)).state.type.value != "CANCELLED" and time.monotonic() < deadline:
                await asyncio.sleep(0.2)

    assert finished.state.type.value == "CANCELLED", finished.state
    assert warm.running == {}
    assert emulator.state.calls(instance=seeded.id_instance, method="clearWebhooksQueue") == []
