"""The deployments of prefect.yaml served by `greenapi-migrate serve` against the session's Prefect server:
event triggers, one run per instance at a time, and the fleet sweep."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.states import Cancelling
from prefect.deployments import run_deployment
from prefect.events import Event
from prefect.events.clients import get_events_client

from instances import GreenApiInstance
from instances.events import instance_resource
from instances.memory import last_seen_wid, record_wid
from tests.helpers import (
    await_left_time, await_until, clear_registry, handle_runs, methods_called, register_seeded, slots_taken, task_runs_of,
    wait_for_final,
)
from tests.e2e.conftest import on_sqlite_only
from bench.servers import CLI, FAST_GREEN_API, client_env, stop_process, talking_to

pytestmark = pytest.mark.e2e

HANDLE = "handle-account-change/handle-account-change"
SWEEP = "sweep-instances/sweep-instances"
RECEIVER_SECRET = "CANARYreceiver" + "9f8e7d" * 6


@dataclass
class Served:
    process: subprocess.Popen
    receiver_url: str
    log: Path


@pytest.fixture(scope="module")
def served(prefect_server, emulator_server, tmp_path_factory):
    """`greenapi-migrate serve` (deployments + receiver) in a subprocess, polling for runs every second."""
    env = client_env(
        prefect_server.api_url, tmp_path_factory.mktemp("served-home"),
        PREFECT_RUNNER_POLL_FREQUENCY="1",
        **FAST_GREEN_API,
        GREEN_API_RECEIVER_SECRET=RECEIVER_SECRET,
        GREEN_API_RECEIVER_PORT="0",
    )
    log = tmp_path_factory.mktemp("served-log") / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen([CLI, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   cwd=tmp_path_factory.mktemp("served-cwd"))
    try:
        with talking_to(prefect_server.api_url):  # a module's fixture: set up before any test's own context
            asyncio.run(_wait_for_deployments(process, log))
            asyncio.run(_pause_the_scheduled_sweep())
        receiver_url = re.search(r"receiver listening on (http://\S+)", log.read_text()).group(1)
        yield Served(process=process, receiver_url=receiver_url, log=log)
    finally:
        stop_process(process)


async def _pause_the_scheduled_sweep() -> None:
    """The served sweep's quarter-hourly schedule would check the tests' instances at :00, :15, :30 and :45, its
    calls among theirs: paused, its scheduled runs go too. (The schedules themselves: test_prefect_yaml.py.)"""
    async with get_client() as client:
        await client.pause_deployment((await client.read_deployment_by_name(SWEEP)).id)


async def _wait_for_deployments(process, log: Path, timeout: float = 90) -> None:
    async def served() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"serve exited {process.returncode}:\n{log.read_text()[-3000:]}")
        async with get_client() as client:
            found = await client.read_deployments(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["handle-account-change", "sweep-instances"]))
            )
        return len(found) == 2 and "Your deployments are being served" in log.read_text()

    await await_until(served, timeout=timeout, interval=0.5, message=lambda: f"deployments never appeared:\n{log.read_text()[-3000:]}")


async def _handle_runs(instance_param: str | None = None):
    """The served handle-account-change deployment's runs for the instance."""
    return await handle_runs(instance_param, deployment=HANDLE)


async def _reported_runs(id_instance: int):
    """handle-account-change runs that a task worker ran for the receiver (no deployment, tagged receiver)."""
    return await handle_runs(str(id_instance), deployment=False)


async def _wait_for_runs(instance_param: str, count: int, timeout: float = 60, read=_handle_runs):
    """At least ``count`` runs for the instance, as ``read`` finds them (deployment runs by default)."""
    found = []

    async def enough():
        nonlocal found
        found = await read(instance_param)
        return len(found) >= count

    await await_until(enough, timeout=timeout, message=lambda: f"expected {count} run(s) for instance {instance_param}, found {len(found)}")
    return found


async def _wait_for_reported_runs(id_instance: int, count: int, timeout: float = 60):
    return await _wait_for_runs(str(id_instance), count, timeout, read=lambda _: _reported_runs(id_instance))


