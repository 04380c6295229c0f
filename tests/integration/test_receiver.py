"""The receiver over loopback HTTP, emitting into the session's real Prefect server.

Each test registers its own instance, sends its own requests to the module's receiver and reads what
they emitted with ``emitted``: a sentinel report sent last through the same receiver, and Prefect's
stored events read until the sentinel's is there (the receiver's events go out in order on one
connection, so whatever the test's requests emitted is stored by then). Every response of the module
is checked for the receiver's secret as it arrives.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import io
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.events import Event
from prefect.events.filters import EventFilter, EventOccurredFilter, EventOrder, EventResourceFilter
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.variables import Variable

from receiver.dedup import TTLCache
from receiver.emitter import EmitError, PrefectEventEmitter
from receiver.server import ReceiverServer
from receiver.settings import ReceiverConfigurationError, ReceiverLimits, get_receiver_settings
from instances.memory import seen_variable_name
from bench.servers import free_port, register_instance
from tests.helpers import (
    EVENT_ID_NAMESPACE, MemoryRegistry, MemoryWidStore, RecordingEmitter, every_log_record, wait_until, where_in_database,
)

SECRET = "CANARYrcv" + "7e57" * 8  # the receiver's secret; must never show up anywhere
ALMOST = SECRET[:-1] + "x"  # one character off
SETTINGS = get_receiver_settings(_env_file=None, secret=SECRET)
LIMITS = ReceiverLimits(max_body_bytes=4096)
AUTH = {"Authorization": f"Bearer {SECRET}"}
BLOCKED, CHANGED = "greenapi.instance.number-blocked", "greenapi.instance.account-changed"
WEBHOOK, QUEUE_RESET = "/webhooks/greenapi", "/events/queue-reset"
MARKER = "VALUEmarker42"  # an input value that must not come back in an error

_ids = itertools.count(7_700_000_001)
REGISTERED = 50  # at least the module's tests that take an `instance`, and the sentinel


def webhook(id_instance: int, state: str | None = "blocked", wid: str = "71230000001@c.us", *,
            type_webhook: str = "stateInstanceChanged", timestamp: int | None = None, **extra: Any) -> dict:
    body: dict[str, Any] = {
        "typeWebhook": type_webhook,
        "instanceData": {"idInstance": id_instance, "wid": wid, "typeInstance": "whatsapp"},
        "timestamp": timestamp if timestamp is not None else int(time.time()),
        **extra,
    }
    if state is not None:
        body["stateInstance"] = state
    return body


def _no_secret_in(response: httpx.Response) -> None:
    response.read()
    assert SECRET not in response.text and SECRET not in str(response.headers.multi_items()), response.request.url.path


def receiver_client(url: str) -> httpx.Client:
    """A client with the right token whose every response is checked for the secret."""
    return httpx.Client(base_url=url, headers=AUTH, timeout=60, event_hooks={"response": [_no_secret_in]})


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


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def module_log() -> Iterator[io.StringIO]:
    """Every log record of the module, at DEBUG, as text."""
    with every_log_record() as stream:
        yield stream


@pytest.fixture(scope="module")
def receiver(prefect_server, module_log) -> Iterator[ReceiverServer]:
    with ReceiverServer(SETTINGS, limits=LIMITS) as server:
        yield server


@pytest.fixture
def http(receiver) -> Iterator[httpx.Client]:
    with receiver_client(receiver.url) as client:
        yield client


@pytest.fixture(scope="module")
def registered(prefect_server) -> Iterator[int]:
    """Fresh idInstances, each registered as a greenapi-instance block (the receiver acts for registered
    instances only); registered in one go, a test takes the next."""
    ids = list(itertools.islice(_ids, REGISTERED))

    async def register() -> None:  # one at a time: SQLite answers concurrent first saves 503
        for id_instance in ids:  # the secret as their token too: the search for it covers the blocks
            await register_instance(id_instance, SECRET, name=f"rcv-{id_instance}")

    asyncio.run(register())
    return iter(ids)


@pytest.fixture
def instance(registered) -> int:
    id_instance = next(registered, None)
    assert id_instance is not None, f"more of the module's tests take an instance than the {REGISTERED} registered: raise REGISTERED"
    return id_instance


@pytest.fixture(scope="module")
def sentinel(registered) -> int:
    return next(registered)


@pytest.fixture
def emitted(sentinel) -> Callable[..., list]:
    """``emitted(through, *id_instances)``: the events on the instances since the test began, in order, once a
    sentinel report sent ``through`` that receiver's client reached Prefect's database."""
    since = datetime.datetime.now(datetime.timezone.utc)

    def read(through: httpx.Client, *id_instances: int) -> list:
        response = through.post(QUEUE_RESET, json={"idInstance": sentinel, "reason": "number_blocked", "deliveryId": uuid.uuid4().hex})
        assert response.status_code == 202, response.text
        sentinel_id = uuid.UUID(response.json()["eventId"])
        resources = [f"greenapi.instance.{i}" for i in (*id_instances, sentinel)]
        events: list = []

        with get_client(sync_client=True) as client:
            def stored() -> bool:
                nonlocal events
                events = _events_on(client, resources, since)
                return any(event.id == sentinel_id for event in events)

            wait_until(stored, timeout=30, interval=0.2, message=lambda: f"the sentinel's event never reached Prefect; found {events}")
        return [event for event in events if event.resource.id != f"greenapi.instance.{sentinel}"]

    return read


def _events_on(client, resources: list[str], since: datetime.datetime) -> list:
    event_filter = EventFilter(occurred=EventOccurredFilter(since=since), resource=EventResourceFilter(id=resources),
                               order=EventOrder.ASC)
    page = client.read_events(filter=event_filter, limit=50)
    events = list(page.events)
    while page.next_page:
        page = client.read_events_page(page.next_page)
        events.extend(page.events)
    return events


def accepted(response: httpx.Response) -> dict:
    # GREEN-API's endpoint answers 200 (GREEN-API re-sends anything else); the other systems' endpoint 202.
    expected = 200 if response.request.url.path == WEBHOOK else 202
    assert response.status_code == expected, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"eventId", "event", "idInstance", "reason", "duplicate"}
    return body


def ignored(response: httpx.Response) -> str:
    """The reason a webhook that needs no action gives (200: GREEN-API must not re-send it)."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ignored" and body["why"], body
    return body["why"]


