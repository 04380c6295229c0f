"""GREEN-API as it is: every documented webhook body (tests/data/greenapi_webhooks) is answered 200, and only
registered instances (greenapi-instance blocks) lead to a report.

Most tests drive the app in-process with a recording emitter, an in-memory wid store and an in-memory
registry; the last ones use the real registry against the session's Prefect server.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from pathlib import Path

import httpx
import pytest

from receiver.app import create_app
from receiver.registry import PrefectInstanceRegistry
from receiver.settings import get_receiver_settings
from instances import GreenApiInstance
from instances.lookup import registered_ids
from tests.helpers import MemoryRegistry, MemoryWidStore, RecordingEmitter

SECRET = "CANARYex" + "3a" * 16
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "data" / "greenapi_webhooks"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.json"))
DOCUMENTED_TYPES = {
    "incomingMessageReceived", "outgoingMessageReceived", "outgoingAPIMessageReceived", "outgoingMessageStatus",
    "stateInstanceChanged", "statusInstanceChanged", "deviceInfo", "incomingCall", "incomingBlock", "quotaExceeded",
}
WEBHOOK, QUEUE_RESET = "/webhooks/greenapi", "/events/queue-reset"
BLOCKED = "greenapi.instance.number-blocked"
UNREGISTERED = 7_650_000_009


class Receiver:
    def __init__(self, registry=None) -> None:
        self.emitter, self.wids = RecordingEmitter(), MemoryWidStore()
        self.registry = registry if registry is not None else MemoryRegistry(unregistered={UNREGISTERED})
        settings = get_receiver_settings(_env_file=None, secret=SECRET)
        self.app = create_app(settings, emitter=self.emitter, wid_store=self.wids.store(), registry=self.registry)

    async def post(self, path: str, body) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://receiver",
                                     headers={"Authorization": f"Bearer {SECRET}"}) as client:
            return await client.post(path, json=body)


def _example(path: Path) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert set(data) == {"source", "taken", "body"} and data["source"].startswith("https://green-api.com/"), path.name
    return data["body"]


def test_every_documented_webhook_type_has_an_example_from_its_page():
    assert {_example(p)["typeWebhook"] for p in EXAMPLES} == DOCUMENTED_TYPES
    readme = (EXAMPLES_DIR / "README.md").read_text(encoding="utf-8")
    assert all(p.name in readme for p in EXAMPLES)
    assert "timestamp" not in _example(EXAMPLES_DIR / "quotaExceeded.json")  # as GREEN-API documents it


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
async def test_each_documented_example_is_answered_200(path):
    body = _example(path)
    receiver = Receiver()

    response = await receiver.post(WEBHOOK, body)

    assert response.status_code == 200, response.text
    if body["typeWebhook"] == "stateInstanceChanged" and body["stateInstance"] == "blocked":
        answer = response.json()
        assert answer["event"] == BLOCKED and answer["duplicate"] is False and answer["idInstance"] == body["instanceData"]["idInstance"]
        assert [e.event for e in receiver.emitter.events] == [BLOCKED]
    else:
        assert response.json()["status"] == "ignored"
        assert receiver.emitter.events == []


@pytest.mark.parametrize("type_webhook", ["someWebhookGreenApiAddsLater", "editedMessageWebhook", "x"])
async def test_types_it_does_not_know_are_answered_200(type_webhook):
    receiver = Receiver()
    body = {"typeWebhook": type_webhook, "instanceData": {"idInstance": 1101000001}, "newField": {"nested": [1, None]}}
    response = await receiver.post(WEBHOOK, body)
    assert response.status_code == 200 and response.json()["status"] == "ignored", response.text
    assert receiver.emitter.events == []


async def test_a_blocked_webhook_without_timestamp_or_with_a_null_wid_is_handed_over_once():
    receiver = Receiver()
    body = {"typeWebhook": "stateInstanceChanged", "instanceData": {"idInstance": 1101000002, "wid": None}, "stateInstance": "blocked"}

    first, again = await receiver.post(WEBHOOK, body), await receiver.post(WEBHOOK, body)

    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert set(first.json()) == {"eventId", "event", "idInstance", "reason", "duplicate"}
    assert first.json()["duplicate"] is False and again.json()["duplicate"] is True
    assert again.json()["eventId"] == first.json()["eventId"]
    (event,) = receiver.emitter.events
    assert event.payload["wid"] is None and event.payload["state_instance"] == "blocked"


async def test_authorized_with_a_null_wid_is_ignored_and_records_nothing():
    receiver = Receiver()
    body = {"typeWebhook": "stateInstanceChanged", "instanceData": {"idInstance": 1101000003, "wid": None}, "stateInstance": "authorized"}
    response = await receiver.post(WEBHOOK, body)
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert receiver.wids.writes == 0 and receiver.emitter.events == []


async def test_an_unregistered_instance_on_the_greenapi_endpoint_is_200_a_warning_and_nothing_started(caplog):
    receiver = Receiver()
    body = {"typeWebhook": "stateInstanceChanged", "instanceData": {"idInstance": UNREGISTERED, "wid": "71230000001@c.us"},
            "timestamp": 1705902314, "stateInstance": "blocked"}
    changed = {**body, "stateInstance": "authorized"}

    with caplog.at_level(logging.WARNING, logger="greenapi.receiver"):
        blocked_answer = await receiver.post(WEBHOOK, body)
        changed_answer = await receiver.post(WEBHOOK, changed)

    for response in (blocked_answer, changed_answer):
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "ignored" and "not registered" in response.json()["why"]
    assert receiver.emitter.events == [] and receiver.wids.reports == set() and receiver.wids.writes == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all(str(UNREGISTERED) in w and "no greenapi-instance block" in w for w in warnings)
    assert not [r for r in caplog.records if SECRET in r.getMessage()]


async def test_an_unregistered_instance_on_the_queue_reset_endpoint_is_422_naming_it(caplog):
    receiver = Receiver()
    with caplog.at_level(logging.WARNING, logger="greenapi.receiver"):
        response = await receiver.post(QUEUE_RESET, {"idInstance": UNREGISTERED, "reason": "number_blocked", "note": "VALUEmarker42"})
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["idInstance"] and error["type"] == "unknown_instance" and str(UNREGISTERED) in error["msg"]
    assert "VALUEmarker42" not in response.text and SECRET not in response.text
    assert receiver.emitter.events == [] and receiver.wids.reports == set()
    assert any(str(UNREGISTERED) in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    registered = await receiver.post(QUEUE_RESET, {"idInstance": UNREGISTERED - 1, "reason": "number_blocked"})
    assert registered.status_code == 202 and len(receiver.emitter.events) == 1  # the same request for a known instance


async def test_the_registry_answers_hits_from_its_cache_and_misses_from_a_fresh_read():
    now, reads = [0.0], []
    registered = {1, 2}

    async def lookup() -> set[int]:
        reads.append(now[0])
        await asyncio.sleep(0.01)
        return set(registered)

    registry = PrefectInstanceRegistry(ttl_seconds=10, lookup=lookup, clock=lambda: now[0])
    assert await registry.is_registered(1) and len(reads) == 1
    now[0] = 1.0
    assert await registry.is_registered(2) and len(reads) == 1  # a hit within the ttl: no read
    registered.add(3)
    now[0] = 2.0
    assert await registry.is_registered(3) and len(reads) == 2  # a miss reads again: registered a moment ago, seen
    now[0] = 3.0
    answers = await asyncio.gather(*(registry.is_registered(4) for _ in range(20)))  # a burst of misses
    assert answers == [False] * 20 and len(reads) == 3  # share one read
    now[0] = 13.5
    assert await registry.is_registered(1) and len(reads) == 4  # the ttl passed: read again


_ids = itertools.count(7_660_000_001)


async def test_registration_is_read_from_the_greenapi_instance_blocks(prefect_server):
    registered_id, other_id = next(_ids), next(_ids)
    await GreenApiInstance(api_url="http://127.0.0.1:9", id_instance=registered_id, api_token_instance=SECRET).asave(f"examples-{registered_id}", overwrite=True)

    assert registered_id in await registered_ids() and other_id not in await registered_ids()

    receiver = Receiver(registry=PrefectInstanceRegistry(ttl_seconds=30))  # the default: greenapi-instance blocks
    blocked = lambda i: {"typeWebhook": "stateInstanceChanged", "instanceData": {"idInstance": i, "wid": "71230000001@c.us"}, "timestamp": 1705902314, "stateInstance": "blocked"}  # noqa: E731
    known, unknown = await receiver.post(WEBHOOK, blocked(registered_id)), await receiver.post(WEBHOOK, blocked(other_id))
    assert known.status_code == 200 and known.json()["event"] == BLOCKED, known.text
    assert unknown.status_code == 200 and unknown.json()["status"] == "ignored", unknown.text
    refused = await receiver.post(QUEUE_RESET, {"idInstance": other_id, "reason": "account_changed"})
    assert refused.status_code == 422 and str(other_id) in refused.text
    assert [e.resource.id for e in receiver.emitter.events] == [f"greenapi.instance.{registered_id}"]