@on_sqlite_only
@pytest.mark.usefixtures("served")
async def test_a_number_blocked_event_starts_a_run_that_clears_the_queue(emulator, seed_instance):
    seeded = seed_instance(state="blocked", notifications=6, outgoing_messages=2)
    await register_seeded(seeded, emulator)

    # A client of its own: the process-wide events worker may still point at a server an earlier test stopped.
    async with get_events_client(checkpoint_every=1) as events:
        await events.emit(Event(event="greenapi.instance.number-blocked", resource=instance_resource(seeded.id_instance),
                                payload={"source": "e2e"}))

    runs = await _wait_for_runs(str(seeded.id_instance), 1)
    (run,) = await wait_for_final([r.id for r in runs])
    assert run.state.type.value == "COMPLETED", run.state.message
    # The event says nothing of the outgoing queue: the flow decides (after a block: cleared too); named by the idInstance.
    assert run.parameters == {"reason": "number_blocked", "instance": str(seeded.id_instance), "clear_outgoing": None}
    assert run.name == f"number_blocked-{seeded.id_instance}"
    assert (emulator.state.instance(seeded.id_instance)["queue_length"], emulator.state.instance(seeded.id_instance)["outgoing_messages"]) == (0, 0)


@pytest.mark.usefixtures("served")
async def test_two_runs_for_one_instance_take_turns_and_the_second_does_not_clear(emulator, seed_instance):
    seeded = seed_instance(notifications=9)
    block = await register_seeded(seeded, emulator)

    first, second = await asyncio.gather(
        run_deployment(HANDLE, parameters={"reason": "number_blocked", "instance": block}, timeout=0),
        run_deployment(HANDLE, parameters={"reason": "account_changed", "instance": block}, timeout=0),
    )
    runs = await wait_for_final([first.id, second.id])

    assert [r.state.type.value for r in runs] == ["COMPLETED", "COMPLETED"], [r.state.message for r in runs]
    methods = methods_called(emulator, seeded.id_instance)
    one_clearing_run = ["getStateInstance", "getSettings", "getWebhooksCount", "getMessagesCount",
                        "clearWebhooksQueue", "receiveNotification", "getWebhooksCount"]  # the peek runs during the wait
    already_empty_run = ["getStateInstance", "getSettings", "getWebhooksCount", "getMessagesCount", "receiveNotification"]
    assert methods == one_clearing_run + already_empty_run  # no interleaving, one clear
    assert emulator.state.violations() == []


@pytest.mark.usefixtures("served")
async def test_runs_for_different_instances_proceed_in_parallel(emulator, seed_instance):
    slow = seed_instance(notifications=3)
    fast = seed_instance(notifications=3)
    # The slow instance holds its first count until the faults are cleared; were runs serialised, the fast one would wait.
    emulator.state.add_faults(slow.id_instance, [{"method": "getWebhooksCount", "fault": {"kind": "delay", "seconds": 120}, "times": 1}])
    slow_run = await run_deployment(HANDLE, parameters={"reason": "account_changed", "instance": await register_seeded(slow, emulator)}, timeout=0)
    await await_until(lambda: emulator.state.instance(slow.id_instance)["faults_pending"] == [], timeout=60,
                      message="the slow run never asked for its count")
    fast_run = await run_deployment(HANDLE, parameters={"reason": "account_changed", "instance": await register_seeded(fast, emulator)}, timeout=0)

    (fast_done,) = await wait_for_final([fast_run.id])
    assert fast_done.state.type.value == "COMPLETED", fast_done.state.message
    assert emulator.state.calls(instance=slow.id_instance, method="getWebhooksCount") == []  # still held meanwhile
    emulator.state.clear_faults(slow.id_instance)
    (slow_done,) = await wait_for_final([slow_run.id])

    assert slow_done.state.type.value == "COMPLETED", slow_done.state.message
    assert emulator.state.instance(slow.id_instance)["queue_length"] == 0