# ------------------------------------------------------------------------------ reports from other systems


def test_a_queue_reset_request_emits_one_event_with_its_name_resource_and_payload(http, instance, emitted):
    body = accepted(http.post(QUEUE_RESET, json={"idInstance": instance, "reason": "account_changed", "source": "crm",
                                                 "note": "moved to a new SIM", "deliveryId": "crm-1"}))
    assert (body["event"], body["idInstance"], body["reason"], body["duplicate"]) == (CHANGED, instance, "account_changed", False)
    [event] = emitted(http, instance)
    assert str(event.id) == body["eventId"] and event.event == CHANGED
    assert event.resource.id == f"greenapi.instance.{instance}" and event.resource["greenapi.id-instance"] == str(instance)
    assert event.payload == {
        "id_instance": instance, "reason": "account_changed", "source": "crm", "note": "moved to a new SIM",
        "wid": None, "state_instance": None, "delivery": "api",
    }


def test_the_event_id_is_the_uuid5_of_the_delivery(http, instance):
    body = accepted(http.post(QUEUE_RESET, json={"idInstance": instance, "reason": "account_changed", "deliveryId": "crm-1"}))
    key = "api|delivery|" + json.dumps([instance, "crm-1"], separators=(",", ":"))
    assert body["eventId"] == str(uuid.uuid5(EVENT_ID_NAMESPACE, key))


