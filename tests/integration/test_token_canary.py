"""The token (and a webhookUrlToken) never shows up: not in the Prefect database, logs, events, artifacts,
output or the emulator's log. Each test makes one kind of run (passing, or failing one way) with canaries
for both, checks the run did what it claims, then searches everything for them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from tests.helpers import database_dump_text, detach_then_die, every_log_record, flush_runs_to_server, register_seeded, run_flow

pytestmark = pytest.mark.usefixtures("prefect_server")

CANARY = "CANARYtoken" + "5eC7e7" * 7  # shaped like a real apiTokenInstance
HOOK_CANARY = "HOOKcanary" + "7oKe9a" * 6  # a webhookUrlToken: the user's webhook server's secret
HOOK = dict(webhook_url="https://hooks.example/greenapi", settings={"webhookUrlToken": HOOK_CANARY})
STATUS_502 = {"kind": "status", "status": 502, "body": "<html>502 Bad Gateway</html>", "content_type": "text/html"}


@dataclass(frozen=True)
class Run:
    """A run with the canaries: the instance's seed, emulator faults, GREEN_API_* settings and flow parameters;
    the (state, outcome) it ends in; and text it leaves in the database and the logs ("{id}": its idInstance),
    so that the search for the canaries is a search through that run's traces."""

    seed: dict
    ends: tuple[str, str]
    faults: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    flow: dict = field(default_factory=dict)
    in_database: tuple[str, ...] = ()
    in_logs: tuple[str, ...] = ()


DETACH_TRACES = dict(in_database=("greenapi.webhook.detached", "greenapi.webhook.restored"), in_logs=("put back", "detach"))

RUNS = {
    "passes": Run(dict(token=CANARY, notifications=5), ("COMPLETED", "cleared"),
                  in_logs=("Instance {id}: incoming notification queue cleared", "/waInstance{id}/clearWebhooksQueue/***")),
    "waits_out_left_time": Run(dict(token=CANARY, notifications=2, cleared_seconds_ago=2), ("COMPLETED", "cleared")),
    # The configured canary is not the instance's token.
    "is_refused_the_token": Run(dict(notifications=5), ("FAILED", "api_error"), in_database=("401 unauthorized",)),
    "gives_up_on_server_errors": Run(dict(token=CANARY, notifications=1), ("FAILED", "api_error"),
                                     faults=[{"method": "*", "fault": STATUS_502, "times": None}], settings={"max_retries": "1"},
                                     in_database=("gave up after 2 attempts",), in_logs=("HTTP 502",)),
    "times_out": Run(dict(token=CANARY, notifications=1), ("FAILED", "api_error"),
                     faults=[{"method": "getStateInstance", "fault": {"kind": "delay", "seconds": 1.5}, "times": None}],
                     settings={"timeout_seconds": "0.3", "max_retries": "1"}),
    "reads_a_non_json_count": Run(dict(token=CANARY, notifications=1), ("FAILED", "api_error"),
                                  faults=[{"method": "getWebhooksCount", "fault": {"kind": "non_json"}, "times": None}]),
    "is_refused_the_clear": Run(dict(token=CANARY, notifications=1, refuse_clears={"reason": "internal error"}), ("FAILED", "clear_refused")),
    # The webhookUrlToken passes through GetSettings, a Secret block and SetSettings, and back.
    "detaches_the_webhook": Run(dict(token=CANARY, notifications=3, clear_fails_with_webhook_url=True, **HOOK), ("COMPLETED", "cleared"),
                                flow=dict(detach_webhook=True), **DETACH_TRACES),
    "fails_with_the_webhook_detached": Run(dict(token=CANARY, notifications=3, **HOOK), ("FAILED", "api_error"),
                                           faults=[{"method": "clearWebhooksQueue", "fault": {"kind": "status", "status": 400}, "times": None}],
                                           flow=dict(detach_webhook=True), **DETACH_TRACES),
    "counts_with_a_webhook_set": Run(dict(token=CANARY, notifications=2, **HOOK), ("COMPLETED", "cleared")),
}


@pytest.fixture
def every_log_line():
    with every_log_record() as stream:
        yield stream