@on_sqlite_only
@pytest.mark.usefixtures("served")
async def test_the_sweep_hands_over_exactly_the_blocked_and_the_changed_instances(emulator, seed_instance):
    from flows import sweep_instances

    await clear_registry()
    healthy = [seed_instance(notifications=4, wid=f"7900000000{i}@c.us") for i in range(4)]
    blocked = seed_instance(state="blocked", notifications=5, wid="79111111111@c.us")
    changed = seed_instance(notifications=7, wid="79222222222@c.us")
    for seeded in (*healthy, blocked, changed):
        await register_seeded(seeded, emulator)
    await record_wid(changed.id_instance, "79333333333@c.us")  # the account seen last time
    await record_wid(healthy[0].id_instance, "79000000000@c.us")  # same account as before: healthy

    report = await sweep_instances(max_concurrency=3)

    found = {f.id_instance: f for f in report.findings}
    assert report.checked == 6 and report.affected == 2 and report.not_checked == 0
    assert found[blocked.id_instance].reason.value == "number_blocked"
    assert found[changed.id_instance].reason.value == "account_changed"
    assert all(found[h.id_instance].reason is None for h in healthy)

    started = {}
    for seeded in (blocked, changed):
        runs = await _wait_for_runs(f"e2e-{seeded.id_instance}", 1)
        started[seeded.id_instance] = runs
        (run,) = await wait_for_final([r.id for r in runs])
        assert run.state.type.value == "COMPLETED", run.state.message
        assert emulator.state.instance(seeded.id_instance)["queue_length"] == 0
        # Created with its final name, which the report links; the sweep's inspection went along (no second one).
        assert run.name == f"{found[seeded.id_instance].reason.value}-{seeded.id_instance}"
        assert found[seeded.id_instance].handled_by == f"run {run.name}"
        steps = [task_run.name for task_run in await task_runs_of(run.id)]
        assert f"clear-notifications-{seeded.id_instance}" in steps and f"inspect-instance-{seeded.id_instance}" not in steps
        assert [c["method"] for c in emulator.state.calls(instance=seeded.id_instance)].count("getStateInstance") == 1
    assert started[changed.id_instance][0].parameters["reason"] == "account_changed"
    assert started[changed.id_instance][0].parameters["observed"]["wid"] == "79222222222@c.us"  # what the sweep saw
    for seeded in healthy:
        assert await _handle_runs(f"e2e-{seeded.id_instance}") == []
        assert emulator.state.instance(seeded.id_instance)["queue_length"] == 4  # untouched
        assert "clearWebhooksQueue" not in [c["method"] for c in emulator.state.calls(instance=seeded.id_instance)]
    # Every authorized account seen is recorded for the next sweep.
    assert await last_seen_wid(changed.id_instance) == "79222222222@c.us"
    assert await last_seen_wid(healthy[1].id_instance) == "79000000001@c.us"


def _post(served: Served, path: str, body, secret: str | None = RECEIVER_SECRET) -> httpx.Response:
    content = body if isinstance(body, (bytes, str)) else None
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    return httpx.post(served.receiver_url + path, json=None if content is not None else body, content=content,
                      headers=headers, timeout=10)


@on_sqlite_only
async def test_a_post_to_the_receiver_leads_to_a_completed_run(served, emulator, seed_instance):
    seeded = seed_instance(state="blocked", notifications=5)
    await register_seeded(seeded, emulator)

    log_before = len(served.log.read_text())
    answer = _post(served, "/events/queue-reset", {"idInstance": seeded.id_instance, "reason": "number_blocked", "source": "e2e"})

    assert answer.status_code == 202, answer.text
    (run,) = await wait_for_final([r.id for r in await _wait_for_reported_runs(seeded.id_instance, 1)])
    assert run.state.type.value == "COMPLETED", run.state.message
    assert run.parameters["reason"] == "number_blocked"
    # serve's receiver hands the report to the task worker inside serve, which ran it to the end.
    assert "receiver" in run.tags
    async with get_client() as client:
        task_run = await client.read_task_run(answer.json()["taskRunId"])
    assert task_run.name == f"handle-reported-change-{seeded.id_instance}" and task_run.state.type.value == "COMPLETED"
    assert answer.json()["event"] == "greenapi.instance.number-blocked.dispatched"
    assert "Downloading flow code" not in served.log.read_text()[log_before:]  # no new process was started for it
    assert await _handle_runs(str(seeded.id_instance)) == []  # and the trigger did not start another
    assert emulator.state.instance(seeded.id_instance)["queue_length"] == 0
    assert seeded.token not in served.log.read_text()  # the served runs' output never shows the token


