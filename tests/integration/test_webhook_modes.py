"""handle_account_change against each emulator mode GREEN-API has been reported to show: a webhookUrl set
(no peek, #1108's caveat), detach_webhook (GREEN-API's workaround, put back whatever happens, also after a
crash), a clear refused while a webhookUrl is set (#1107), a count of 0 on a full queue, MAX's /v3 apiUrl;
and the peek made while the count snapshot refreshes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prefect.blocks.system import Secret

from flows import Outcome
from tasks.webhook import detached_webhook_block_name, remembered_webhook
from tests.conftest import TEST_COUNT_REFRESH_SECONDS
from tests.helpers import detach_then_die, methods_called, run_flow, settings_client

pytestmark = pytest.mark.usefixtures("prefect_server")

HOOK_URL = "https://hooks.example/greenapi"
HOOK_TOKEN = "hook-token-" + "ab12" * 8


def _webhook_of(emulator, id_instance: int) -> tuple[str, str]:
    """The instance's webhookUrl and webhookUrlToken as the emulator holds them (its views never show the token)."""
    settings = emulator.state.settings(id_instance)
    return settings["webhookUrl"], settings["webhookUrlToken"]


def _seed_with_webhook(seed_instance, **fields):
    return seed_instance(webhook_url=HOOK_URL, settings={"webhookUrlToken": HOOK_TOKEN}, **fields)


async def test_the_peek_runs_while_the_count_snapshot_refreshes(emulator, seed_instance, greenapi_env):
    instance = seed_instance(notifications=5)
    greenapi_env(instance)

    state, report = await run_flow(reason="number_blocked")

    assert state.is_completed(), state.message
    assert report.verified_by == "count+peek" and report.caveat == ""
    calls = emulator.state.calls(instance=instance.id_instance)
    clear = next(c for c in calls if c["method"] == "clearWebhooksQueue")
    peek = next(c for c in calls if c["method"] == "receiveNotification" and c["seq"] > clear["seq"])
    count = next(c for c in calls if c["method"] == "getWebhooksCount" and c["seq"] > clear["seq"])
    # The peek started inside the count-refresh wait, not after it; the count still waited for a fresh snapshot.
    assert peek["started_at"] < clear["finished_at"] + TEST_COUNT_REFRESH_SECONDS
    assert peek["finished_at"] <= count["started_at"]
    assert count["started_at"] - clear["finished_at"] >= TEST_COUNT_REFRESH_SECONDS
    peek_step = next(s for s in report.steps if s.step == "peek (during the wait)")
    wait_step = next(s for s in report.steps if s.step == "wait (count-refresh)")
    assert peek_step.started_at < wait_step.started_at + timedelta(seconds=wait_step.seconds)  # the report shows it too


async def test_a_notification_the_peek_finds_means_not_empty_even_when_the_count_says_0(emulator, seed_instance, greenapi_env):
    # #1108: the count reads 0 whenever anything is queued; notifications keep arriving after the clear.
    instance = seed_instance(notifications=7, count_zero_at=1, arrival_rate_per_second=50)
    greenapi_env(instance)

    state, report = await run_flow(reason="account_changed", max_clear_attempts=1)

    assert state.is_failed() and report.outcome is Outcome.not_empty and not report.verified_empty
    assert report.count_after == 0 and report.clear_attempts == 1
    assert "a peek still found a notification (count 0)" in state.message


async def test_count_zero_on_a_full_queue_is_caught_by_the_peek_then_cleared(emulator, seed_instance, greenapi_env):
    instance = seed_instance(notifications=7, count_zero_at=1)
    greenapi_env(instance)

    state, report = await run_flow(reason="account_changed")

    assert state.is_completed(), state.message
    assert report.count_before == 0 and report.clear_attempts == 1 and report.verified_by == "count+peek"
    assert emulator.state.instance(instance.id_instance)["queue_length"] == 0