@pytest.fixture
def canary_env(greenapi_env, monkeypatch):
    """``greenapi_env`` for the instance, with the token canary as the configured token."""
    def use(instance, **settings):
        greenapi_env(instance, **settings)
        monkeypatch.setenv("GREEN_API_API_TOKEN_INSTANCE", CANARY)
    return use


async def assert_no_canary(id_instance, *, prefect_server, emulator, capfd, every_log_line, in_database=(), in_logs=()):
    """Neither canary in Prefect's database (once the run's events are stored), this process's output and logs,
    or the emulator's call log and views; the run's own traces (``in_database``, ``in_logs``) are there."""
    await flush_runs_to_server(prefect_server, [id_instance])
    database = database_dump_text(prefect_server)
    for text in (f"greenapi.instance.{id_instance}", *in_database):
        assert text in database
    assert CANARY not in database and HOOK_CANARY not in database

    captured = capfd.readouterr()
    for canary in (CANARY, HOOK_CANARY):
        assert canary not in captured.out and canary not in captured.err
    logs = every_log_line.getvalue()
    for text in in_logs:
        assert text.format(id=id_instance) in logs
    assert CANARY not in logs and HOOK_CANARY not in logs
    emulator_log = json.dumps(emulator.state.calls()) + json.dumps(emulator.state.instances())
    assert CANARY not in emulator_log and HOOK_CANARY not in emulator_log


def set_settings_answered(emulator, id_instance: int) -> int:
    return sum(1 for call in emulator.state.calls(instance=id_instance, method="setSettings") if call["status"] == 200)


@pytest.mark.parametrize("name", RUNS)
async def test_no_trace_of_the_tokens_after_a_run_that(name, prefect_server, emulator, seed_instance, canary_env, capfd, every_log_line):
    run = RUNS[name]
    instance = seed_instance(**run.seed)
    if run.faults:
        emulator.state.add_faults(instance.id_instance, run.faults)
    canary_env(instance, **run.settings)

    state, report = await run_flow(reason="number_blocked", **run.flow)

    assert (state.type.value, report.outcome.value) == run.ends
    if "webhook_url" in run.seed:  # the canary was really there to leak: the instance has it back
        assert emulator.state.settings(instance.id_instance)["webhookUrlToken"] == HOOK_CANARY
        assert set_settings_answered(emulator, instance.id_instance) == (2 if run.flow.get("detach_webhook") else 0)
    await assert_no_canary(instance.id_instance, prefect_server=prefect_server, emulator=emulator, capfd=capfd,
                           every_log_line=every_log_line, in_database=run.in_database, in_logs=run.in_logs)


async def test_no_trace_of_the_tokens_after_a_crash_between_detach_and_restore_and_the_next_run(
        prefect_server, emulator, seed_instance, canary_env, capfd, every_log_line):
    crashed = seed_instance(token=CANARY, notifications=2, **HOOK)
    canary_env(crashed)
    assert (await detach_then_die(emulator)).detached
    # The remembered webhookUrlToken waits in a Secret block, encrypted, for the next run.
    assert HOOK_CANARY not in database_dump_text(prefect_server)

    state, report = await run_flow(reason="number_blocked")

    assert (state.type.value, report.outcome.value, report.webhook_restored) == ("COMPLETED", "cleared", True)
    assert set_settings_answered(emulator, crashed.id_instance) == 2  # detached and put back: the token travelled
    assert emulator.state.settings(crashed.id_instance)["webhookUrlToken"] == HOOK_CANARY
    await assert_no_canary(crashed.id_instance, prefect_server=prefect_server, emulator=emulator, capfd=capfd,
                           every_log_line=every_log_line, in_database=DETACH_TRACES["in_database"])


async def test_no_trace_of_the_token_after_a_run_on_a_registered_block(prefect_server, emulator, seed_instance, canary_env,
                                                                        capfd, every_log_line):
    """The block path: Prefect stores the block's secret, encrypted."""
    instance = seed_instance(token=CANARY, notifications=3)
    canary_env(instance)
    await register_seeded(instance, emulator, name="canary-block")

    state, _ = await run_flow(reason="account_changed", instance="canary-block")

    assert state.type.value == "COMPLETED"
    await assert_no_canary(instance.id_instance, prefect_server=prefect_server, emulator=emulator, capfd=capfd,
                           every_log_line=every_log_line)