@on_sqlite_only
async def test_a_greenapi_state_webhook_leads_to_a_completed_run_once(served, emulator, seed_instance):
    seeded = seed_instance(state="blocked", notifications=8)
    await register_seeded(seeded, emulator)
    webhook = {
        "typeWebhook": "stateInstanceChanged",
        "instanceData": {"idInstance": seeded.id_instance, "wid": "79990000000@c.us", "typeInstance": "whatsapp"},
        "timestamp": int(time.time()),
        "stateInstance": "blocked",
    }

    first = _post(served, "/webhooks/greenapi", webhook)
    again = _post(served, "/webhooks/greenapi", webhook)  # GREEN-API re-sends: at-least-once delivery

    assert first.status_code == again.status_code == 200  # GREEN-API is answered 200, or it re-sends
    assert first.json()["eventId"] == again.json()["eventId"] and again.json()["duplicate"] is True
    (run,) = await wait_for_final([r.id for r in await _wait_for_reported_runs(seeded.id_instance, 1)])
    assert run.state.type.value == "COMPLETED", run.state.message
    assert again.json()["taskRunId"] == first.json()["taskRunId"]  # the re-delivery names the one hand-over
    assert len(await _reported_runs(seeded.id_instance)) == 1 and await _handle_runs(str(seeded.id_instance)) == []


async def test_a_run_cancelled_from_the_ui_stops_in_the_task_worker_and_frees_its_instance(served, emulator, seed_instance):
    emulator.state.set_config({"clear_window_seconds": 40})
    seeded = seed_instance(state="blocked", notifications=5, cleared_before_first_call_seconds=1)  # leftTime 39 s: a long wait
    await register_seeded(seeded, emulator)

    answer = _post(served, "/events/queue-reset", {"idInstance": seeded.id_instance, "reason": "number_blocked"})
    assert answer.status_code == 202, answer.text
    (run,) = await _wait_for_reported_runs(seeded.id_instance, 1)
    await await_left_time(emulator, seeded.id_instance, timeout=30)
    async with get_client() as client:
        await client.set_flow_run_state(run.id, Cancelling(message="cancelled by the e2e test, as the UI does"))

    (final,) = await wait_for_final([run.id], timeout=30)
    assert final.state.type.value == "CANCELLED", final.state.message
    assert await slots_taken(seeded.id_instance) == 0
    clears = emulator.state.calls(instance=seeded.id_instance, method="clearWebhooksQueue")
    assert len(clears) == 1  # stopped in its wait: it never cleared again
    assert emulator.state.instance(seeded.id_instance)["queue_length"] == 5


async def _after_a_positive_control(served: Served, emulator, seed_instance) -> None:
    """Absence, proved by what came after it: a good report to the receiver (a hand-over to the task worker)
    and a number-blocked event (the trigger's deployment run) for another instance, sent now, and waited
    for until both their runs are final. Whatever the requests before had started would have been sent
    earlier on the same paths, so it would be there by now."""
    control = seed_instance(state="blocked", notifications=1)
    await register_seeded(control, emulator)
    answer = _post(served, "/events/queue-reset", {"idInstance": control.id_instance, "reason": "number_blocked"})
    assert answer.status_code == 202, answer.text
    async with get_events_client(checkpoint_every=1) as events:
        await events.emit(Event(event="greenapi.instance.number-blocked", resource=instance_resource(control.id_instance),
                                payload={"source": "e2e-control"}))
    runs = await _wait_for_reported_runs(control.id_instance, 1) + await _wait_for_runs(str(control.id_instance), 1)
    await wait_for_final([r.id for r in runs])