def test_another_delivery_of_the_same_kind_is_another_event(http, instance, emitted):
    first = accepted(http.post(QUEUE_RESET, json={"idInstance": instance, "reason": "number_blocked", "deliveryId": "d-1"}))
    second = accepted(http.post(QUEUE_RESET, json={"idInstance": instance, "reason": "number_blocked", "deliveryId": "d-2"}))
    assert first["eventId"] != second["eventId"] and second["duplicate"] is False
    assert [str(e.id) for e in emitted(http, instance)] == [first["eventId"], second["eventId"]]


# ------------------------------------------------------------------------------ GREEN-API's webhooks


def test_a_blocked_webhook_emits_number_blocked(http, instance, emitted):
    body = accepted(http.post(WEBHOOK, json=webhook(instance, "blocked", "71230000002@c.us")))
    assert (body["event"], body["reason"], body["idInstance"]) == (BLOCKED, "number_blocked", instance)
    [event] = emitted(http, instance)
    assert str(event.id) == body["eventId"] and event.event == BLOCKED
    assert event.resource.id == f"greenapi.instance.{instance}"
    assert event.payload == {
        "id_instance": instance, "reason": "number_blocked", "source": "green-api", "note": None,
        "wid": "71230000002@c.us", "state_instance": "blocked", "delivery": "greenapi-webhook",
    }


def authorized(http: httpx.Client, instance: int, wid: str, timestamp: int) -> httpx.Response:
    return http.post(WEBHOOK, json=webhook(instance, "authorized", wid, timestamp=timestamp))


def test_the_first_authorized_webhook_records_the_account_and_emits_nothing(http, instance, emitted):
    first = authorized(http, instance, "71230000003@c.us", 1_700_000_001)
    assert ignored(first) == "first account seen on this instance: recorded" and set(first.json()) == {"status", "why"}
    assert Variable.get(seen_variable_name(instance))["wid"] == "71230000003@c.us"
    assert emitted(http, instance) == []


def test_an_authorized_webhook_with_the_same_account_is_ignored(http, instance, emitted):
    authorized(http, instance, "71230000003@c.us", 1_700_000_001)
    assert ignored(authorized(http, instance, "71230000003@c.us", 1_700_000_002)) == "account unchanged"
    assert emitted(http, instance) == []


def test_an_authorized_webhook_with_another_account_emits_account_changed_and_records_it(http, instance, emitted):
    authorized(http, instance, "71230000003@c.us", 1_700_000_001)
    body = accepted(authorized(http, instance, "71230000099@c.us", 1_700_000_003))
    assert (body["event"], body["reason"], body["duplicate"]) == (CHANGED, "account_changed", False)
    assert Variable.get(seen_variable_name(instance))["wid"] == "71230000099@c.us"
    [event] = emitted(http, instance)
    assert str(event.id) == body["eventId"] and event.event == CHANGED
    assert (event.payload["wid"], event.payload["state_instance"], event.payload["delivery"]) == (
        "71230000099@c.us", "authorized", "greenapi-webhook")


def test_an_account_change_green_api_sends_again_is_a_duplicate_with_the_same_event_id(http, instance, emitted):
    authorized(http, instance, "71230000003@c.us", 1_700_000_001)
    first = accepted(authorized(http, instance, "71230000099@c.us", 1_700_000_003))
    again = accepted(authorized(http, instance, "71230000099@c.us", 1_700_000_003))
    assert (again["eventId"], again["event"], again["duplicate"]) == (first["eventId"], CHANGED, True)
    assert [str(e.id) for e in emitted(http, instance)] == [first["eventId"]]


NO_ACTION = {
    "another-type": lambda i: webhook(i, None, type_webhook="incomingMessageReceived", idMessage="ABC",
                                      senderData={"chatId": "1@c.us"}, messageData={"typeMessage": "textMessage"}),
    "another-state": lambda i: webhook(i, "notAuthorized"),
    "no-state": lambda i: webhook(i, None),
    "authorized-without-wid": lambda i: webhook(i, "authorized", ""),
}


