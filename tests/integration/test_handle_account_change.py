"""handle_account_change against the emulator over loopback, on the session's Prefect server."""

from __future__ import annotations

import asyncio
import importlib
import logging
import time

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

from flows import Outcome, handle_account_change
from instances import GreenApiInstance
from flows.limits import INSTANCE_LOCK_TIMEOUT_SECONDS
from tests.conftest import TEST_CLEAR_WINDOW_SECONDS, TEST_COUNT_REFRESH_SECONDS
from tests.helpers import await_until, every_log_record, methods_called, run_flow, slots_taken, task_runs_of

pytestmark = pytest.mark.usefixtures("prefect_server")

HAPPY_PATH_CALLS = [
    "getStateInstance",
    "getSettings",
    "getWebhooksCount",
    "getMessagesCount",
    "clearMessagesQueue",  # after a block, the messages not yet sent too
    "clearWebhooksQueue",
    "receiveNotification",  # the peek, while the count snapshot refreshes
    "getWebhooksCount",
]


async def test_happy_path_clears_verifies_and_makes_no_extra_calls(emulator, seed_instance, greenapi_env):
    instance = seed_instance(state="blocked", notifications=17, outgoing_messages=2)
    greenapi_env(instance)

    state, report = await run_flow(reason="number_blocked")

    assert state.is_completed(), state.message
    assert report.outcome is Outcome.cleared and report.verified_empty
    assert (report.count_before, report.count_after, report.clear_attempts) == (17, 0, 1)
    assert report.state_instance == "blocked" and report.verified_by == "count+peek"
    assert report.outgoing_count == 2 and report.outgoing_cleared
    assert emulator.state.instance(instance.id_instance)["queue_length"] == 0
    assert emulator.state.instance(instance.id_instance)["outgoing_messages"] == 0
    assert methods_called(emulator, instance.id_instance) == HAPPY_PATH_CALLS

    task_names = [run.name for run in await task_runs_of(state.state_details.flow_run_id)]
    for step in ("inspect-instance", "count-notifications", "clear-notifications", "wait-count-refresh", "verify-empty"):
        assert f"{step}-{instance.id_instance}" in task_names


async def test_verification_waits_for_a_count_snapshot_taken_after_the_clear(emulator, seed_instance, greenapi_env):
    instance = seed_instance(notifications=5)
    greenapi_env(instance)

    state, report = await run_flow(reason="account_changed")

    assert state.is_completed(), state.message
    calls = emulator.state.calls(instance=instance.id_instance)
    clear = next(c for c in calls if c["method"] == "clearWebhooksQueue")
    counts_after = [c for c in calls if c["method"] == "getWebhooksCount" and c["seq"] > clear["seq"]]
    assert len(counts_after) == 1
    # Any earlier and the snapshot could still show the 5 notifications that were just cleared.
    assert counts_after[0]["started_at"] - clear["finished_at"] >= TEST_COUNT_REFRESH_SECONDS
    assert report.waited_seconds == pytest.approx(TEST_COUNT_REFRESH_SECONDS)


async def test_left_time_is_waited_exactly_then_the_clear_succeeds(emulator, seed_instance, greenapi_env):
    # A 10 s window cleared 4 s ago: the run's first clear is inside it even when the machine is slow to start it.
    emulator.state.set_config({"clear_window_seconds": 10})
    instance = seed_instance(notifications=8, cleared_seconds_ago=4)
    greenapi_env(instance, clear_interval_seconds=10)

    state, report = await run_flow(reason="account_changed")

    assert state.is_completed(), state.message
    clears = [c for c in emulator.state.calls(instance=instance.id_instance) if c["method"] == "clearWebhooksQueue"]
    assert [c["body_summary"].get("isCleared") for c in clears] == [False, True]
    left_time = clears[0]["body_summary"]["leftTime"]
    assert 1 <= left_time <= 6  # what was left of the window when the clear came
    left_time_waits = [s for s in report.steps if s.step == "wait (left-time)"]
    assert len(left_time_waits) == 1 and left_time_waits[0].result == f"{left_time + 0.5:.1f} s"
    gap = clears[1]["started_at"] - clears[0]["finished_at"]
    assert left_time <= gap <= left_time + 1.0 + 0.5  # the server's wait, plus at most the margin and scheduling
    assert report.clear_attempts == 2 and report.verified_empty


