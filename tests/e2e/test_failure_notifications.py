"""Failures reach people: with `automations apply --notify-block` naming a Prefect notification block, a failed queue
reset and a failed sweep become notifications (here a custom-webhook block posting to a loopback endpoint)
that name the instance or run and the outcome, and never carry a token. Every wait is bounded."""

from __future__ import annotations

import itertools
import subprocess

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.events import emit_event

from domain import Reason
from deploy.automations import CRASHED_RUNS, NOTIFICATION_AUTOMATIONS
from instances import GreenApiInstance
from tests.helpers import HttpCatcher, await_until, run_cli, run_flow, wait_until
from bench.servers import CLI, stop_process

# SQLite only: the automations and the notification block do not depend on the back-end.
pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("prefect_server", ["sqlite"], indirect=True)]

CANARY = "CANARYnotify" + "c0ffee" * 6
NOTIFY_BLOCK = "e2e-notify"
NOTIFICATION_TIMEOUT_S = 60


def _apply(real_prefect_server, tmp_path, notify_block: str) -> subprocess.CompletedProcess:
    """`greenapi-migrate automations apply`, the documented path after `prefect deploy --all`."""
    return run_cli(["automations", "apply", "--notify-block", notify_block], real_prefect_server, tmp_path)


@pytest.fixture
async def endpoint(prefect_server, real_prefect_server, tmp_path):
    """A loopback endpoint behind a custom-webhook block, and the project's automations applied for it."""
    with HttpCatcher() as catcher:
        await CustomWebhookNotificationBlock(
            name="greenapi-e2e", url=catcher.url, json_data={"subject": "{{subject}}", "body": "{{body}}"},
        ).asave(NOTIFY_BLOCK, overwrite=True)
        done = _apply(real_prefect_server, tmp_path, f"custom-webhook/{NOTIFY_BLOCK}")
        assert done.returncode == 0, done.stderr
        assert all(name in done.stdout for name in NOTIFICATION_AUTOMATIONS), done.stdout
        await notifications_are_live(catcher)
        yield catcher


async def notifications_are_live(catcher: HttpCatcher) -> None:
    """The triggers service learns of new automations from a change feed, a moment after they are created:
    probe events (a queue reset failed on a made-up instance) until one of them is notified (bounded)."""
    probes = itertools.count(2_999_100_001)

    def probe_notified() -> bool:
        id_instance = next(probes)
        emit_event(event="greenapi.queue-reset.failed", payload={"outcome": "probe"},
                   resource={"prefect.resource.id": f"greenapi.instance.{id_instance}", "greenapi.id-instance": str(id_instance)})
        return any("queue reset failed (probe)" in body for body in catcher.bodies())

    await await_until(probe_notified, timeout=NOTIFICATION_TIMEOUT_S, interval=1.0,
                      message="the notification automations never acted on a probe event")


async def test_a_failed_queue_reset_is_notified_naming_the_instance_and_the_outcome(endpoint, emulator, seed_instance, greenapi_env):
    seeded = seed_instance(token=CANARY, notifications=3, refuse_clears={"reason": "queue is locked"})
    await GreenApiInstance(api_url=emulator.url, id_instance=seeded.id_instance, api_token_instance=seeded.token).asave(
        f"notify-{seeded.id_instance}", overwrite=True)

    state, report = await run_flow(reason=Reason.number_blocked, instance=f"notify-{seeded.id_instance}")
    assert state.is_failed() and report.outcome.value == "clear_refused", state.message

    body = await endpoint.wait_for(lambda b: str(seeded.id_instance) in b, timeout=NOTIFICATION_TIMEOUT_S,
                                   what=f"instance {seeded.id_instance}")
    assert "queue reset failed (clear_refused)" in body and "queue is locked" in body, body
    assert all(CANARY not in b for b in endpoint.bodies())


async def test_a_failed_sweep_is_notified_naming_the_run_and_the_outcome(endpoint, emulator, greenapi_env):
    from flows import sweep_instances

    # Nothing answers on port 9: the instance cannot be checked, so the sweep ends Failed (SweepIncomplete).
    await GreenApiInstance(api_url="http://127.0.0.1:9", id_instance=2_999_000_001, api_token_instance=CANARY).asave(
        "notify-unreachable", overwrite=True)
    try:
        state = await sweep_instances(start_runs=False, check_timeout_seconds=2, return_state=True)
    finally:
        await GreenApiInstance.adelete("notify-unreachable")  # later sweeps in the session must not meet it
    assert state.is_failed(), state.message
    async with get_client() as client:
        run = await client.read_flow_run(state.state_details.flow_run_id)

    body = await endpoint.wait_for(lambda b: run.name in b, timeout=NOTIFICATION_TIMEOUT_S, what=f"sweep run {run.name}")
    assert f"GREEN-API sweep {run.name}: Failed" in body and "SweepIncomplete" in body and "could not be checked" in body, body
    assert all(CANARY not in b for b in endpoint.bodies())


async def test_a_notify_block_that_does_not_exist_is_one_line_and_the_rest_still_applies(prefect_server, real_prefect_server, tmp_path):
    done = _apply(real_prefect_server, tmp_path, "custom-webhook/no-such-block")

    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "greenapi-migrate automations apply: --notify-block: no custom-webhook block named 'no-such-block' on "
        "the Prefect server: failure notifications are off (create it, then apply again)"
    ]
    async with get_client() as client:
        assert await client.read_automations_by_name(CRASHED_RUNS)
        for name in NOTIFICATION_AUTOMATIONS:  # none left pointing at a block that is not there
            assert not await client.read_automations_by_name(name)


async def test_a_task_worker_leaves_the_failure_notifications_as_automations_apply_set_them(endpoint, real_prefect_server, tmp_path):
    """`task-worker` and `serve` apply greenapi-crashed-runs as they start (cli.task_worker.serve_reports), and only it."""
    log = tmp_path / "task-worker.log"
    with log.open("w") as out:
        process = subprocess.Popen([CLI, "task-worker"], env=real_prefect_server, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        def started_or_exited() -> bool:
            assert process.poll() is None, f"task-worker exited {process.returncode}:\n{log.read_text()[-3000:]}"
            return "Starting task worker" in log.read_text()

        wait_until(started_or_exited, timeout=60, message=lambda: f"task-worker did not start:\n{log.read_text()[-3000:]}")
    finally:
        stop_process(process)
    async with get_client() as client:
        for name in (CRASHED_RUNS, *NOTIFICATION_AUTOMATIONS):
            assert await client.read_automations_by_name(name), name