@pytest.mark.parametrize("case", NO_ACTION)
def test_a_webhook_that_needs_no_action_gets_200_ignored_and_emits_nothing(http, instance, emitted, case):
    ignored(http.post(WEBHOOK, json=NO_ACTION[case](instance)))
    assert emitted(http, instance) == []


# ------------------------------------------------------------------------------ authentication


# Each would be accepted with the right token.
WRONG_AUTH = {
    "missing": (QUEUE_RESET, "", None),
    "wrong": (QUEUE_RESET, "Bearer not-the-secret", None),
    "one-character-off": (QUEUE_RESET, f"Bearer {ALMOST}", None),
    "a-prefix": (QUEUE_RESET, f"Bearer {SECRET[:-1]}", None),
    "longer": (QUEUE_RESET, f"Bearer {SECRET}x", None),
    "basic-scheme": (QUEUE_RESET, f"Basic {SECRET}", None),
    "on-the-webhook": (WEBHOOK, f"Bearer {ALMOST}", None),
    "checked-before-json": (QUEUE_RESET, f"Bearer {ALMOST}", b"{not json"),
    "checked-before-size": (QUEUE_RESET, f"Bearer {ALMOST}", b"x" * 10_000),
}


@pytest.mark.parametrize("case", WRONG_AUTH)
def test_a_missing_or_wrong_token_is_401_and_emits_nothing(http, instance, emitted, case):
    path, authorization, content = WRONG_AUTH[case]
    valid = webhook(instance, "blocked") if path == WEBHOOK else {"idInstance": instance, "reason": "number_blocked"}
    request = {"content": content} if content is not None else {"json": valid}
    response = http.post(path, headers={"Authorization": authorization}, **request)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"detail": "missing or wrong bearer token"}
    assert emitted(http, instance) == []


# ------------------------------------------------------------------------------ bad input, with the right token


def _oversized(i: int) -> bytes:
    return json.dumps({"idInstance": i, "reason": "number_blocked", "note": "x" * 5000}).encode()