async def test_stale_zero_count_is_caught_by_the_peek(emulator, seed_instance, greenapi_env):
    instance = seed_instance(notifications=9, count_snapshot=0)
    emulator.state.set_config({"count_refresh_seconds": 30})
    greenapi_env(instance, count_refresh_seconds="1")

    state, report = await run_flow(reason="account_changed")

    # The snapshot keeps saying 0 for 30 s; only the peek knows better.
    assert report.count_before == 0
    assert "receiveNotification" in methods_called(emulator, instance.id_instance)[:5]
    assert report.clear_attempts == 1 and state.is_completed(), state.message
    assert emulator.state.instance(instance.id_instance)["queue_length"] == 0


async def test_already_empty_queue_is_not_cleared(emulator, seed_instance, greenapi_env):
    instance = seed_instance(notifications=0)
    greenapi_env(instance)

    state, report = await run_flow(reason="number_blocked")

    assert state.is_completed(), state.message
    assert report.outcome is Outcome.already_empty and report.clear_attempts == 0
    assert "clearWebhooksQueue" not in methods_called(emulator, instance.id_instance)


async def test_with_a_webhook_url_it_verifies_by_count_and_never_peeks(emulator, seed_instance, greenapi_env):
    instance = seed_instance(notifications=0, webhook_url="https://hooks.example/greenapi")
    greenapi_env(instance)

    state, report = await run_flow(reason="account_changed")

    assert state.is_completed(), state.message
    # Count 0 is not proof without a peek, so it clears anyway.
    assert report.clear_attempts == 1 and report.verified_by == "count"
    assert "receiveNotification" not in methods_called(emulator, instance.id_instance)


def _observed(instance, *, seconds_ago: float):
    """The sweep's inspection of ``instance`` (as it hands it to the run), made ``seconds_ago``."""
    from datetime import datetime, timedelta, timezone

    from tasks.results import InstanceInfo

    return InstanceInfo(id_instance=instance.id_instance, state_instance="blocked", wid="79990001111@c.us",
                        webhook_url_set=False, checked_at=datetime.now(timezone.utc) - timedelta(seconds=seconds_ago))


async def test_the_sweeps_inspection_stands_for_a_run_started_moments_after_it(emulator, seed_instance, greenapi_env):
    instance = seed_instance(state="blocked", notifications=3)
    greenapi_env(instance)

    state, report = await run_flow(reason="number_blocked", observed=_observed(instance, seconds_ago=1))

    assert state.is_completed(), state.message
    assert methods_called(emulator, instance.id_instance)[:2] == ["getWebhooksCount", "getMessagesCount"]  # no inspection
    assert report.wid == "79990001111@c.us"  # the sweep's


async def test_a_run_started_long_after_the_sweeps_inspection_inspects_again(emulator, seed_instance, greenapi_env):
    from domain.changes import OBSERVATION_STANDS_FOR

    instance = seed_instance(state="blocked", notifications=3, wid="79990002222@c.us")
    greenapi_env(instance)

    stale = _observed(instance, seconds_ago=OBSERVATION_STANDS_FOR.total_seconds() + 1)
    state, report = await run_flow(reason="number_blocked", observed=stale)

    assert state.is_completed(), state.message
    assert methods_called(emulator, instance.id_instance)[:2] == ["getStateInstance", "getSettings"]
    assert report.wid == "79990002222@c.us"  # what GREEN-API said now, not the sweep's 79990001111@c.us