async def test_with_a_webhook_url_the_message_says_count_only_and_the_1108_caveat(emulator, seed_instance, greenapi_env):
    instance = _seed_with_webhook(seed_instance, notifications=4, count_zero_at=1)
    greenapi_env(instance)

    state, report = await run_flow(reason="account_changed")

    assert state.is_completed(), state.message
    assert report.verified_by == "count" and "receiveNotification" not in methods_called(emulator, instance.id_instance)
    for text in (state.message or report.message, report.message, report.caveat):
        assert "count only" in text and "#1108" in text and "read 0 on a full queue" in text
    assert report.webhook_detached is False and report.webhook_restored is None
    assert "setSettings" not in methods_called(emulator, instance.id_instance)


async def test_detach_webhook_clears_verifies_by_peek_and_puts_both_back(emulator, seed_instance, greenapi_env):
    instance = _seed_with_webhook(seed_instance, notifications=6, clear_fails_with_webhook_url=True)
    greenapi_env(instance)

    state, report = await run_flow(reason="number_blocked", detach_webhook=True)

    assert state.is_completed(), state.message
    assert report.outcome is Outcome.cleared and report.verified_by == "count+peek" and report.caveat == ""
    assert report.webhook_detached and report.webhook_restored is True and "put back" in report.message
    assert emulator.state.instance(instance.id_instance)["queue_length"] == 0
    assert _webhook_of(emulator, instance.id_instance) == (HOOK_URL, HOOK_TOKEN)
    calls = methods_called(emulator, instance.id_instance)
    assert calls.count("setSettings") == 2
    # Detached before the clear, put back after the verification.
    assert calls.index("setSettings") < calls.index("clearWebhooksQueue") < calls.index("receiveNotification")
    assert len(calls) - 1 - calls[::-1].index("setSettings") > calls.index("receiveNotification")
    assert await remembered_webhook(instance.id_instance) is None
    steps = [s.step for s in report.steps]
    assert steps[:3] == ["inspect", "detach webhook", "wait (webhook detached)"] and steps[-1] == "restore webhook"


async def test_detach_webhook_waits_for_the_empty_webhook_url_to_apply_before_peeking(emulator, seed_instance, greenapi_env):
    instance = _seed_with_webhook(seed_instance, notifications=3, settings_apply_delay_seconds=1.5)
    greenapi_env(instance, settings_apply_seconds=60)  # GetSettings read every second

    state, report = await run_flow(reason="number_blocked", detach_webhook=True)

    assert state.is_completed(), state.message
    waited = next(s for s in report.steps if s.step == "wait (webhook detached)")
    assert waited.seconds >= 1.0 and "applied" in waited.result
    # A peek while the webhookUrl was still set would answer null: the run only peeked once it read empty.
    calls = emulator.state.calls(instance=instance.id_instance)
    detached_at = next(c for c in calls if c["method"] == "setSettings")["finished_at"]
    assert all(c["started_at"] >= detached_at + 1.5 for c in calls if c["method"] == "receiveNotification")
    assert report.verified_by == "count+peek" and report.webhook_restored is True


async def test_detach_webhook_that_never_applies_gives_up_and_still_puts_it_back(emulator, seed_instance, greenapi_env):
    instance = _seed_with_webhook(seed_instance, notifications=3, settings_apply_delay_seconds=60)
    greenapi_env(instance, settings_apply_seconds=2)

    state, report = await run_flow(reason="number_blocked", detach_webhook=True)

    assert state.is_failed() and report.outcome is Outcome.gave_up_waiting
    assert "did not apply" in state.message and "clearWebhooksQueue" not in methods_called(emulator, instance.id_instance)
    assert report.webhook_restored is True and await remembered_webhook(instance.id_instance) is None
    emulator.state.advance_clock(61)  # both SetSettings apply, in order: the original values stand
    await _any_call()
    assert _webhook_of(emulator, instance.id_instance) == (HOOK_URL, HOOK_TOKEN)


async def _any_call():
    async with settings_client() as client:
        await client.get_settings()