@on_sqlite_only
async def test_bad_secret_and_malformed_bodies_start_no_run(served, emulator, seed_instance):
    seeded = seed_instance(state="blocked", notifications=2)
    await register_seeded(seeded, emulator)
    good = {"idInstance": seeded.id_instance, "reason": "number_blocked"}
    almost = RECEIVER_SECRET[:-1] + ("0" if RECEIVER_SECRET[-1] != "0" else "1")

    answers = [
        _post(served, "/events/queue-reset", good, secret=almost),
        _post(served, "/events/queue-reset", good, secret=None),
        _post(served, "/events/queue-reset", b"{not json"),
        _post(served, "/events/queue-reset", {"idInstance": seeded.id_instance, "reason": "phone_lost"}),
        _post(served, "/webhooks/greenapi", {"typeWebhook": "stateInstanceChanged", "instanceData": {"idInstance": "x"}}),
    ]

    assert [a.status_code for a in answers][:2] == [401, 401]
    assert all(400 <= a.status_code < 500 for a in answers[2:]), [a.text for a in answers]
    await _after_a_positive_control(served, emulator, seed_instance)
    assert await _handle_runs(str(seeded.id_instance)) == [] and await _reported_runs(seeded.id_instance) == []
    assert RECEIVER_SECRET not in served.log.read_text()


async def _log_lines(served: Served, since: int, about: str, *, until: str, count: int, timeout: float = 15) -> list[str]:
    """serve's output since ``since`` (characters), the lines naming ``about``; read until ``count`` of them hold ``until``."""
    lines: list[str] = []

    def enough() -> bool:
        nonlocal lines
        lines = [line for line in served.log.read_text()[since:].splitlines() if about in line]
        return sum(until in line for line in lines) >= count

    await await_until(enough, timeout=timeout, message=lambda: f"{count} line(s) on {about} with {until!r} in serve's output; "
                                                               f"found:\n" + "\n".join(lines))
    return lines


@on_sqlite_only
async def test_a_refused_token_fails_each_served_run_with_one_error_line_and_no_traceback(served, emulator, seed_instance):
    seeded = seed_instance(state="blocked", notifications=2)
    canary = "CANARYserved" + "4b" * 20  # the block's token, which the instance refuses
    block = f"e2e-{seeded.id_instance}"
    await GreenApiInstance(api_url=emulator.url, id_instance=seeded.id_instance, api_token_instance=canary).asave(block, overwrite=True)
    log_before = len(served.log.read_text())

    # One run on Prefect's runner (a process of its own), one in serve's task worker (from the receiver).
    deployment_run = await run_deployment(HANDLE, parameters={"reason": "number_blocked", "instance": block}, timeout=0)
    answer = _post(served, "/events/queue-reset", {"idInstance": seeded.id_instance, "reason": "number_blocked"})
    assert answer.status_code == 202, answer.text
    reported = await _wait_for_reported_runs(seeded.id_instance, 1)
    runs = await wait_for_final([deployment_run.id, reported[0].id])

    expected = f"the apiTokenInstance was refused for idInstance {seeded.id_instance}"
    assert [r.state.type.value for r in runs] == ["FAILED", "FAILED"] and all(expected in r.state.message for r in runs)
    lines = await _log_lines(served, log_before, str(seeded.id_instance), until="Finished in state Failed('Instance", count=2)
    errors = [line for line in lines if "ERROR" in line]
    assert len(errors) == 2 and all(expected in line for line in errors), "\n".join(lines)  # one per run
    logged = served.log.read_text()[log_before:]
    assert "Traceback" not in logged and canary not in logged


@on_sqlite_only
async def test_an_unregistered_instance_starts_no_run_and_is_one_warning_line(served, emulator, seed_instance):
    unregistered = 7_980_000_001  # no greenapi-instance block
    log_before = len(served.log.read_text())
    webhook = {"typeWebhook": "stateInstanceChanged", "timestamp": int(time.time()), "stateInstance": "blocked",
               "instanceData": {"idInstance": unregistered, "wid": "79990000001@c.us", "typeInstance": "whatsapp"}}

    answers = [_post(served, "/webhooks/greenapi", webhook),
               _post(served, "/events/queue-reset", {"idInstance": unregistered, "reason": "number_blocked"})]

    assert [a.status_code for a in answers] == [200, 422], [a.text for a in answers]
    assert answers[0].json()["status"] == "ignored"
    await _after_a_positive_control(served, emulator, seed_instance)
    assert await _handle_runs(str(unregistered)) == [] and await _reported_runs(unregistered) == []
    lines = await _log_lines(served, log_before, str(unregistered), until="no greenapi-instance block", count=2)
    assert len(lines) == 2 and all("WARNING" in line for line in lines), lines
    assert "Traceback" not in served.log.read_text()[log_before:]