@pytest.mark.parametrize(("reason", "parameters", "outgoing"), [
    ("number_blocked", {}, (4, True, 0)),  # GREEN-API advises it after a block
    ("number_blocked", {"clear_outgoing": False}, (4, False, 4)),
    ("account_changed", {}, (4, False, 4)),
], ids=["after-a-block", "after-a-block-turned-off", "after-an-account-change"])
async def test_outgoing_is_cleared_after_a_block_unless_turned_off(emulator, seed_instance, greenapi_env, reason, parameters, outgoing):
    """``outgoing``: the count the run saw, whether it cleared them, and what the instance holds after."""
    instance = seed_instance(notifications=3, outgoing_messages=4)
    greenapi_env(instance)

    state, report = await run_flow(reason=reason, **parameters)

    assert state.is_completed(), state.message
    left = emulator.state.instance(instance.id_instance)["outgoing_messages"]
    assert (report.outgoing_count, report.outgoing_cleared, left) == outgoing


async def test_refused_clear_fails_with_the_reason(emulator, seed_instance, greenapi_env):
    instance = seed_instance(notifications=6, refuse_clears={"reason": "queue is locked by webhook delivery"})
    greenapi_env(instance)

    state, report = await run_flow(reason="number_blocked")

    assert state.is_failed()
    assert report.outcome is Outcome.clear_refused and not report.verified_empty
    assert "queue is locked by webhook delivery" in state.message
    assert emulator.state.instance(instance.id_instance)["queue_length"] == 6


async def test_transient_server_errors_recover_within_the_retry_budget(emulator, seed_instance, greenapi_env):
    instance = seed_instance(notifications=4)
    emulator.state.add_faults(instance.id_instance, [
        {"method": "getWebhooksCount", "fault": {"kind": "status", "status": 502, "body": "<html><h1>502 Bad Gateway</h1></html>", "content_type": "text/html"}, "times": 2},
        {"method": "clearWebhooksQueue", "fault": {"kind": "status", "status": 429, "body": "{}"}, "times": 1},
    ])
    greenapi_env(instance)

    state, report = await run_flow(reason="number_blocked")

    assert state.is_completed(), state.message
    statuses = [(c["method"], c["status"]) for c in emulator.state.calls(instance=instance.id_instance)]
    assert statuses.count(("getWebhooksCount", 502)) == 2 and statuses.count(("clearWebhooksQueue", 429)) == 1
    assert report.clear_attempts == 1  # a 429 retried inside the client is still one clear step


async def test_wrong_token_fails_fast_with_a_clear_message(emulator, seed_instance, greenapi_env):
    instance = seed_instance(notifications=3)
    greenapi_env(instance)
    greenapi_env.__call__  # the token below replaces the seeded one
    import os

    os.environ["GREEN_API_API_TOKEN_INSTANCE"] = "wrong" + instance.token[5:]
    started = time.monotonic()
    state, report = await run_flow(reason="number_blocked")
    elapsed = time.monotonic() - started

    assert state.is_failed() and report.outcome is Outcome.api_error
    assert "401" in state.message and "getStateInstance" in state.message and str(instance.id_instance) in state.message
    assert len(emulator.state.calls(instance=instance.id_instance)) == 1  # 401 is never retried
    assert elapsed < 10


async def test_notifications_that_keep_arriving_end_bounded_and_honest(emulator, seed_instance, greenapi_env):
    instance = seed_instance(notifications=10, arrival_rate_per_second=4)
    greenapi_env(instance)

    state, report = await run_flow(reason="account_changed", max_clear_attempts=2)

    assert state.is_failed() and report.outcome is Outcome.not_empty and not report.verified_empty
    assert report.clear_attempts == 2 and report.count_after > 0
    assert f"{report.count_after} notification(s) still counted" in state.message
    clears = [c for c in emulator.state.calls(instance=instance.id_instance) if c["method"] == "clearWebhooksQueue"]
    assert all(c["body_summary"]["isCleared"] for c in clears)  # never inside the window
    assert clears[1]["started_at"] - clears[0]["finished_at"] >= TEST_CLEAR_WINDOW_SECONDS
    assert emulator.state.violations(kind="clear_inside_window") == []