@pytest.mark.parametrize("failing", ["clearWebhooksQueue", "receiveNotification"])
async def test_detach_webhook_puts_it_back_after_a_failure_in_between(emulator, seed_instance, greenapi_env, failing):
    instance = _seed_with_webhook(seed_instance, notifications=5)
    emulator.state.add_faults(instance.id_instance, [{"method": failing, "fault": {"kind": "status", "status": 400}, "times": None}])
    greenapi_env(instance)

    state, report = await run_flow(reason="number_blocked", detach_webhook=True)

    assert state.is_failed() and report.outcome is Outcome.api_error
    assert f"{failing} on instance {instance.id_instance} failed: HTTP 400" in state.message
    assert report.webhook_restored is True and report.steps[-1].step == "restore webhook"
    assert _webhook_of(emulator, instance.id_instance) == (HOOK_URL, HOOK_TOKEN)
    assert await remembered_webhook(instance.id_instance) is None


async def test_a_crash_between_detach_and_restore_is_put_back_by_the_next_run(emulator, seed_instance, greenapi_env):
    instance = _seed_with_webhook(seed_instance, notifications=5)
    greenapi_env(instance)
    detached = await detach_then_die(emulator)
    assert detached.detached and _webhook_of(emulator, instance.id_instance) == ("", HOOK_TOKEN)
    block = await Secret.aload(detached_webhook_block_name(instance.id_instance))
    assert block.get() == {"webhookUrl": HOOK_URL, "webhookUrlToken": HOOK_TOKEN}

    state, report = await run_flow(reason="number_blocked")  # a new run, without detach_webhook

    assert state.is_completed(), state.message
    # It worked on the detached instance (so it could peek), then put the webhook back after its own work.
    assert report.verified_by == "count+peek" and report.webhook_detached and report.webhook_restored is True
    assert [s.step for s in report.steps][-1] == "restore webhook"
    assert _webhook_of(emulator, instance.id_instance) == (HOOK_URL, HOOK_TOKEN)
    assert await remembered_webhook(instance.id_instance) is None


async def test_a_webhook_url_set_since_the_crash_is_left_alone(emulator, seed_instance, greenapi_env):
    instance = _seed_with_webhook(seed_instance, notifications=2)
    greenapi_env(instance)
    await detach_then_die(emulator)
    emulator.state.patch_instance(instance.id_instance, {"webhook_url": "https://new.example/hook"})

    state, report = await run_flow(reason="number_blocked")

    assert state.is_completed(), state.message
    assert _webhook_of(emulator, instance.id_instance)[0] == "https://new.example/hook"
    assert report.webhook_restored is None and await remembered_webhook(instance.id_instance) is None


async def test_a_clear_refused_while_a_webhook_url_is_set_points_to_detach_webhook(emulator, seed_instance, greenapi_env):
    instance = _seed_with_webhook(seed_instance, notifications=6, clear_fails_with_webhook_url=True)
    greenapi_env(instance)

    state, report = await run_flow(reason="number_blocked")

    assert state.is_failed() and report.outcome is Outcome.clear_refused
    assert "webhookUrl is set" in state.message and "#1107" in state.message and "detach_webhook" in state.message
    assert emulator.state.instance(instance.id_instance)["queue_length"] == 6
    assert "setSettings" not in methods_called(emulator, instance.id_instance)


async def test_a_max_instance_works_with_an_api_url_ending_in_v3(emulator, seed_instance, greenapi_env):
    instance = seed_instance(notifications=4, type_instance="v3", v3_prefix_required=True)
    greenapi_env(instance, api_url=emulator.url + "/v3/")

    state, report = await run_flow(reason="account_changed")

    assert state.is_completed(), state.message
    assert report.verified_by == "count+peek" and emulator.state.instance(instance.id_instance)["queue_length"] == 0
    assert all(c["status"] == 200 for c in emulator.state.calls(instance=instance.id_instance))
