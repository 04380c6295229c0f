"""The receiver as a relay, over loopback HTTP: GREEN-API's side is this test (POSTing as GREEN-API does), the
app is an HttpCatcher, GetSettings goes to the emulator. Prefect's side is in memory (no server needed here);
the relay on a real Prefect server, fed by the emulator's own deliveries, is in tests/e2e/test_delivery_scenarios.py.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from greenapi import GreenAPIClient, InstanceCredentials, get_settings
from receiver.relay import AccountChecker
from receiver.server import ReceiverServer
from receiver.settings import ReceiverLimits, get_receiver_settings
from tests.helpers import HttpCatcher, MemoryRegistry, MemoryWidStore, RecordingEmitter, every_log_record, wait_until
from bench.servers import free_port

SECRET = "CANARYrelaysecret" + "5a" * 12
APP_TOKEN = "CANARYapptoken" + "6b" * 12
OLD, NEW = "71230000001@c.us", "71230000002@c.us"


def _message(id_instance: int, wid: str, *, age_seconds: float = 0.0, id_message: str = "M1") -> dict:
    return {"typeWebhook": "incomingMessageReceived",
            "instanceData": {"idInstance": id_instance, "wid": wid, "typeInstance": "whatsapp"},
            "timestamp": int(time.time() - age_seconds), "idMessage": id_message,
            "senderData": {"chatId": "79995550000@c.us"}, "messageData": {"typeMessage": "textMessage",
                                                                        "textMessageData": {"textMessage": "private words"}}}


def _at_most_once_a_second(calls: list[dict]) -> bool:
    """GetSettings as the relay may ask it: at least once, never two within a second (GREEN-API's limit), so never
    one per notification."""
    starts = sorted(c["started_at"] for c in calls)
    return bool(starts) and all(later - earlier >= 0.99 for earlier, later in zip(starts, starts[1:]))


class RelayUnderTest:
    """A relay in a thread with in-memory Prefect stand-ins; what it handed over and recorded stays readable."""

    def __init__(self, emulator, app_url: str, *, tokens: dict[int, str], recorded: dict[int, str] | None = None,
                 forward_timeout: float = 5.0) -> None:
        self.emitter, self.wids = RecordingEmitter(), MemoryWidStore(recorded)
        self.flushed: list[tuple[int, int]] = []

        async def credentials_of(id_instance: int):
            token = tokens.get(id_instance)
            return None if token is None else InstanceCredentials(api_url=emulator.url, id_instance=id_instance,
                                                                   api_token_instance=token)

        async def flush(id_instance: int, count: int) -> None:
            self.flushed.append((id_instance, count))

        settings = get_receiver_settings(secret=SECRET, forward_url=app_url, forward_token=APP_TOKEN)
        checker = AccountChecker(credentials_of, lambda found: GreenAPIClient(found, get_settings().client_config()))
        self.server = ReceiverServer(settings, port=0, limits=ReceiverLimits(forward_timeout_seconds=forward_timeout), emitter=self.emitter, wid_store=self.wids.store(),
                                     registry=MemoryRegistry(), account_checker=checker, held_back_flush=flush)

    def post(self, body: dict | bytes) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.post(f"{self.server.url}/webhooks/greenapi", content=content, timeout=30,
                          headers={"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"})

    def counters(self) -> dict:
        return httpx.get(f"{self.server.url}/health", timeout=10).json()["relay"]

    def __enter__(self) -> "RelayUnderTest":
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()


@pytest.fixture
def app():
    with HttpCatcher() as catcher:
        yield catcher


def test_every_body_goes_on_unchanged_and_green_api_hears_200_only_after_the_app(emulator, seed_instance, app):
    seeded = seed_instance(wid=NEW)
    raw = json.dumps(_message(seeded.id_instance, NEW), indent=3).encode()  # odd spacing: unchanged means byte for byte
    with every_log_record() as logs, RelayUnderTest(emulator, app.url, tokens={seeded.id_instance: seeded.token}) as relay:
        answered = relay.post(raw)
        not_json = relay.post(b"this is not JSON {")
        first = relay.counters()
        more = [relay.post(_message(seeded.id_instance, NEW, id_message=f"N{n}")).status_code for n in range(10)]
        counters = relay.counters()
    assert answered.status_code == 200 and answered.json()["status"] == "forwarded"
    assert not_json.status_code == 200, "a body that is not a webhook passes unchanged: no verdict on a guess"
    assert [r["body"].encode() for r in app.requests[:2]] == [raw, b"this is not JSON {"] and more == [200] * 10
    assert {r["headers"]["Authorization"] for r in app.requests} == {f"Bearer {APP_TOKEN}"}
    assert counters["forwarded"] == 12 and counters["not_json"] == 1
    # The first check reports the account found (once per instance and process); then nothing per notification.
    assert counters["prefect_calls"] == first["prefect_calls"] <= 1
    assert _at_most_once_a_second(emulator.state.calls(seeded.id_instance, "getSettings"))
    text = logs.getvalue()
    assert APP_TOKEN not in text and SECRET not in text and "private words" not in text and seeded.token not in text


def test_an_app_that_fails_or_is_slow_or_down_is_never_answered_200(emulator, seed_instance, app):
    seeded = seed_instance(wid=NEW)
    body = _message(seeded.id_instance, NEW)
    with RelayUnderTest(emulator, app.url, tokens={seeded.id_instance: seeded.token}, forward_timeout=0.5) as relay:
        app.status = 503
        refused = relay.post(body)
        app.status, app.delay = 200, 1.5
        slow = relay.post(body)
        app.delay = 0.0
        accepted = relay.post(body)
    with RelayUnderTest(emulator, f"http://127.0.0.1:{free_port()}/hook", tokens={}) as relay:
        down = relay.post(body)
    assert (refused.status_code, slow.status_code, accepted.status_code, down.status_code) == (502, 504, 200, 502)
    assert "HTTP 503" in refused.json()["detail"] and "did not answer" in down.json()["detail"]


def test_a_notification_of_the_old_account_is_held_back_and_the_change_handed_over(emulator, seed_instance, app):
    seeded = seed_instance(wid=NEW)  # the account changed; the relay last recorded OLD
    with RelayUnderTest(emulator, app.url, tokens={seeded.id_instance: seeded.token},
                        recorded={seeded.id_instance: OLD}) as relay:
        stale = relay.post(_message(seeded.id_instance, OLD, age_seconds=120, id_message="STALE1"))
        fresh = [relay.post(_message(seeded.id_instance, NEW, id_message=f"F{n}")) for n in range(20)]
        stale_again = relay.post(_message(seeded.id_instance, OLD, age_seconds=119, id_message="STALE2"))
        wait_until(lambda: relay.emitter.events and relay.flushed, timeout=10,
                   message=lambda: f"no hand-over or held-back record: {relay.emitter.events!r} {relay.flushed!r}")
        counters = relay.counters()
    assert stale.json()["status"] == "held_back" and stale_again.json()["status"] == "held_back"
    assert all(answer.json()["status"] == "forwarded" for answer in fresh)
    received = [json.loads(r["body"])["idMessage"] for r in app.requests]
    assert received == [f"F{n}" for n in range(20)], "nothing of the old account reached the app, the new one's all in order"
    # Said and recorded, and no reset run: its clear would delete the new account's notifications queued behind.
    assert [e.event for e in relay.emitter.events] == ["greenapi.relay.account-changed"]
    assert relay.emitter.events[0].payload["delivery"] == "relay-check" and relay.wids.wids[seeded.id_instance] == NEW
    assert sum(count for _, count in relay.flushed) == 2
    assert _at_most_once_a_second(emulator.state.calls(seeded.id_instance, "getSettings")), "what a check learned is served"
    assert counters["held_back"] == 2 and counters["account_checks"] >= 1


def test_without_credentials_or_an_answer_nothing_is_held_back(emulator, seed_instance, app):
    seeded = seed_instance(wid=NEW)
    emulator.state.add_faults(seeded.id_instance, [{"method": "getSettings", "fault": {"kind": "status", "status": 401}}])
    with RelayUnderTest(emulator, app.url, tokens={seeded.id_instance: seeded.token}) as relay:
        refused = relay.post(_message(seeded.id_instance, OLD, age_seconds=120, id_message="A"))
        # Late ones right after a failed check are not each held up by a GetSettings (once a second at most).
        after = [relay.post(_message(seeded.id_instance, OLD, age_seconds=120, id_message=f"A{n}")) for n in range(5)]
    with RelayUnderTest(emulator, app.url, tokens={}) as relay:
        unknown = relay.post(_message(seeded.id_instance, OLD, age_seconds=120, id_message="B"))
    assert refused.json()["status"] == unknown.json()["status"] == "forwarded"
    assert all(answer.json()["status"] == "forwarded" for answer in after)
    assert [json.loads(r["body"])["idMessage"] for r in app.requests] == ["A", *(f"A{n}" for n in range(5)), "B"]
    assert len(emulator.state.calls(seeded.id_instance, "getSettings")) == 1


def test_state_webhooks_always_pass_a_block_starts_its_run_an_account_change_none(emulator, seed_instance, app):
    seeded = seed_instance(wid=NEW)
    state = {"typeWebhook": "stateInstanceChanged", "stateInstance": "authorized", "timestamp": int(time.time()),
             "instanceData": {"idInstance": seeded.id_instance, "wid": NEW, "typeInstance": "whatsapp"}}
    blocked = {**state, "stateInstance": "blocked", "timestamp": state["timestamp"] - 30,
               "instanceData": {**state["instanceData"], "wid": OLD}}
    with RelayUnderTest(emulator, app.url, tokens={seeded.id_instance: seeded.token},
                        recorded={seeded.id_instance: OLD}) as relay:
        passed_blocked = relay.post(blocked)
        passed = relay.post(state)
        held = relay.post(_message(seeded.id_instance, OLD, age_seconds=60, id_message="OLD1"))
    assert passed_blocked.status_code == passed.status_code == 200 and held.json()["status"] == "held_back"
    assert [json.loads(r["body"])["stateInstance"] for r in app.requests] == ["blocked", "authorized"]
    # A block still starts its reset run (the outgoing queue too); an account change is held back, no run.
    assert [(e.event, e.payload["delivery"]) for e in relay.emitter.events] == [
        ("greenapi.instance.number-blocked", "greenapi-webhook"), ("greenapi.relay.account-changed", "greenapi-webhook")]


async def test_held_back_counts_reach_the_instance_list_and_the_run_report(prefect_server):
    from datetime import datetime, timezone

    from prefect import flow
    from prefect.client.orchestration import get_client

    from domain import Reason
    from flows.models import QueueResetReport
    from flows.report import publish_report
    from receiver.app import _record_held_back
    from cli.registered import list_instances
    from bench.servers import register_instance

    id_instance = 7_720_000_001
    await register_instance(id_instance, "t" * 50, name=f"relay-{id_instance}")
    emitter = RecordingEmitter()
    await _record_held_back(emitter, id_instance, 2)  # two flushes of the relay, as it sends them
    await _record_held_back(emitter, id_instance, 3)
    listed = {item.id_instance: item for item in await list_instances()}
    report = QueueResetReport(id_instance=id_instance, reason=Reason.account_changed, started_at=datetime.now(timezone.utc))
    await flow(name="publish-report")(publish_report)(report)  # as the runbook publishes it, inside its run
    async with get_client() as client:
        artifact = await client.read_latest_artifacts()
    markdown = next(a.data for a in artifact if a.key == f"queue-reset-{id_instance}")
    assert listed[id_instance].held_back == 5 and report.held_back_by_relay == 5
    assert "Held back by the relay:** 5 notification(s)" in markdown
    assert [(e.event, e.payload["held_back"], e.payload["total"]) for e in emitter.events] == [
        ("greenapi.relay.held-back", 2, 2), ("greenapi.relay.held-back", 3, 5)]


async def test_detach_webhook_with_the_relay_in_place_puts_the_relay_back_and_delivery_resumes(
        prefect_server, emulator, seed_instance, greenapi_env, app):
    from tests.helpers import await_until, run_flow

    with RelayUnderTest(emulator, app.url, tokens={}) as relay:  # no block: the relay forwards without checks
        relay_url = f"{relay.server.url}/webhooks/greenapi"
        instance = seed_instance(wid=NEW, webhook_url=relay_url, settings={"webhookUrlToken": SECRET}, notifications=4)
        greenapi_env(instance)
        await await_until(lambda: len(app.requests) == 4, timeout=15, message=lambda: f"delivered: {len(app.requests)}")

        state, report = await run_flow(reason="account_changed", detach_webhook=True)
        queued = emulator.state.queue_notifications(instance.id_instance, {"count": 3})["queued"]

        assert state.is_completed(), state.message
        assert report.webhook_detached and report.webhook_restored is True and report.verified_by == "count+peek"
        assert emulator.state.instance(instance.id_instance)["webhook_url"] == relay_url
        await await_until(lambda: len(app.requests) == 7, timeout=15, message=lambda: f"delivered: {len(app.requests)}")
    received = [json.loads(r["body"])["idMessage"] for r in app.requests[4:]]
    assert received == [q["idMessage"] for q in queued], "after the run, the relay is the webhookUrl again and forwards in order"