async def test_the_run_publishes_an_artifact_with_the_steps(emulator, seed_instance, greenapi_env):
    instance = seed_instance(notifications=2)
    greenapi_env(instance)

    state, report = await run_flow(reason="number_blocked")

    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as client:
        artifacts = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"queue-reset-{instance.id_instance}"])))
    assert len(artifacts) == 1
    markdown = artifacts[0].data
    assert f"instance {instance.id_instance}: verified empty" in markdown
    assert "| clear | cleared |" in markdown.replace("| 5 ", "| ").replace("| 4 ", "| ") or "clear | cleared" in markdown
    assert artifacts[0].flow_run_id == state.state_details.flow_run_id


async def test_a_named_block_supplies_the_credentials(emulator, seed_instance, greenapi_env, monkeypatch):
    from instances import GreenApiInstance

    instance = seed_instance(notifications=3)
    greenapi_env(instance)
    monkeypatch.delenv("GREEN_API_ID_INSTANCE")
    monkeypatch.delenv("GREEN_API_API_TOKEN_INSTANCE")
    await GreenApiInstance(api_url=emulator.url + "/", id_instance=instance.id_instance, api_token_instance=instance.token).asave(
        f"test-{instance.id_instance}", overwrite=True
    )

    state, report = await run_flow(reason="account_changed", instance=f"test-{instance.id_instance}")

    assert state.is_completed(), state.message
    assert report.id_instance == instance.id_instance
    # Started with a block name, the run is named by the idInstance once it has read the block.
    async with get_client() as client:
        run = await client.read_flow_run(state.state_details.flow_run_id)
    assert run.name == f"account_changed-{instance.id_instance}"


async def test_a_run_waiting_for_another_runs_hold_says_which_run_and_how_long(emulator, seed_instance, greenapi_env):
    import asyncio

    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    # Cleared just now: the first run waits out leftTime holding the instance, long enough to be waited for.
    instance = seed_instance(notifications=3, cleared_seconds_ago=0)
    greenapi_env(instance)

    def run_in_own_loop():  # each run in its own thread and event loop, as two workers would run them
        return asyncio.to_thread(asyncio.run, run_flow(reason="number_blocked"))

    with every_log_record() as log:
        first = asyncio.ensure_future(run_in_own_loop())
        # Until the first run holds the instance (the limit is created by the first run).
        await await_until(lambda: slots_taken(instance.id_instance), timeout=30, interval=0.1, message="the first run never took the instance")
        (first_state, _), (second_state, _) = await asyncio.wait_for(asyncio.gather(first, run_in_own_loop()), 120)

    assert first_state.is_completed() and second_state.is_completed()
    await asyncio.to_thread(APILogWorker.drain_all, timeout=15)  # the runs' logs, sent
    holder, waiter = first_state.state_details.flow_run_id, second_state.state_details.flow_run_id
    async with get_client() as client:
        waits = {run_id: [log.message for log in await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
                          if "is held by" in log.message] for run_id in (holder, waiter)}
    assert len(waits[waiter]) == 1 and not waits[holder]
    assert f"run number_blocked-{instance.id_instance} ({holder})" in waits[waiter][0]
    assert f"waiting for it {INSTANCE_LOCK_TIMEOUT_SECONDS:.0f} s at most" in waits[waiter][0]
    assert " ERROR " not in log.getvalue()  # waiting one's turn is no error (a timed-out take is Prefect's ERROR line)


async def test_a_missing_block_fails_with_a_one_line_reason(greenapi_env):
    state = await __import__("flows").handle_account_change(reason="account_changed", instance="no-such-block", return_state=True)
    assert state.is_failed()
    assert "no greenapi-instance block named 'no-such-block'" in state.message


