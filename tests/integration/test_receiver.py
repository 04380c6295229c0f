"""The receiver over loopback HTTP, emitting into the session's real Prefect server.

Events are persisted asynchronously (the server flushes about every 5 s), so the module runs every
request first (`scenario`), waits once for the expected events plus a sentinel sent last on the
same connection, and the tests then check their own instance's responses and events.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from prefect.events import Event
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.variables import Variable

from receiver.dedup import TTLCache
from receiver.emitter import EmitError, PrefectEventEmitter
from receiver.server import ReceiverServer
from receiver.settings import ReceiverConfigurationError, ReceiverLimits, get_receiver_settings
from instances.memory import seen_variable_name
from bench.servers import register_instance
from tests.helpers import EVENT_ID_NAMESPACE, wait_until, where_in_database
from bench.servers import free_port

CANARY = "CANARYrcv" + "7e57" * 8  # the receiver's secret; must never show up anywhere
BLOCKED, CHANGED = "greenapi.instance.number-blocked", "greenapi.instance.account-changed"

_ids = itertools.count(7_700_000_001)


def _new_id() -> int:
    """A fresh idInstance, registered as a greenapi-instance block (the receiver acts for registered instances only)."""
    id_instance = next(_ids)
    asyncio.run(register_instance(id_instance, CANARY, name=f"rcv-{id_instance}"))
    return id_instance


def _resource(id_instance: int) -> str:
    return f"greenapi.instance.{id_instance}"


def _webhook(id_instance: int, state: str | None = "blocked", wid: str = "71230000001@c.us", *, type_webhook: str = "stateInstanceChanged", timestamp: int | None = None, **extra: Any) -> dict:
    body: dict[str, Any] = {
        "typeWebhook": type_webhook,
        "instanceData": {"idInstance": id_instance, "wid": wid, "typeInstance": "whatsapp"},
        "timestamp": timestamp if timestamp is not None else int(time.time()),
        **extra,
    }
    if state is not None:
        body["stateInstance"] = state
    return body


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a record that cannot be formatted still must not hide a leak
            self.lines.append(repr(record.__dict__))


class FlakyEmitter(PrefectEventEmitter):
    """The real emitter, except that the first ``fail`` emits raise as if Prefect were down."""

    def __init__(self, fail: int) -> None:
        super().__init__()
        self.fail = fail
        self.calls = 0

    async def emit(self, event: Event) -> None:
        self.calls += 1
        if self.calls <= self.fail:
            raise EmitError("injected failure")
        await super().emit(event)


@dataclass
class Scenario:
    ids: dict[str, int] = field(default_factory=dict)
    responses: dict[str, httpx.Response] = field(default_factory=dict)
    events: dict[int, list[dict]] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def events_of(self, key: str) -> list[dict]:
        return self.events.get(self.ids[key], [])


def read_events(api_url: str, id_instances: list[int]) -> dict[int, list[dict]]:
    body = {"filter": {"resource": {"id": [_resource(i) for i in id_instances]}, "order": "ASC"}, "limit": 50}
    page = httpx.post(f"{api_url}/events/filter", json=body, timeout=10).raise_for_status().json()
    events = list(page["events"])
    while page.get("next_page"):
        page = httpx.get(page["next_page"], timeout=10).raise_for_status().json()
        events.extend(page["events"])
    found: dict[int, list[dict]] = {}
    for event in events:
        found.setdefault(int(event["resource"]["greenapi.id-instance"]), []).append(event)
    return found


def wait_for_events(api_url: str, id_instances: list[int], until_present: dict[int, int], deadline_s: float = 25.0) -> dict[int, list[dict]]:
    """Poll until each instance in ``until_present`` has at least that many events; return all of them."""
    found: dict[int, list[dict]] = {}

    def all_there() -> bool:
        nonlocal found
        found = read_events(api_url, id_instances)
        return all(len(found.get(i, [])) >= n for i, n in until_present.items())

    wait_until(all_there, timeout=deadline_s, interval=0.3,
               message=lambda: f"events never reached Prefect: wanted {until_present}, found { {i: len(e) for i, e in found.items()} }")
    return found


@pytest.fixture(scope="module")
def scenario(prefect_server) -> Scenario:
    capture = _Capture()
    root = logging.getLogger()
    root.addHandler(capture)
    s = Scenario()
    settings = get_receiver_settings(_env_file=None, secret=CANARY)
    auth = {"Authorization": f"Bearer {CANARY}"}
    try:
        with ReceiverServer(settings, limits=ReceiverLimits(max_body_bytes=4096)) as server, httpx.Client(base_url=server.url, headers=auth, timeout=30) as http:
            def post(name: str, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
                if body is not None:
                    kwargs["json"] = body
                s.responses[name] = response = http.post(path, **kwargs)
                return response

            # a valid request from another system
            s.ids["api"] = a = _new_id()
            post("api", "/events/queue-reset", {"idInstance": a, "reason": "account_changed", "source": "crm", "note": "moved to a new SIM", "deliveryId": "crm-1"})

            # GREEN-API: blocked
            s.ids["blocked"] = b = _new_id()
            post("blocked", "/webhooks/greenapi", _webhook(b, "blocked", "71230000002@c.us"))

            # GREEN-API: authorized: first sighting, same account again, then another account
            s.ids["authorized"] = c = _new_id()
            post("authorized-first", "/webhooks/greenapi", _webhook(c, "authorized", "71230000003@c.us", timestamp=1_700_000_001))
            s.variables["after-first"] = Variable.get(seen_variable_name(c))["wid"]
            post("authorized-same", "/webhooks/greenapi", _webhook(c, "authorized", "71230000003@c.us", timestamp=1_700_000_002))
            post("authorized-other", "/webhooks/greenapi", _webhook(c, "authorized", "71230000099@c.us", timestamp=1_700_000_003))
            s.variables["after-other"] = Variable.get(seen_variable_name(c))["wid"]
            post("authorized-other-again", "/webhooks/greenapi", _webhook(c, "authorized", "71230000099@c.us", timestamp=1_700_000_003))

            # GREEN-API: what needs no action
            s.ids["ignored"] = d = _new_id()
            post("other-type", "/webhooks/greenapi", _webhook(d, None, type_webhook="incomingMessageReceived", idMessage="ABC", senderData={"chatId": "1@c.us"}, messageData={"typeMessage": "textMessage"}))
            post("other-state", "/webhooks/greenapi", _webhook(d, "notAuthorized"))
            post("no-state", "/webhooks/greenapi", _webhook(d, None))
            post("authorized-no-wid", "/webhooks/greenapi", _webhook(d, "authorized", ""))

            # authentication: every one of these would be accepted with the right token
            s.ids["auth"] = e = _new_id()
            valid = {"idInstance": e, "reason": "number_blocked"}
            almost = CANARY[:-1] + ("x" if CANARY[-1] != "x" else "y")
            assert len(almost) == len(CANARY) and almost != CANARY
            post("auth-missing", "/events/queue-reset", valid, headers={"Authorization": ""})
            post("auth-wrong", "/events/queue-reset", valid, headers={"Authorization": "Bearer not-the-secret"})
            post("auth-almost", "/events/queue-reset", valid, headers={"Authorization": f"Bearer {almost}"})
            post("auth-prefix", "/events/queue-reset", valid, headers={"Authorization": f"Bearer {CANARY[:-1]}"})
            post("auth-longer", "/events/queue-reset", valid, headers={"Authorization": f"Bearer {CANARY}x"})
            post("auth-basic", "/events/queue-reset", valid, headers={"Authorization": f"Basic {CANARY}"})
            post("auth-webhook", "/webhooks/greenapi", _webhook(e, "blocked"), headers={"Authorization": f"Bearer {almost}"})
            post("auth-before-json", "/events/queue-reset", content=b"{not json", headers={"Authorization": f"Bearer {almost}"})
            post("auth-before-size", "/events/queue-reset", content=b"x" * 10_000, headers={"Authorization": f"Bearer {almost}"})

            # bad input, with the right token
            s.ids["bad"] = f = _new_id()
            marker = "VALUEmarker42"  # an input value that must not come back in an error
            post("malformed", "/events/queue-reset", content=b'{"idInstance": ' + str(f).encode() + b', "reason": ')
            post("not-utf8", "/events/queue-reset", content=b"\xff\xfe{}")
            post("wrong-type", "/events/queue-reset", {"idInstance": marker, "reason": "number_blocked"})
            post("unknown-reason", "/events/queue-reset", {"idInstance": f, "reason": marker})
            post("extra-field", "/events/queue-reset", {"idInstance": f, "reason": "number_blocked", "clear_outgoing": marker})
            post("id-too-big", "/events/queue-reset", {"idInstance": 10_000_000_000, "reason": "number_blocked"})
            post("note-too-long", "/events/queue-reset", {"idInstance": f, "reason": "number_blocked", "note": marker * 50})
            post("not-an-object", "/events/queue-reset", [f, "number_blocked"])
            big = json.dumps({"idInstance": f, "reason": "number_blocked", "note": "x" * 5000}).encode()
            post("oversized", "/events/queue-reset", content=big)
            post("oversized-chunked", "/events/queue-reset", content=iter([big[:2000], big[2000:]]))
            post("webhook-malformed", "/webhooks/greenapi", content=b"{")
            post("webhook-no-instance", "/webhooks/greenapi", {"typeWebhook": "stateInstanceChanged", "timestamp": 1, "stateInstance": "blocked"})
            post("webhook-bad-id", "/webhooks/greenapi", _webhook(0, "blocked"))

            # the same delivery twice; different deliveries of the same kind
            s.ids["dup"] = g = _new_id()
            post("dup-1", "/events/queue-reset", {"idInstance": g, "reason": "number_blocked", "deliveryId": "d-1"})
            post("dup-2", "/events/queue-reset", {"deliveryId": "d-1", "reason": "number_blocked", "idInstance": g})
            post("dup-other-delivery", "/events/queue-reset", {"idInstance": g, "reason": "number_blocked", "deliveryId": "d-2"})
            s.ids["dup-body"] = g2 = _new_id()
            post("dup-body-1", "/events/queue-reset", {"idInstance": g2, "reason": "account_changed", "source": "erp"})
            post("dup-body-2", "/events/queue-reset", content=json.dumps({"source": "erp", "reason": "account_changed", "idInstance": g2}, indent=2).encode())
            s.ids["dup-webhook"] = h = _new_id()
            hook = _webhook(h, "blocked", timestamp=1_700_000_100)
            post("dup-webhook-1", "/webhooks/greenapi", hook)
            post("dup-webhook-2", "/webhooks/greenapi", hook)

            # the same delivery five times at once: one emit
            s.ids["concurrent"] = n = _new_id()
            with ThreadPoolExecutor(5) as pool:
                hook = _webhook(n, "blocked", timestamp=1_700_000_200)
                for i, response in enumerate(pool.map(lambda _: http.post("/webhooks/greenapi", json=hook), range(5))):
                    s.responses[f"concurrent-{i}"] = response

            s.responses["health"] = http.get("/health", headers={"Authorization": ""})
            s.responses["openapi"] = http.get("/openapi.json", headers={"Authorization": ""})

            # the emit fails once: 503, not remembered; the re-sent request is emitted
            s.ids["flaky"] = k = _new_id()
            with ReceiverServer(settings, emitter=FlakyEmitter(fail=1)) as flaky, httpx.Client(base_url=flaky.url, headers=auth, timeout=30) as http2:
                s.responses["flaky-1"] = http2.post("/events/queue-reset", json={"idInstance": k, "reason": "number_blocked", "deliveryId": "f-1"})
                s.responses["flaky-2"] = http2.post("/events/queue-reset", json={"idInstance": k, "reason": "number_blocked", "deliveryId": "f-1"})
                s.responses["flaky-3"] = http2.post("/events/queue-reset", json={"idInstance": k, "reason": "number_blocked", "deliveryId": "f-1"})

            # Prefect unreachable: the receiver still starts; every emit answers 503
            s.ids["down"] = m = _new_id()
            with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api"}):
                with ReceiverServer(settings) as down, httpx.Client(base_url=down.url, headers=auth, timeout=60) as http3:
                    started = time.monotonic()
                    s.responses["down-1"] = http3.post("/events/queue-reset", json={"idInstance": m, "reason": "number_blocked", "deliveryId": "x-1"})
                    s.variables["down-seconds"] = time.monotonic() - started
                    s.responses["down-2"] = http3.post("/events/queue-reset", json={"idInstance": m, "reason": "number_blocked", "deliveryId": "x-1"})
                    s.responses["down-webhook"] = http3.post("/webhooks/greenapi", json=_webhook(m, "blocked"))
                    s.responses["down-health"] = http3.get("/health")

            # sentinel last, on the main receiver's connection
            s.ids["sentinel"] = z = _new_id()
            post("sentinel", "/events/queue-reset", {"idInstance": z, "reason": "number_blocked"})

            ids = list(s.ids.values())
            # The sentinel's event comes after every other one: once it is there, so is whatever else was emitted.
            s.events = wait_for_events(prefect_server.api_url, ids, {a: 1, b: 1, c: 1, g: 2, g2: 1, h: 1, k: 1, n: 1, z: 1})
    finally:
        root.removeHandler(capture)
    s.log = capture.lines
    return s


def _accepted(response: httpx.Response) -> dict:
    # GREEN-API's endpoint answers 200 (GREEN-API re-sends anything else); the other systems' endpoint 202.
    expected = 200 if response.request.url.path == "/webhooks/greenapi" else 202
    assert response.status_code == expected, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"eventId", "event", "idInstance", "reason", "duplicate"}
    return body


def _only_event(events: list[dict]) -> dict:
    assert len(events) == 1, [e["event"] for e in events]
    return events[0]


def test_external_request_emits_one_event_with_name_resource_and_payload(scenario):
    a = scenario.ids["api"]
    body = _accepted(scenario.responses["api"])
    assert body["event"] == CHANGED and body["idInstance"] == a and body["reason"] == "account_changed" and body["duplicate"] is False
    event = _only_event(scenario.events_of("api"))
    assert event["id"] == body["eventId"]
    assert event["event"] == CHANGED
    assert event["resource"]["prefect.resource.id"] == f"greenapi.instance.{a}"
    assert event["resource"]["greenapi.id-instance"] == str(a)
    assert event["payload"] == {
        "id_instance": a, "reason": "account_changed", "source": "crm", "note": "moved to a new SIM",
        "wid": None, "state_instance": None, "delivery": "api",
    }


def test_event_ids_are_uuid5_of_the_delivery(scenario):
    a, g = scenario.ids["api"], scenario.ids["dup"]
    key = "api|delivery|" + json.dumps([a, "crm-1"], separators=(",", ":"))
    assert scenario.responses["api"].json()["eventId"] == str(uuid.uuid5(EVENT_ID_NAMESPACE, key))
    assert uuid.UUID(scenario.responses["dup-1"].json()["eventId"]).version == 5
    assert scenario.responses["dup-other-delivery"].json()["eventId"] != scenario.responses["dup-1"].json()["eventId"]
    assert len(scenario.events[g]) == 2  # d-1 once, d-2 once


def test_blocked_webhook_emits_number_blocked(scenario):
    b = scenario.ids["blocked"]
    body = _accepted(scenario.responses["blocked"])
    assert body["event"] == BLOCKED and body["reason"] == "number_blocked" and body["idInstance"] == b
    event = _only_event(scenario.events_of("blocked"))
    assert event["id"] == body["eventId"] and event["event"] == BLOCKED
    assert event["resource"]["prefect.resource.id"] == f"greenapi.instance.{b}"
    assert event["payload"] == {
        "id_instance": b, "reason": "number_blocked", "source": "green-api", "note": None,
        "wid": "71230000002@c.us", "state_instance": "blocked", "delivery": "greenapi-webhook",
    }


def test_authorized_first_sighting_records_the_account_and_another_account_emits_account_changed(scenario):
    r = scenario.responses
    assert r["authorized-first"].status_code == 200
    assert r["authorized-first"].json() == {"status": "ignored", "why": "first account seen on this instance: recorded"}
    assert scenario.variables["after-first"] == "71230000003@c.us"
    assert r["authorized-same"].status_code == 200 and r["authorized-same"].json()["why"] == "account unchanged"
    body = _accepted(r["authorized-other"])
    assert body["event"] == CHANGED and body["reason"] == "account_changed" and body["duplicate"] is False
    assert scenario.variables["after-other"] == "71230000099@c.us"
    again = _accepted(r["authorized-other-again"])  # GREEN-API re-sent it: same id, not emitted again
    assert again["eventId"] == body["eventId"] and again["duplicate"] is True and again["event"] == CHANGED
    event = _only_event(scenario.events_of("authorized"))
    assert event["id"] == body["eventId"] and event["event"] == CHANGED
    assert event["payload"]["wid"] == "71230000099@c.us" and event["payload"]["state_instance"] == "authorized"
    assert event["payload"]["delivery"] == "greenapi-webhook"


@pytest.mark.parametrize("name", ["other-type", "other-state", "no-state", "authorized-no-wid"])
def test_webhooks_that_need_no_action_get_200_ignored_and_no_event(scenario, name):
    response = scenario.responses[name]
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ignored" and body["why"]
    assert scenario.events_of("ignored") == []


@pytest.mark.parametrize(
    "name", ["auth-missing", "auth-wrong", "auth-almost", "auth-prefix", "auth-longer", "auth-basic", "auth-webhook", "auth-before-json", "auth-before-size"]
)
def test_missing_or_wrong_token_is_401_and_emits_nothing(scenario, name):
    response = scenario.responses[name]
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"detail": "missing or wrong bearer token"}
    assert scenario.events_of("auth") == []


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("malformed", 400), ("not-utf8", 400), ("wrong-type", 422), ("unknown-reason", 422), ("extra-field", 422),
        ("id-too-big", 422), ("note-too-long", 422), ("not-an-object", 422), ("oversized", 413), ("oversized-chunked", 413),
        ("webhook-malformed", 400), ("webhook-no-instance", 422), ("webhook-bad-id", 422),
    ],
)
def test_bad_input_is_rejected_without_echo_and_emits_nothing(scenario, name, status):
    response = scenario.responses[name]
    assert response.status_code == status, response.text
    assert "VALUEmarker42" not in response.text
    assert scenario.events_of("bad") == []


def test_validation_errors_name_the_field(scenario):
    detail = scenario.responses["unknown-reason"].json()["detail"]
    assert detail[0]["loc"] == ["reason"] and "number_blocked" in detail[0]["msg"]
    assert all(set(error) == {"loc", "msg", "type"} for error in detail)
    assert scenario.responses["extra-field"].json()["detail"][0]["loc"] == ["clear_outgoing"]
    assert scenario.responses["extra-field"].json()["detail"][0]["type"] == "extra_forbidden"
    assert scenario.responses["wrong-type"].json()["detail"][0]["loc"] == ["idInstance"]
    assert scenario.responses["malformed"].json()["detail"].startswith("malformed JSON")


def test_the_same_delivery_twice_has_one_event_id_and_one_event(scenario):
    r = scenario.responses
    for first, second, key in (("dup-1", "dup-2", "dup"), ("dup-body-1", "dup-body-2", "dup-body"), ("dup-webhook-1", "dup-webhook-2", "dup-webhook")):
        one, two = _accepted(r[first]), _accepted(r[second])
        assert one["duplicate"] is False and two["duplicate"] is True
        assert one["eventId"] == two["eventId"] and one["event"] == two["event"]
        ids = [e["id"] for e in scenario.events_of(key)]
        assert ids.count(one["eventId"]) == 1, ids
    assert len(scenario.events_of("dup-body")) == 1 and len(scenario.events_of("dup-webhook")) == 1


def test_concurrent_copies_of_one_delivery_emit_once(scenario):
    bodies = [_accepted(scenario.responses[f"concurrent-{i}"]) for i in range(5)]
    assert len({b["eventId"] for b in bodies}) == 1
    assert sorted(b["duplicate"] for b in bodies) == [False, True, True, True, True]
    assert [e["id"] for e in scenario.events_of("concurrent")] == [bodies[0]["eventId"]]


def test_failed_emit_is_503_and_not_remembered(scenario):
    r = scenario.responses
    assert r["flaky-1"].status_code == 503 and r["flaky-1"].headers["retry-after"]
    second, third = _accepted(r["flaky-2"]), _accepted(r["flaky-3"])
    assert second["duplicate"] is False and third["duplicate"] is True and second["eventId"] == third["eventId"]
    assert [e["id"] for e in scenario.events_of("flaky")] == [second["eventId"]]


def test_unreachable_prefect_is_503_quickly_and_the_receiver_stays_up(scenario):
    r = scenario.responses
    for name in ("down-1", "down-2", "down-webhook"):
        assert r[name].status_code == 503, r[name].text
        assert "re-send" in r[name].json()["detail"]
    assert scenario.variables["down-seconds"] < 10
    assert r["down-health"].status_code == 200 and r["down-health"].json()["prefect_events"] == "disconnected"
    assert scenario.events_of("down") == []


def test_health_and_openapi_need_no_token(scenario):
    health = scenario.responses["health"]
    assert health.status_code == 200 and health.json() == {"status": "ok", "prefect_events": "connected"}
    spec = scenario.responses["openapi"].json()
    assert {"/webhooks/greenapi", "/events/queue-reset", "/health"} <= set(spec["paths"])
    bearer = spec["components"]["securitySchemes"]["bearerAuth"]
    assert set(bearer) == {"type", "scheme", "description"} and (bearer["type"], bearer["scheme"]) == ("http", "bearer")
    # The description tells a caller what to send: the header, and which setting holds the secret.
    assert "Authorization: Bearer" in bearer["description"] and "GREEN_API_RECEIVER_SECRET" in bearer["description"], bearer
    for path, accepted in (("/webhooks/greenapi", "200"), ("/events/queue-reset", "202")):
        operation = spec["paths"][path]["post"]
        assert operation["security"] == [{"bearerAuth": []}]
        assert {accepted, "401", "413", "422", "503"} <= set(operation["responses"])
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.rsplit("/", 1)[1] in spec["components"]["schemas"]
    request = spec["components"]["schemas"]["QueueResetRequest"]
    assert request["additionalProperties"] is False and set(request["required"]) == {"idInstance", "reason"}
    assert all(prop.get("description") for name, prop in request["properties"].items())
    assert "security" not in spec["paths"]["/health"]["get"]


def test_the_secret_appears_in_no_response_log_or_event(scenario, prefect_server):
    for name, response in scenario.responses.items():
        assert CANARY not in response.text, name
        assert CANARY not in json.dumps(dict(response.headers)), name
    assert scenario.log, "the capture saw no log records at all"
    assert not [line for line in scenario.log if CANARY in line]
    assert CANARY not in json.dumps(scenario.events)
    assert where_in_database(prefect_server, CANARY) == []  # no row, nor the raw bytes of the database files


def test_settings_errors_are_one_line_without_the_secret(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GREEN_API_RECEIVER_SECRET", CANARY)
    monkeypatch.setenv("GREEN_API_RECEIVER_PORT", "not-a-port")
    with pytest.raises(ReceiverConfigurationError) as raised:
        get_receiver_settings()
    message = str(raised.value)
    assert "GREEN_API_RECEIVER_PORT" in message and "\n" not in message and CANARY not in message
    monkeypatch.setenv("GREEN_API_RECEIVER_PORT", "8787")
    assert get_receiver_settings().secret.get_secret_value() == CANARY and CANARY not in repr(get_receiver_settings())
    monkeypatch.setenv("GREEN_API_RECEIVER_SECRET", "   ")
    with pytest.raises(ReceiverConfigurationError, match="GREEN_API_RECEIVER_SECRET is not set"):
        get_receiver_settings().require_secret()


def test_settings_come_from_a_dotenv_file(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in ("SECRET", "PORT", "HOST"):
        monkeypatch.delenv(f"GREEN_API_RECEIVER_{name}", raising=False)
    (tmp_path / ".env").write_text(f"GREEN_API_RECEIVER_SECRET={CANARY}\nGREEN_API_RECEIVER_PORT=1000\nGREEN_API_OTHER=1\n")
    settings = get_receiver_settings()
    assert settings.secret.get_secret_value() == CANARY and settings.port == 1000 and settings.host == "127.0.0.1"


def test_duplicate_memory_expires_and_is_bounded():
    now = [0.0]
    cache: TTLCache[str] = TTLCache(ttl_seconds=10, max_entries=2, clock=lambda: now[0])
    cache.add("a", "A")
    now[0] = 5
    cache.add("b", "B")
    assert cache.get("a") == "A"
    now[0] = 10.5
    assert cache.get("a") is None and cache.get("b") == "B"
    cache.add("c", "C")
    cache.add("d", "D")
    assert cache.get("b") is None and len(cache) == 2


def test_create_app_refuses_to_run_without_a_secret():
    from receiver.app import create_app

    with pytest.raises(ReceiverConfigurationError):
        create_app(get_receiver_settings(_env_file=None, secret=None))
