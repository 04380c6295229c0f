"""The token (and a webhookUrlToken) never shows up: not in the Prefect database, logs, events, artifacts, output or the emulator's log."""

from __future__ import annotations

import asyncio
import json

import pytest

from greenapi import GreenAPIClient, InstanceCredentials, get_settings
from tasks.webhook import detach_webhook
from tests.helpers import database_dump_text, every_log_record, flush_runs_to_server, run_flow

pytestmark = pytest.mark.usefixtures("prefect_server")

CANARY = "CANARYtoken" + "5eC7e7" * 7  # shaped like a real apiTokenInstance
HOOK_CANARY = "HOOKcanary" + "7oKe9a" * 6  # a webhookUrlToken: the user's webhook server's secret
HOOK = dict(webhook_url="https://hooks.example/greenapi", settings={"webhookUrlToken": HOOK_CANARY})


@pytest.fixture
def every_log_line():
    with every_log_record() as stream:
        yield stream


async def test_canary_token_appears_nowhere(prefect_server, emulator, seed_instance, greenapi_env, capfd, every_log_line, monkeypatch):
    from instances import GreenApiInstance

    scenarios = {
        "passes": dict(seed=dict(token=CANARY, notifications=5), settings={}),
        "left_time_then_passes": dict(seed=dict(token=CANARY, notifications=2, cleared_seconds_ago=2), settings={}),
        "wrong_token_401": dict(seed=dict(notifications=5), settings={}),  # the configured canary is not the instance's token
        "server_errors_give_up": dict(
            seed=dict(token=CANARY, notifications=1),
            faults=[{"method": "*", "fault": {"kind": "status", "status": 502, "body": "<html>502 Bad Gateway</html>", "content_type": "text/html"}, "times": None}],
            settings={"max_retries": "1"},
        ),
        "timeout": dict(
            seed=dict(token=CANARY, notifications=1),
            faults=[{"method": "getStateInstance", "fault": {"kind": "delay", "seconds": 1.5}, "times": None}],
            settings={"timeout_seconds": "0.3", "max_retries": "1"},
        ),
        "non_json": dict(seed=dict(token=CANARY, notifications=1), faults=[{"method": "getWebhooksCount", "fault": {"kind": "non_json"}, "times": None}], settings={}),
        "refused": dict(seed=dict(token=CANARY, notifications=1, refuse_clears={"reason": "internal error"}), settings={}),
        # The webhookUrlToken passes through GetSettings, a Secret block and SetSettings, and back.
        "detach_passes": dict(seed=dict(token=CANARY, notifications=3, clear_fails_with_webhook_url=True, **HOOK), settings={},
                              flow=dict(detach_webhook=True)),
        "detach_fails_between": dict(
            seed=dict(token=CANARY, notifications=3, **HOOK),
            faults=[{"method": "clearWebhooksQueue", "fault": {"kind": "status", "status": 400}, "times": None}],
            settings={}, flow=dict(detach_webhook=True),
        ),
        "webhook_count_only": dict(seed=dict(token=CANARY, notifications=2, **HOOK), settings={}),
    }
    outcomes = {}
    instances = []
    hooked = []  # instances whose settings hold the webhookUrlToken canary
    for name, scenario in scenarios.items():
        instance = seed_instance(**scenario["seed"])
        for rule in scenario.get("faults", []):
            emulator.state.add_faults(instance.id_instance, [rule])
        greenapi_env(instance, **scenario["settings"])
        monkeypatch.setenv("GREEN_API_API_TOKEN_INSTANCE", CANARY)
        state, report = await run_flow(reason="number_blocked", **scenario.get("flow", {}))
        outcomes[name] = (state.type.value, report.outcome.value)
        instances.append(instance.id_instance)
        if "webhook_url" in scenario["seed"]:
            hooked.append(instance.id_instance)

    # A crash between detach and restore: the remembered token waits in a Secret block, encrypted, for the next run.
    crashed = seed_instance(token=CANARY, notifications=2, **HOOK)
    greenapi_env(crashed)
    async with GreenAPIClient(InstanceCredentials(api_url=emulator.url, id_instance=crashed.id_instance, api_token_instance=CANARY),
                              get_settings().client_config()) as client:
        assert (await detach_webhook(client)).detached
    await asyncio.sleep(1.0)  # the restart (GetSettings' 1/s limit is per process)
    assert HOOK_CANARY not in database_dump_text(prefect_server)
    state, report = await run_flow(reason="number_blocked")
    outcomes["crash_then_rerun"] = (state.type.value, report.outcome.value, report.webhook_restored)
    instances.append(crashed.id_instance)
    hooked.append(crashed.id_instance)

    # The block path too: its secret is stored by Prefect, encrypted.
    block_instance = seed_instance(token=CANARY, notifications=3)
    await GreenApiInstance(api_url=emulator.url, id_instance=block_instance.id_instance, api_token_instance=CANARY).asave(
        "canary-block", overwrite=True
    )
    state, _ = await run_flow(reason="account_changed", instance="canary-block")
    outcomes["block"] = (state.type.value, "")
    instances.append(block_instance.id_instance)

    # The scenarios did what they claim, so the search below covers both passing and failing runs.
    assert outcomes["passes"] == ("COMPLETED", "cleared")
    assert outcomes["left_time_then_passes"] == ("COMPLETED", "cleared")
    assert outcomes["block"][0] == "COMPLETED"
    for failing in ("wrong_token_401", "server_errors_give_up", "timeout", "non_json"):
        assert outcomes[failing] == ("FAILED", "api_error"), failing
    assert outcomes["refused"] == ("FAILED", "clear_refused")
    assert outcomes["detach_passes"] == ("COMPLETED", "cleared")
    assert outcomes["detach_fails_between"] == ("FAILED", "api_error")
    assert outcomes["webhook_count_only"] == ("COMPLETED", "cleared")
    assert outcomes["crash_then_rerun"] == ("COMPLETED", "cleared", True)
    setsettings = [c for c in emulator.state.calls(method="setSettings") if c["status"] == 200]
    assert len(setsettings) == 2 * 2 + 2  # detach and restore, twice, and the crashed run's pair: the token travelled

    await flush_runs_to_server(prefect_server, instances)
    database = database_dump_text(prefect_server)
    # The search is real: the database holds these runs' logs and events.
    assert "gave up after 2 attempts" in database and "401 unauthorized" in database
    assert f"greenapi.instance.{instances[0]}" in database
    assert "greenapi.webhook.restored" in database and "greenapi.webhook.detached" in database
    assert CANARY not in database and HOOK_CANARY not in database

    captured = capfd.readouterr()
    assert CANARY not in captured.out and CANARY not in captured.err
    assert HOOK_CANARY not in captured.out and HOOK_CANARY not in captured.err
    logs = every_log_line.getvalue()
    assert f"Instance {instances[0]}: incoming notification queue cleared" in logs and "HTTP 502" in logs
    assert f"/waInstance{instances[0]}/clearWebhooksQueue/***" in logs  # httpx logged its URLs, redacted
    assert "put back" in logs and "detach" in logs
    assert CANARY not in logs and HOOK_CANARY not in logs
    emulator_log = json.dumps(emulator.state.calls()) + json.dumps(emulator.state.instances())
    assert CANARY not in emulator_log and HOOK_CANARY not in emulator_log
    # The canary was really there to leak: every detached instance has it back.
    for id_instance in hooked:
        assert emulator.state.settings(id_instance)["webhookUrlToken"] == HOOK_CANARY