async def _run_logs(flow_run_id, *, until: str, timeout: float = 20):
    """The run's logs (its task runs' included) as the Prefect server has them. They are sent in the
    background, so read until an ERROR line with ``until`` is there (the flow run's last line)."""
    logs = []

    async def logged() -> bool:
        nonlocal logs
        async with get_client() as client:
            logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        return any(until in log.message and log.level >= logging.ERROR for log in logs)

    await await_until(logged, timeout=timeout, interval=0.2,
                      message=lambda: f"no log line of run {flow_run_id} with {until!r}; found: {[log.message for log in logs]}")
    return logs


@pytest.mark.parametrize("failure", ["refused-token", "no-such-block"])
async def test_an_expected_failure_logs_one_error_line_and_no_traceback(emulator, seed_instance, greenapi_env, failure):
    canary = "CANARYlogs" + "7c" * 20
    instance = seed_instance(notifications=3)
    greenapi_env(instance)
    name = f"logs-{instance.id_instance}"
    if failure == "refused-token":  # the block's token is not the instance's: GREEN-API answers 401
        await GreenApiInstance(api_url=emulator.url, id_instance=instance.id_instance, api_token_instance=canary).asave(name, overwrite=True)
        expected = f"the apiTokenInstance was refused for idInstance {instance.id_instance}"
    else:
        expected = f"no greenapi-instance block named {name!r}"

    state = await handle_account_change(reason="number_blocked", instance=name, return_state=True)

    assert state.is_failed() and expected in state.message
    logs = await _run_logs(state.state_details.flow_run_id, until="Finished in state Failed")
    errors = [log.message for log in logs if log.level >= logging.ERROR]
    assert len(errors) == 1 and expected in errors[0] and "Finished in state Failed" in errors[0], errors
    assert not [log.message for log in logs if "Traceback" in log.message or canary in log.message]


async def test_an_unexpected_error_still_raises_with_its_traceback(greenapi_env, monkeypatch):
    module = importlib.import_module("flows.handle_account_change")  # the package's attribute is the flow itself

    async def broken(instance, settings):
        raise RuntimeError("a bug")

    monkeypatch.setattr(module, "resolve_credentials", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        await handle_account_change(reason="number_blocked", instance="any")


async def test_a_window_opened_by_an_earlier_run_is_respected(emulator, seed_instance, greenapi_env):
    # A window long enough that three runs fit in it on a slow, busy machine (the test window is 3 s).
    emulator.state.set_config({"clear_window_seconds": 15})
    instance = seed_instance(notifications=4, webhook_url="https://hooks.example/greenapi")
    greenapi_env(instance, clear_interval_seconds=15)
    first_state, first = await run_flow(reason="number_blocked")
    assert first_state.is_completed() and first.clear_attempts == 1

    # Count 0 right after: the earlier clear is known, so no clear is sent inside its window.
    second_state, second = await run_flow(reason="number_blocked")
    assert second_state.is_completed() and second.outcome is Outcome.already_empty
    assert second.clear_attempts == 0 and "an earlier run cleared the queue" in second.message and "open" in second.message

    # New notifications inside the window: the run waits for the window to close, then clears.
    emulator.state.patch_instance(instance.id_instance, {"add_notifications": 3})
    emulator.state.advance_clock(TEST_COUNT_REFRESH_SECONDS)  # the count snapshot shows them
    third_state, third = await run_flow(reason="number_blocked")
    assert third_state.is_completed(), third_state.message
    assert [s.step for s in third.steps].count("wait (clear-window)") == 1
    clears = [c for c in emulator.state.calls(instance=instance.id_instance) if c["method"] == "clearWebhooksQueue"]
    assert [c["body_summary"]["isCleared"] for c in clears] == [True, True]
    assert emulator.state.violations(kind="clear_inside_window") == []