BAD_INPUT = {  # case: (status, path, the request's json or content for the instance)
    "malformed-json": (400, QUEUE_RESET, lambda i: {"content": b'{"idInstance": ' + str(i).encode() + b', "reason": '}),
    "not-utf8": (400, QUEUE_RESET, lambda i: {"content": b"\xff\xfe{}"}),
    "wrong-type": (422, QUEUE_RESET, lambda i: {"json": {"idInstance": MARKER, "reason": "number_blocked"}}),
    "unknown-reason": (422, QUEUE_RESET, lambda i: {"json": {"idInstance": i, "reason": MARKER}}),
    "unknown-field": (422, QUEUE_RESET, lambda i: {"json": {"idInstance": i, "reason": "number_blocked", "clear_outgoing": MARKER}}),
    "id-too-big": (422, QUEUE_RESET, lambda i: {"json": {"idInstance": 10_000_000_000, "reason": "number_blocked"}}),
    "note-too-long": (422, QUEUE_RESET, lambda i: {"json": {"idInstance": i, "reason": "number_blocked", "note": MARKER * 50}}),
    "not-an-object": (422, QUEUE_RESET, lambda i: {"json": [i, "number_blocked"]}),
    "oversized": (413, QUEUE_RESET, lambda i: {"content": _oversized(i)}),
    "oversized-chunked": (413, QUEUE_RESET, lambda i: {"content": iter([_oversized(i)[:2000], _oversized(i)[2000:]])}),
    "webhook-malformed-json": (400, WEBHOOK, lambda i: {"content": b"{"}),
    "webhook-without-instance": (422, WEBHOOK, lambda i: {"json": {"typeWebhook": "stateInstanceChanged", "timestamp": 1, "stateInstance": "blocked"}}),
    "webhook-instance-0": (422, WEBHOOK, lambda i: {"json": webhook(0, "blocked")}),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_is_rejected_without_echo_and_emits_nothing(http, instance, emitted, case):
    status, path, request = BAD_INPUT[case]
    response = http.post(path, **request(instance))
    assert response.status_code == status, response.text
    assert MARKER not in response.text
    assert emitted(http, instance) == []


def _detail(http: httpx.Client, case: str) -> Any:
    _, path, request = BAD_INPUT[case]
    return http.post(path, **request(7_700_000_000)).json()["detail"]


def test_an_unknown_reason_names_the_field_and_the_reasons(http):
    detail = _detail(http, "unknown-reason")
    assert detail[0]["loc"] == ["reason"] and "number_blocked" in detail[0]["msg"]
    assert all(set(error) == {"loc", "msg", "type"} for error in detail)


def test_an_unknown_field_is_named_and_forbidden(http):
    error = _detail(http, "unknown-field")[0]
    assert (error["loc"], error["type"]) == (["clear_outgoing"], "extra_forbidden")


def test_a_wrong_type_names_the_field(http):
    assert _detail(http, "wrong-type")[0]["loc"] == ["idInstance"]


def test_malformed_json_says_so(http):
    assert _detail(http, "malformed-json").startswith("malformed JSON")


# ------------------------------------------------------------------------------ duplicates


def test_the_same_delivery_id_twice_is_one_event(http, instance, emitted):
    one = accepted(http.post(QUEUE_RESET, json={"idInstance": instance, "reason": "number_blocked", "deliveryId": "d-1"}))
    two = accepted(http.post(QUEUE_RESET, json={"deliveryId": "d-1", "reason": "number_blocked", "idInstance": instance}))
    assert (one["duplicate"], two["duplicate"]) == (False, True) and (one["eventId"], one["event"]) == (two["eventId"], two["event"])
    assert [str(e.id) for e in emitted(http, instance)] == [one["eventId"]]


def test_the_same_body_without_a_delivery_id_twice_is_one_event(http, instance, emitted):
    one = accepted(http.post(QUEUE_RESET, json={"idInstance": instance, "reason": "account_changed", "source": "erp"}))
    reformatted = json.dumps({"source": "erp", "reason": "account_changed", "idInstance": instance}, indent=2).encode()
    two = accepted(http.post(QUEUE_RESET, content=reformatted))
    assert (one["duplicate"], two["duplicate"]) == (False, True) and (one["eventId"], one["event"]) == (two["eventId"], two["event"])
    assert [str(e.id) for e in emitted(http, instance)] == [one["eventId"]]


def test_the_same_webhook_twice_is_one_event(http, instance, emitted):
    hook = webhook(instance, "blocked", timestamp=1_700_000_100)
    one, two = accepted(http.post(WEBHOOK, json=hook)), accepted(http.post(WEBHOOK, json=hook))
    assert (one["duplicate"], two["duplicate"]) == (False, True) and (one["eventId"], one["event"]) == (two["eventId"], two["event"])
    assert [str(e.id) for e in emitted(http, instance)] == [one["eventId"]]


def test_five_concurrent_copies_of_one_delivery_emit_once(http, instance, emitted):
    hook = webhook(instance, "blocked", timestamp=1_700_000_200)
    with ThreadPoolExecutor(5) as pool:
        bodies = [accepted(r) for r in pool.map(lambda _: http.post(WEBHOOK, json=hook), range(5))]
    assert len({b["eventId"] for b in bodies}) == 1
    assert sorted(b["duplicate"] for b in bodies) == [False, True, True, True, True]
    assert [str(e.id) for e in emitted(http, instance)] == [bodies[0]["eventId"]]


# ------------------------------------------------------------------------------ when Prefect fails


def test_a_failed_emit_is_503_and_not_remembered_so_the_resent_report_is_emitted(prefect_server, instance, emitted):
    report = {"idInstance": instance, "reason": "number_blocked", "deliveryId": "f-1"}
    with ReceiverServer(SETTINGS, emitter=FlakyEmitter(fail=1)) as flaky, receiver_client(flaky.url) as http:
        failed = http.post(QUEUE_RESET, json=report)
        assert failed.status_code == 503 and failed.headers["retry-after"]
        second, third = accepted(http.post(QUEUE_RESET, json=report)), accepted(http.post(QUEUE_RESET, json=report))
        assert (second["duplicate"], third["duplicate"]) == (False, True) and second["eventId"] == third["eventId"]
        assert [str(e.id) for e in emitted(http, instance)] == [second["eventId"]]


class StuckEmitter(RecordingEmitter):
    """Takes an event and never says it reached Prefect (a Prefect server too busy to answer)."""

    def __init__(self) -> None:
        super().__init__()
        self.reached = threading.Event()

    async def emit(self, event: Event) -> None:
        self.reached.set()
        await asyncio.Event().wait()


def test_a_report_still_running_when_the_receiver_stops_is_answered_503_for_its_sender_to_resend():
    emitter, answers = StuckEmitter(), []
    server = ReceiverServer(SETTINGS, emitter=emitter, wid_store=MemoryWidStore().store(), registry=MemoryRegistry()).start()

    def send() -> None:
        with receiver_client(server.url) as http:
            answers.append(http.post(QUEUE_RESET, json={"idInstance": 7_700_999_999, "reason": "number_blocked"}))

    sender = threading.Thread(target=send)
    sender.start()
    try:
        assert emitter.reached.wait(10), "the report never reached the emitter"
    finally:
        server.stop()  # the request is still in flight; uvicorn cancels it after its grace period
        sender.join(15)
    [answer] = answers
    assert answer.status_code == 503, answer.text  # not uvicorn's 500: a webhook sender re-sends on 503
    assert answer.headers["retry-after"] and "re-send" in answer.json()["detail"]


def test_with_prefect_unreachable_the_receiver_starts_and_answers_503_quickly(prefect_server, instance, http, emitted):
    report = {"idInstance": instance, "reason": "number_blocked", "deliveryId": "x-1"}
    with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api"}):
        with ReceiverServer(SETTINGS) as down, receiver_client(down.url) as down_http:
            started = time.monotonic()
            first = down_http.post(QUEUE_RESET, json=report)
            assert time.monotonic() - started < 10
            again = down_http.post(QUEUE_RESET, json=report)  # not remembered: still not emitted
            hook = down_http.post(WEBHOOK, json=webhook(instance, "blocked"))
            health = down_http.get("/health")
    for response in (first, again, hook):
        assert response.status_code == 503, response.text
        assert "re-send" in response.json()["detail"]
    assert health.status_code == 200 and health.json()["prefect_events"] == "disconnected"
    assert emitted(http, instance) == []  # nothing reached the session's server either


# ------------------------------------------------------------------------------ what needs no token


def test_health_needs_no_token_and_says_prefect_is_connected(http):
    health = http.get("/health", headers={"Authorization": ""})
    assert health.status_code == 200 and health.json() == {"status": "ok", "prefect_events": "connected"}


def test_the_openapi_spec_needs_no_token_and_says_what_each_endpoint_takes(http):
    spec = http.get("/openapi.json", headers={"Authorization": ""}).json()
    assert {WEBHOOK, QUEUE_RESET, "/health"} <= set(spec["paths"])
    bearer = spec["components"]["securitySchemes"]["bearerAuth"]
    assert set(bearer) == {"type", "scheme", "description"} and (bearer["type"], bearer["scheme"]) == ("http", "bearer")
    # The description tells a caller what to send: the header, and which setting holds the secret.
    assert "Authorization: Bearer" in bearer["description"] and "GREEN_API_RECEIVER_SECRET" in bearer["description"], bearer
    for path, accepted_status in ((WEBHOOK, "200"), (QUEUE_RESET, "202")):
        operation = spec["paths"][path]["post"]
        assert operation["security"] == [{"bearerAuth": []}]
        assert {accepted_status, "401", "413", "422", "503"} <= set(operation["responses"])
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.rsplit("/", 1)[1] in spec["components"]["schemas"]
    request = spec["components"]["schemas"]["QueueResetRequest"]
    assert request["additionalProperties"] is False and set(request["required"]) == {"idInstance", "reason"}
    assert all(prop.get("description") for prop in request["properties"].values())
    assert "security" not in spec["paths"]["/health"]["get"]


# ------------------------------------------------------------------------------ the secret


def test_the_secret_appears_in_no_log_event_or_database_row(http, instance, emitted, module_log, prefect_server):
    """After the module's other tests (the responses were each checked as they came): what was logged,
    emitted and stored holds no trace of the secret."""
    accepted(http.post(QUEUE_RESET, json={"idInstance": instance, "reason": "number_blocked"}))
    http.post(QUEUE_RESET, json={"idInstance": instance, "reason": "number_blocked"}, headers={"Authorization": f"Bearer {ALMOST}"})
    http.post(QUEUE_RESET, content=b"{not json")
    events = emitted(http, instance)
    assert len(events) == 1 and SECRET not in events[0].model_dump_json()
    logged = module_log.getvalue()
    assert logged, "the capture saw no log records at all"
    assert SECRET not in logged
    assert where_in_database(prefect_server, SECRET) == []  # no row, nor the raw bytes of the database files


# ------------------------------------------------------------------------------ settings and parts


def test_a_bad_receiver_setting_is_one_line_naming_it_without_the_secret(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GREEN_API_RECEIVER_SECRET", SECRET)
    monkeypatch.setenv("GREEN_API_RECEIVER_PORT", "not-a-port")
    with pytest.raises(ReceiverConfigurationError) as raised:
        get_receiver_settings()
    message = str(raised.value)
    assert "GREEN_API_RECEIVER_PORT" in message and "\n" not in message and SECRET not in message


def test_the_secret_is_read_from_the_environment_and_not_shown_in_the_settings(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GREEN_API_RECEIVER_SECRET", SECRET)
    settings = get_receiver_settings()
    assert settings.secret.get_secret_value() == SECRET and SECRET not in repr(settings)


def test_a_blank_secret_is_refused_where_one_is_required(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GREEN_API_RECEIVER_SECRET", "   ")
    with pytest.raises(ReceiverConfigurationError, match="GREEN_API_RECEIVER_SECRET is not set"):
        get_receiver_settings().require_secret()


def test_settings_come_from_a_dotenv_file(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in ("SECRET", "PORT", "HOST"):
        monkeypatch.delenv(f"GREEN_API_RECEIVER_{name}", raising=False)
    (tmp_path / ".env").write_text(f"GREEN_API_RECEIVER_SECRET={SECRET}\nGREEN_API_RECEIVER_PORT=1000\nGREEN_API_OTHER=1\n")
    settings = get_receiver_settings()
    assert settings.secret.get_secret_value() == SECRET and settings.port == 1000 and settings.host == "127.0.0.1"


def test_a_remembered_delivery_is_forgotten_after_its_ttl():
    now = [0.0]
    cache: TTLCache[str] = TTLCache(ttl_seconds=10, max_entries=10, clock=lambda: now[0])
    cache.add("a", "A")
    now[0] = 5
    cache.add("b", "B")
    assert cache.get("a") == "A"
    now[0] = 10.5
    assert cache.get("a") is None and cache.get("b") == "B"


def test_the_delivery_memory_keeps_only_the_newest_entries():
    cache: TTLCache[str] = TTLCache(ttl_seconds=10, max_entries=2, clock=lambda: 0.0)
    for key in "abc":
        cache.add(key, key.upper())
    assert cache.get("a") is None and (cache.get("b"), cache.get("c")) == ("B", "C") and len(cache) == 2


def test_create_app_refuses_to_run_without_a_secret():
    from receiver.app import create_app

    with pytest.raises(ReceiverConfigurationError):
        create_app(get_receiver_settings(_env_file=None, secret=None))
