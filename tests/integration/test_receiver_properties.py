"""Property-based tests of the receiver's input handling (hypothesis).

The bulk drives the ASGI app in-process (``httpx.ASGITransport``) with a recording emitter and an
in-memory wid store, a fresh app per example: each example is a short sequence of requests (so
duplicates and account changes happen), checked step by step against a small model of the
documented behaviour (docs/webhooks.md), written here independently of ``receiver/``:

- invalid input (not UTF-8, not JSON, not valid Unicode, too large, wrong schema) gets a 4xx
  and emits nothing, records no account;
- a valid body gets 2xx: the accepted body with exactly one event for an actionable one (200 on the
  GREEN-API endpoint, 202 on the other), 200 ``ignored`` for the others, the accepted body with
  ``duplicate`` (same event id, nothing emitted) for a repeat;
- an instance that is not registered: 200 ``ignored`` on the GREEN-API endpoint, 422 on the other,
  nothing emitted, no account recorded;
- the event id is uuid5 of the documented key; event name, resource and payload are as documented.

A smaller sample then runs against a real receiver on loopback and the session's real Prefect
server, and checks that exactly the accepted events arrive, once each. The receiver's secret is a
canary searched for in every response, every log record, every event and the Prefect database.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from greenapi.credentials import ID_INSTANCE_MAX
from receiver.app import create_app
from tests.helpers import (
    EVENT_ID_NAMESPACE, MemoryRegistry, MemoryWidStore, RecordingEmitter, database_tables_text, wait_for_stored_events,
    where_in_database,
)
from receiver.server import ReceiverServer
from receiver.settings import ReceiverLimits, get_receiver_settings

CANARY = "CANARYprops" + "5ec7" * 8
MAX_BODY = 4096
SETTINGS = get_receiver_settings(_env_file=None, secret=CANARY)
LIMITS = ReceiverLimits(max_body_bytes=MAX_BODY)
AUTH = {"Authorization": f"Bearer {CANARY}", "Content-Type": "application/json"}
WEBHOOK, QUEUE_RESET = "/webhooks/greenapi", "/events/queue-reset"

# Documented, not imported (tests/helpers.py): uuid5(NAMESPACE_URL, "urn:greenapi-queue-reset:receiver:event").
NAMESPACE = EVENT_ID_NAMESPACE
BLOCKED, CHANGED = "greenapi.instance.number-blocked", "greenapi.instance.account-changed"

# Small pools, so that sequences hit the same instance, account and delivery again.
IDS = [1101000001, 1101000002, 1101000003, 1101000009]
UNREGISTERED = {1101000009}  # the in-process receiver's registry knows every other instance
WIDS = ["", "71230000001@c.us", "71230000002@c.us", "79990000000@c.us"]
STATES = ["blocked", "authorized", "notAuthorized", "sleepMode", "starting", "yellowCard"]
OTHER_TYPES = ["incomingMessageReceived", "outgoingMessageStatus", "outgoingAPIMessageReceived", "deviceInfo", "statusInstanceChanged", "incomingCall"]
DELIVERY_IDS = ["crm-1", "crm-2", "ticket/4711"]

COUNTS: dict[str, int] = {}  # requests sent per test, reported at the end


def _count(name: str, n: int = 1) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + n


# --------------------------------------------------------------------------------------------
# The model (the oracle)
# --------------------------------------------------------------------------------------------

MISSING = object()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _as_int(value: Any) -> Any:
    """JSON Schema's integers include 5.0; true and "5" are not integers."""
    return int(value) if type(value) is float and value.is_integer() else value


def _is_int(value: Any, low: int, high: int | None = None) -> bool:
    value = _as_int(value)
    return type(value) is int and value >= low and (high is None or value <= high)


def _is_str(value: Any, max_len: int, min_len: int = 0, nullable: bool = True) -> bool:
    if value is MISSING or (value is None and nullable):
        return True
    return type(value) is str and min_len <= len(value) <= max_len


def valid_webhook(body: Any) -> bool:
    if type(body) is not dict:
        return False
    data = body.get("instanceData", MISSING)
    if type(data) is not dict:
        return False
    return (
        type(body.get("typeWebhook")) is str and 1 <= len(body["typeWebhook"]) <= 100
        and _is_int(data.get("idInstance"), 1, ID_INSTANCE_MAX)
        and _is_str(data.get("wid", MISSING), 200)
        and _is_str(data.get("typeInstance", MISSING), 100)
        and (body.get("timestamp") is None or _is_int(body["timestamp"], 0))
        and _is_str(body.get("stateInstance", MISSING), 100)
    )


QUEUE_RESET_FIELDS = {"idInstance", "reason", "source", "note", "deliveryId"}


def valid_queue_reset(body: Any) -> bool:
    if type(body) is not dict or not set(body) <= QUEUE_RESET_FIELDS:
        return False
    return (
        _is_int(body.get("idInstance"), 1, ID_INSTANCE_MAX)
        and body.get("reason") in ("number_blocked", "account_changed") and type(body["reason"]) is str
        and _is_str(body.get("source", MISSING), 100)
        and _is_str(body.get("note", MISSING), 500)
        and _is_str(body.get("deliveryId", MISSING), 200, min_len=1)
    )


@dataclass
class Expected:
    status: int
    event: dict | None = None  # the event that must be emitted by this request
    accepted: dict | None = None  # the 202 body


@dataclass
class Model:
    """What the receiver remembers: accepted event ids (with their answer) and the last account per instance."""

    seen: dict[str, dict] = field(default_factory=dict)
    wids: dict[int, str] = field(default_factory=dict)
    unregistered: set[int] = field(default_factory=set)

    @staticmethod
    def parse(raw: bytes) -> tuple[int | None, Any]:
        if len(raw) > MAX_BODY:
            return 413, None
        try:
            data = json.loads(raw.decode("utf-8"))
            json.dumps(data, ensure_ascii=False).encode("utf-8")  # lone surrogates cannot be sent on as UTF-8
        except (ValueError, RecursionError):  # UnicodeError and JSONDecodeError are ValueErrors
            return 400, None
        return None, data

    def _accept(self, event_id: str, event: dict, status: int = 202) -> Expected:
        if event_id in self.seen:
            return Expected(status, accepted={**self.seen[event_id], "duplicate": True})
        answer = {"eventId": event_id, "event": event["event"], "idInstance": event["payload"]["id_instance"], "reason": event["payload"]["reason"]}
        self.seen[event_id] = answer
        return Expected(status, event={"id": event_id, **event}, accepted={**answer, "duplicate": False})

    def webhook(self, raw: bytes) -> Expected:
        status, body = self.parse(raw)
        if status is not None:
            return Expected(status)
        if not valid_webhook(body):
            return Expected(422)
        data = body["instanceData"]
        id_instance, wid, state = _as_int(data["idInstance"]), data.get("wid") or "", body.get("stateInstance")
        if body["typeWebhook"] != "stateInstanceChanged" or state not in ("blocked", "authorized") or (state == "authorized" and not wid):
            return Expected(200)
        if id_instance in self.unregistered:
            return Expected(200)  # acknowledged, nothing started, nothing recorded
        key = "greenapi-webhook|" + _canonical([id_instance, body["typeWebhook"], _as_int(body.get("timestamp")), state, wid])
        event_id = str(uuid.uuid5(NAMESPACE, key))
        if event_id in self.seen:  # GREEN-API's endpoint answers 200 whatever it decided
            return Expected(200, accepted={**self.seen[event_id], "duplicate": True})
        if state == "authorized":
            recorded = self.wids.get(id_instance)
            self.wids[id_instance] = wid
            if recorded is None or recorded == wid:
                return Expected(200)
        reason = "number_blocked" if state == "blocked" else "account_changed"
        return self._accept(event_id, _event(id_instance, reason, source="green-api", note=None, wid=wid or None, state=state, delivery="greenapi-webhook"), status=200)

    def queue_reset(self, raw: bytes) -> Expected:
        status, body = self.parse(raw)
        if status is not None:
            return Expected(status)
        if not valid_queue_reset(body):
            return Expected(422)
        full = {name: body.get(name) for name in QUEUE_RESET_FIELDS}
        full["idInstance"] = _as_int(full["idInstance"])
        if full["idInstance"] in self.unregistered:
            return Expected(422)
        if full["deliveryId"] is not None:
            key = "api|delivery|" + _canonical([full["idInstance"], full["deliveryId"]])
        else:
            key = "api|body|" + _canonical(full)
        event_id = str(uuid.uuid5(NAMESPACE, key))
        return self._accept(event_id, _event(full["idInstance"], full["reason"], source=full["source"], note=full["note"], wid=None, state=None, delivery="api"))

    def expect(self, path: str, raw: bytes) -> Expected:
        return self.webhook(raw) if path == WEBHOOK else self.queue_reset(raw)


def _event(id_instance: int, reason: str, *, source, note, wid, state, delivery) -> dict:
    return {
        "event": BLOCKED if reason == "number_blocked" else CHANGED,
        "resource": {
            "prefect.resource.id": f"greenapi.instance.{id_instance}",
            "greenapi.id-instance": str(id_instance),
        },
        "payload": {
            "id_instance": id_instance, "reason": reason, "source": source, "note": note,
            "wid": wid, "state_instance": state, "delivery": delivery,
        },
    }


# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------

json_leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
not_an_object = st.one_of(json_leaves, st.lists(json_leaves, max_size=3))

valid_id = st.one_of(st.sampled_from(IDS), st.integers(1, ID_INSTANCE_MAX))
bad_id = st.one_of(
    st.integers(max_value=0), st.integers(min_value=ID_INSTANCE_MAX + 1), st.booleans(), st.floats(),
    st.sampled_from([str(IDS[0]), float(IDS[0]), IDS[0] + 0.5, [IDS[0]], {"id": IDS[0]}]), st.none(), st.text(max_size=10),
)
valid_ts = st.one_of(st.sampled_from([1705902314, 1705902315]), st.integers(0, 2**70))
bad_ts = st.one_of(st.integers(max_value=-1), st.booleans(), st.floats(), st.sampled_from(["1705902314", 1705902314.0]))
bad_str = st.one_of(st.integers(), st.booleans(), st.floats(), st.lists(st.text(max_size=3), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def _long(n: int) -> st.SearchStrategy[str]:
    return st.text(min_size=n, max_size=n + 3)


@st.composite
def webhook_bodies(draw) -> Any:
    type_webhook = draw(st.one_of(st.just("stateInstanceChanged"), st.just("stateInstanceChanged"), st.sampled_from(OTHER_TYPES), st.text(min_size=1, max_size=30)))
    data: dict[str, Any] = {"idInstance": draw(valid_id)}
    if draw(st.integers(0, 5)):
        data["wid"] = draw(st.one_of(st.sampled_from(WIDS), st.text(max_size=30)))
    if draw(st.booleans()):
        data["typeInstance"] = draw(st.one_of(st.just("whatsapp"), st.none(), st.text(max_size=20)))
    body: dict[str, Any] = {"typeWebhook": type_webhook, "instanceData": data, "timestamp": draw(valid_ts)}
    if draw(st.integers(0, 5)):
        body["stateInstance"] = draw(st.one_of(st.sampled_from(STATES), st.none(), st.text(max_size=20)))
    body.update(draw(st.dictionaries(st.text(max_size=12).filter(lambda k: k not in body), json_values, max_size=3)))
    data.update(draw(st.dictionaries(st.text(max_size=12).filter(lambda k: k not in data), json_values, max_size=2)))

    mutation = draw(st.sampled_from(["none"] * 6 + ["drop", "drop-inner", "bad-id", "bad-ts", "bad-str", "too-long", "not-object", "inner-not-object", "oversized"]))
    if mutation == "drop":
        del body[draw(st.sampled_from(["typeWebhook", "instanceData", "timestamp"]))]
    elif mutation == "drop-inner":
        del data["idInstance"]
    elif mutation == "bad-id":
        data["idInstance"] = draw(bad_id)
    elif mutation == "bad-ts":
        body["timestamp"] = draw(bad_ts)
    elif mutation == "bad-str":
        target = draw(st.sampled_from(["typeWebhook", "stateInstance", "wid", "typeInstance"]))
        (data if target in ("wid", "typeInstance") else body)[target] = draw(bad_str | (st.just(None) if target in ("typeWebhook", "wid") else st.just("")))
    elif mutation == "too-long":
        target, n = draw(st.sampled_from([("typeWebhook", 101), ("stateInstance", 101), ("wid", 201), ("typeInstance", 101)]))
        (data if target in ("wid", "typeInstance") else body)[target] = draw(_long(n))
    elif mutation == "not-object":
        return draw(not_an_object)
    elif mutation == "inner-not-object":
        body["instanceData"] = draw(not_an_object)
    elif mutation == "oversized":
        body["padding"] = "x" * MAX_BODY
    return body


@st.composite
def queue_reset_bodies(draw) -> Any:
    body: dict[str, Any] = {"idInstance": draw(valid_id), "reason": draw(st.sampled_from(["number_blocked", "account_changed"]))}
    for name, max_len, pool in (("source", 100, ["crm", "erp"]), ("note", 500, ["support ticket 4711"]), ("deliveryId", 200, DELIVERY_IDS)):
        if draw(st.booleans()):
            body[name] = draw(st.one_of(st.sampled_from(pool), st.none(), st.text(min_size=1 if name == "deliveryId" else 0, max_size=min(max_len, 40)), _long(max_len - 2).map(lambda s: s[:max_len])))
    mutation = draw(st.sampled_from(["none"] * 6 + ["drop", "bad-id", "bad-reason", "bad-str", "too-long", "empty-delivery", "extra", "not-object", "oversized"]))
    if mutation == "drop":
        del body[draw(st.sampled_from(["idInstance", "reason"]))]
    elif mutation == "bad-id":
        body["idInstance"] = draw(bad_id)
    elif mutation == "bad-reason":
        body["reason"] = draw(st.one_of(st.sampled_from(["NUMBER_BLOCKED", "blocked", "", None, 1, ["number_blocked"]]), st.text(max_size=20)))
    elif mutation == "bad-str":
        body[draw(st.sampled_from(["source", "note", "deliveryId"]))] = draw(bad_str)
    elif mutation == "too-long":
        name, n = draw(st.sampled_from([("source", 101), ("note", 501), ("deliveryId", 201)]))
        body[name] = draw(_long(n))
    elif mutation == "empty-delivery":
        body["deliveryId"] = ""
    elif mutation == "extra":
        body.update(draw(st.dictionaries(st.text(max_size=15).filter(lambda k: k not in QUEUE_RESET_FIELDS), json_values, min_size=1, max_size=2)))
    elif mutation == "not-object":
        return draw(not_an_object)
    elif mutation == "oversized":
        body["note"] = "x" * MAX_BODY
    return body


def serialise(draw, body: Any) -> bytes:
    """Like a client would: compact or indented, ASCII-escaped or raw UTF-8, keys in any order."""
    if isinstance(body, dict) and draw(st.booleans()):
        keys = draw(st.permutations(list(body)))
        body = {key: body[key] for key in keys}
    indent = draw(st.sampled_from([None, None, 2]))
    return json.dumps(body, ensure_ascii=draw(st.booleans()), indent=indent).encode("utf-8")


@st.composite
def sequences(draw, bodies) -> list[bytes]:
    """1 to 4 requests; later ones may repeat an earlier body (a re-delivery), re-serialised."""
    sent: list[Any] = []
    out: list[bytes] = []
    for _ in range(draw(st.integers(1, 4))):
        if sent and draw(st.integers(0, 2)) == 0:
            body = draw(st.sampled_from(sent))
        else:
            body = draw(bodies)
            sent.append(body)
        out.append(serialise(draw, body))
    return out


def _lone_surrogate_bodies() -> st.SearchStrategy[bytes]:
    """JSON text that parses, but carries an unpaired UTF-16 surrogate escape somewhere."""
    escape = st.sampled_from(["\\ud800", "\\udfff", "\\udbff", "a\\ud83d", "\\ude00b"])
    templates = [
        '{{"typeWebhook": "stateInstanceChanged", "instanceData": {{"idInstance": 1101000001, "wid": "{e}"}}, "timestamp": 1, "stateInstance": "blocked"}}',
        '{{"typeWebhook": "stateInstanceChanged", "instanceData": {{"idInstance": 1101000001}}, "timestamp": 1, "stateInstance": "blocked", "{e}": 1}}',
        '{{"typeWebhook": "{e}", "instanceData": {{"idInstance": 1101000001}}, "timestamp": 1}}',
        '{{"typeWebhook": "incomingMessageReceived", "instanceData": {{"idInstance": 1101000001}}, "timestamp": 1, "messageData": {{"text": "{e}"}}}}',
        '{{"idInstance": 1101000001, "reason": "number_blocked", "{e}": 1}}',
        '{{"idInstance": 1101000001, "reason": "number_blocked", "deliveryId": "{e}"}}',
        '{{"idInstance": 1101000001, "reason": "{e}"}}',
        '{{"idInstance": "{e}", "reason": "number_blocked"}}',
    ]
    return st.builds(lambda t, e: t.format(e=e).encode(), st.sampled_from(templates), escape)


@st.composite
def raw_bodies(draw) -> bytes:
    valid = serialise(draw, draw(st.one_of(webhook_bodies(), queue_reset_bodies())))
    kind = draw(st.sampled_from(["binary", "truncated", "bom", "nested", "long-int", "surrogate", "bad-utf8", "nan", "garbage-tail", "empty", "oversized"]))
    if kind == "binary":
        return draw(st.binary(max_size=200))
    if kind == "truncated":
        return valid[: draw(st.integers(0, max(0, len(valid) - 1)))]
    if kind == "bom":
        return b"\xef\xbb\xbf" + valid
    if kind == "nested":
        depth = draw(st.sampled_from([10, 500, 1500, 3000, MAX_BODY // 2]))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        return (opener * depth + "1" + closer * depth).encode()[:MAX_BODY] if draw(st.booleans()) else (opener * depth).encode()[:MAX_BODY]
    if kind == "long-int":
        digits = draw(st.sampled_from([19, 400, 4300, 4301, 4500]))
        where = draw(st.sampled_from(['{{"idInstance": {n}, "reason": "number_blocked"}}', '{{"typeWebhook": "x", "instanceData": {{"idInstance": 1}}, "timestamp": {n}}}', "{n}"]))
        return where.format(n="9" * digits).encode()
    if kind == "surrogate":
        return draw(_lone_surrogate_bodies())
    if kind == "bad-utf8":
        at = draw(st.integers(0, len(valid)))
        return valid[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80"])) + valid[at:]
    if kind == "nan":
        return draw(st.sampled_from([b'{"idInstance": NaN, "reason": "number_blocked"}', b'{"idInstance": Infinity, "reason": "number_blocked"}', b"NaN", b"-Infinity"]))
    if kind == "garbage-tail":
        return valid + draw(st.sampled_from([b"x", b"}", b",", b" {}"]))
    if kind == "empty":
        return draw(st.sampled_from([b"", b" ", b"\n", b"null"]))
    return valid + b" " * (MAX_BODY + 1 - len(valid)) if len(valid) <= MAX_BODY else valid


# --------------------------------------------------------------------------------------------
# In-process harness
# --------------------------------------------------------------------------------------------


@dataclass
class Step:
    path: str
    raw: bytes
    response: httpx.Response
    events: list[dict]  # emitted by this request
    wids: dict[int, str]  # the wid store after this request


@pytest.fixture(scope="module")
def run():
    """An event loop in a thread of its own: the hypothesis tests are plain functions that call into it."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="receiver-properties", daemon=True)
    thread.start()
    yield lambda coro: asyncio.run_coroutine_threadsafe(coro, loop).result(60)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records = 0
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        try:
            text = self.format(record) + repr(record.args)
        except Exception:
            text = repr(record.__dict__)
        if CANARY in text:
            self.leaks.append(text[:500])


@pytest.fixture(scope="module")
def logs():
    """Every log record of the module, at DEBUG, searched for the secret."""
    capture = _Capture()
    loggers = [logging.getLogger(name) for name in ("greenapi", "receiver", "prefect", "uvicorn", "fastapi", "starlette", "websockets")]
    levels = [logger.level for logger in loggers]
    for logger in (logging.getLogger(), logging.getLogger("prefect")):
        logger.addHandler(capture)  # prefect's loggers may not propagate to the root
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        for logger in (logging.getLogger(), logging.getLogger("prefect")):
            logger.removeHandler(capture)


RESPONSES: list[httpx.Response] = []  # every response of the module, for the canary


async def _exchange(requests: list[tuple[str, bytes]], seed: dict[int, str] | None = None, headers: dict | None = None) -> list[Step]:
    emitter, wids = RecordingEmitter(), MemoryWidStore(seed)
    app = create_app(SETTINGS, limits=LIMITS, emitter=emitter, wid_store=wids.store(), registry=MemoryRegistry(unregistered=UNREGISTERED))
    steps = []
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        for path, raw in requests:
            before = len(emitter.events)
            response = await client.post(path, content=raw, headers=headers or AUTH)
            RESPONSES.append(response)
            steps.append(Step(path, raw, response, [json.loads(e.model_dump_json()) for e in emitter.events[before:]], dict(wids.wids)))
    return steps


def check_step(step: Step, expected: Expected, model: Model) -> None:
    r, what = step.response, f"{step.path} {step.raw[:300]!r}"
    assert r.status_code < 500, f"{r.status_code} {r.text[:300]} for {what}"
    assert r.status_code == expected.status, f"{r.status_code} {r.text[:300]} != expected {expected.status} for {what}"
    body = r.json()
    if expected.accepted is not None:
        assert body == expected.accepted, (body, expected.accepted, what)
    elif expected.status == 200:
        assert set(body) == {"status", "why"} and body["status"] == "ignored" and body["why"], body
    else:
        assert set(body) == {"detail"}, body
        if expected.status == 422:
            assert isinstance(body["detail"], list) and body["detail"], body
            assert all(set(error) == {"loc", "msg", "type"} for error in body["detail"]), body
    if expected.event is None:
        assert step.events == [], f"emitted {step.events} for {what}"
    else:
        assert len(step.events) == 1, f"emitted {len(step.events)} events for {what}"
        got = step.events[0]
        assert got["id"] == expected.event["id"] and got["event"] == expected.event["event"], (got, expected.event)
        assert {k: got["resource"].get(k) for k in expected.event["resource"]} == expected.event["resource"], got["resource"]
        assert got["payload"] == expected.event["payload"], (got["payload"], expected.event["payload"])
    if step.path == WEBHOOK:
        assert step.wids == model.wids, f"wid store {step.wids} != model {model.wids} after {what}"


def _check_sequence(run, requests: list[tuple[str, bytes]], seed: dict[int, str] | None = None, name: str = "") -> None:
    model = Model(wids=dict(seed or {}), unregistered=UNREGISTERED)
    steps = run(_exchange(requests, seed))
    _count(name, len(steps))
    for step in steps:
        check_step(step, model.expect(step.path, step.raw), model)


FAST = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --------------------------------------------------------------------------------------------
# In-process properties
# --------------------------------------------------------------------------------------------


def test_webhook_bodies_valid_and_invalid(run, logs):
    @FAST
    @given(sequences(webhook_bodies()), st.sampled_from([None, {IDS[0]: WIDS[1]}, {IDS[0]: WIDS[1], IDS[1]: WIDS[2]}]))
    def check(bodies, seed):
        _check_sequence(run, [(WEBHOOK, raw) for raw in bodies], seed, name="webhook")

    check()


def test_webhook_state_changes_always_decide_as_documented(run, logs):
    """Only stateInstanceChanged bodies, mostly actionable: blocked, and authorized with recorded/other/first wids."""
    state_bodies = st.fixed_dictionaries(
        {
            "typeWebhook": st.just("stateInstanceChanged"),
            "instanceData": st.fixed_dictionaries({"idInstance": st.sampled_from(IDS), "wid": st.sampled_from(WIDS)}, optional={"typeInstance": st.just("whatsapp")}),
            "timestamp": st.sampled_from([1705902314, 1705902315, 1705902316]),
            "stateInstance": st.sampled_from(["blocked", "authorized", "authorized", "notAuthorized"]),
        }
    )

    @settings(FAST, max_examples=150)
    @given(sequences(state_bodies), st.sampled_from([None, {IDS[0]: WIDS[1]}, {IDS[1]: WIDS[2], IDS[2]: WIDS[3]}]))
    def check(bodies, seed):
        _check_sequence(run, [(WEBHOOK, raw) for raw in bodies], seed, name="webhook-states")

    check()


def test_queue_reset_bodies_valid_and_invalid(run, logs):
    @FAST
    @given(sequences(queue_reset_bodies()))
    def check(bodies):
        _check_sequence(run, [(QUEUE_RESET, raw) for raw in bodies], name="queue-reset")

    check()


def test_raw_bytes_are_4xx_or_handled_as_json(run, logs):
    @settings(FAST, max_examples=300)
    @given(st.sampled_from([WEBHOOK, QUEUE_RESET]), raw_bodies())
    def check(path, raw):
        _check_sequence(run, [(path, raw)], name="raw")

    check()


# --------------------------------------------------------------------------------------------
# Authentication
# --------------------------------------------------------------------------------------------


def _one_off(secret: str, at: int) -> str:
    return secret[:at] + ("x" if secret[at] != "x" else "y") + secret[at + 1 :]


def almost_right_headers(secret: str) -> dict[str, dict[str, str]]:
    mid = len(secret) // 2
    variants = {
        "missing": {},
        "empty": {"Authorization": ""},
        "scheme-only": {"Authorization": "Bearer"},
        "scheme-space": {"Authorization": "Bearer "},
        "basic": {"Authorization": f"Basic {secret}"},
        "token": {"Authorization": f"Token {secret}"},
        "no-scheme": {"Authorization": secret},
        "no-space": {"Authorization": f"Bearer{secret}"},
        "wrong": {"Authorization": "Bearer not-the-secret"},
        "off-start": {"Authorization": f"Bearer {_one_off(secret, 0)}"},
        "off-middle": {"Authorization": f"Bearer {_one_off(secret, mid)}"},
        "off-end": {"Authorization": f"Bearer {_one_off(secret, len(secret) - 1)}"},
        "prefix": {"Authorization": f"Bearer {secret[:-1]}"},
        "half": {"Authorization": f"Bearer {secret[:mid]}"},
        "plus-one": {"Authorization": f"Bearer {secret}x"},
        "doubled": {"Authorization": f"Bearer {secret}{secret}"},
        "upper": {"Authorization": f"Bearer {secret.upper()}"},
        "x-header": {"X-Authorization": f"Bearer {secret}"},
    }
    for name in ("off-start", "off-middle", "off-end"):
        token = variants[name]["Authorization"].split(" ", 1)[1]
        assert len(token) == len(secret) and token != secret
    return variants


def _accepted_by_bearer(header: str | None) -> bool:
    """RFC 6750/7235: scheme `Bearer` (any case), then the token; surrounding whitespace is not part of it."""
    if not header:
        return False
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and token.strip() == CANARY


AUTH_CASES = [(path, name) for path in (WEBHOOK, QUEUE_RESET) for name in almost_right_headers(CANARY)]
ACTIONABLE = {
    WEBHOOK: json.dumps({"typeWebhook": "stateInstanceChanged", "instanceData": {"idInstance": IDS[0], "wid": WIDS[1]}, "timestamp": 1, "stateInstance": "blocked"}).encode(),
    QUEUE_RESET: json.dumps({"idInstance": IDS[0], "reason": "number_blocked", "deliveryId": "auth"}).encode(),
}


@pytest.mark.parametrize(("path", "name"), AUTH_CASES, ids=[f"{p.rsplit('/', 1)[1]}-{n}" for p, n in AUTH_CASES])
def test_missing_or_almost_right_secrets_get_401_and_emit_nothing(run, logs, path, name):
    headers = {"Content-Type": "application/json", **almost_right_headers(CANARY)[name]}
    for raw in (ACTIONABLE[path], b"{not json", b"x" * (MAX_BODY * 2)):  # the token is checked before the body
        (step,) = run(_exchange([(path, raw)], headers=headers))
        assert step.response.status_code == 401, (name, step.response.status_code, step.response.text)
        assert step.response.headers["www-authenticate"] == "Bearer"
        assert step.response.json() == {"detail": "missing or wrong bearer token"}
        assert step.events == [] and step.wids == {}
    (ok,) = run(_exchange([(path, ACTIONABLE[path])]))  # the same request with the secret is accepted
    assert ok.response.status_code == (200 if path == WEBHOOK else 202) and len(ok.events) == 1


def test_random_authorization_headers(run, logs):
    latin1 = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
    near = st.one_of(
        st.builds(lambda i, c: CANARY[:i] + c + CANARY[i + 1 :], st.integers(0, len(CANARY) - 1), latin1),  # one replaced
        st.builds(lambda i: CANARY[:i] + CANARY[i + 1 :], st.integers(0, len(CANARY) - 1)),  # one deleted
        st.builds(lambda i, c: CANARY[:i] + c + CANARY[i:], st.integers(0, len(CANARY)), latin1),  # one inserted
        st.just(CANARY),
        st.text(latin1, max_size=60),
    )
    headers = st.builds(lambda scheme, sep, token: f"{scheme}{sep}{token}", st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "", "Bearer:"]), st.sampled_from([" ", "", "  "]), near)

    @settings(FAST, max_examples=150)
    @given(st.sampled_from([WEBHOOK, QUEUE_RESET]), headers)
    def check(path, header):
        (step,) = run(_exchange([(path, ACTIONABLE[path])], headers={"Content-Type": "application/json", "Authorization": header.encode("latin-1")}))
        _count("auth")
        if _accepted_by_bearer(header.strip()):  # a server (h11) strips the header's surrounding whitespace
            assert step.response.status_code == (200 if path == WEBHOOK else 202), (header, step.response.text)
        else:
            assert step.response.status_code == 401, (header, step.response.status_code)
            assert step.events == []

    check()


# --------------------------------------------------------------------------------------------
# A real sample: loopback receiver, real Prefect server
# --------------------------------------------------------------------------------------------

_fresh_ids = itertools.count(7_910_000_001)


def relabel(raw: bytes, mapping: dict[int, int]) -> bytes:
    """Move a body's valid idInstance to an id of this example only (nothing else changes)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return raw
    holder = body.get("instanceData") if isinstance(body, dict) and "instanceData" in body else body
    if isinstance(holder, dict) and _is_int(holder.get("idInstance"), 1, ID_INSTANCE_MAX):
        old = holder["idInstance"]
        holder["idInstance"] = mapping.setdefault(_as_int(old), next(_fresh_ids))
        return json.dumps(body).encode()
    return raw


@dataclass
class RealSample:
    expected: dict[str, dict] = field(default_factory=dict)  # event id -> expected event
    instances: set[int] = field(default_factory=set)
    requests: int = 0
    auth_instance: int = 0


@pytest.fixture(scope="module")
def real(prefect_server, logs):
    sample = RealSample()
    # Every instance counts as registered here (the ids are fresh per example); the Prefect-backed registry
    # has its own tests (test_receiver_webhook_examples.py).
    with ReceiverServer(SETTINGS, limits=LIMITS, registry=MemoryRegistry()) as server, httpx.Client(base_url=server.url, timeout=30) as http:

        def send(path: str, raw: bytes, model: Model, mapping: dict[int, int]) -> None:
            raw = relabel(raw, mapping)
            expected = model.expect(path, raw)
            response = http.post(path, content=raw, headers=AUTH)
            RESPONSES.append(response)
            sample.requests += 1
            assert response.status_code == expected.status, (response.status_code, response.text[:300], raw[:300])
            if expected.accepted is not None:
                assert response.json() == expected.accepted
            if expected.event is not None:
                sample.expected[expected.event["id"]] = expected.event
            sample.instances.update(mapping.values())

        @settings(FAST, max_examples=25, phases=[Phase.generate])
        @given(st.one_of(sequences(webhook_bodies()).map(lambda b: (WEBHOOK, b)), sequences(queue_reset_bodies()).map(lambda b: (QUEUE_RESET, b))))
        def check(path_bodies):
            path, bodies = path_bodies
            model, mapping = Model(), {}
            for raw in bodies:
                send(path, raw, model, mapping)

        check()

        @settings(FAST, max_examples=15, phases=[Phase.generate])
        @given(sequences(st.fixed_dictionaries({
            "typeWebhook": st.just("stateInstanceChanged"),
            "instanceData": st.fixed_dictionaries({"idInstance": st.sampled_from(IDS[:2]), "wid": st.sampled_from(WIDS[1:])}),
            "timestamp": st.sampled_from([1705902314, 1705902315]),
            "stateInstance": st.sampled_from(["blocked", "authorized", "authorized"]),
        })))
        def check_states(bodies):  # mostly actionable, through the real wid store (Prefect Variables)
            model, mapping = Model(), {}
            for raw in bodies:
                send(WEBHOOK, raw, model, mapping)

        check_states()

        # nothing with a wrong secret reaches Prefect
        sample.auth_instance = a = next(_fresh_ids)
        sample.instances.add(a)
        for path in (WEBHOOK, QUEUE_RESET):
            raw = relabel(ACTIONABLE[path], {IDS[0]: a})
            for name, headers in almost_right_headers(CANARY).items():
                if name == "scheme-space":
                    continue  # h11 refuses to send a header value with trailing whitespace
                response = http.post(path, content=raw, headers={"Content-Type": "application/json", **headers})
                RESPONSES.append(response)
                assert response.status_code == 401, (name, response.status_code)
        sample.requests += 2 * (len(almost_right_headers(CANARY)) - 1)
    _count("real", sample.requests)
    return sample


def test_real_sample_every_accepted_event_arrives_once_and_nothing_else(real, prefect_server):
    assert real.expected, "the sample accepted nothing: it checks nothing"
    rows = wait_for_stored_events(prefect_server, [f"greenapi.instance.{i}" for i in real.instances], set(real.expected), timeout=30)
    ids = [r[0] for r in rows]
    assert sorted(set(ids)) == sorted(real.expected), f"missing {set(real.expected) - set(ids)}, unexpected {set(ids) - set(real.expected)}"
    assert len(ids) == len(set(ids)), "an event arrived twice"
    for event_id, name, resource_id, payload in rows:
        expected = real.expected[event_id]
        assert name == expected["event"] and resource_id == expected["resource"]["prefect.resource.id"]
        assert payload == expected["payload"]
    assert not [r for r in rows if r[2] == f"greenapi.instance.{real.auth_instance}"]


# --------------------------------------------------------------------------------------------
# Counts and the canary
# --------------------------------------------------------------------------------------------


def test_enough_inputs_were_generated(real):
    total = sum(COUNTS.values())
    print(f"\nreceiver property inputs: {COUNTS} total={total}")
    if {"webhook", "webhook-states", "queue-reset", "raw", "auth"} <= set(COUNTS):  # the whole module ran
        assert total >= 1000, COUNTS


def test_the_secret_appears_in_no_response_log_event_or_database(real, logs, prefect_server):
    assert RESPONSES, "no responses recorded"
    for response in RESPONSES:
        assert CANARY not in response.text and CANARY not in str(response.headers)
    assert logs.records > 0, "the log capture saw nothing"
    assert logs.leaks == []
    assert "variable" in database_tables_text(prefect_server)  # the real sample's accounts went there
    assert where_in_database(prefect_server, CANARY) == []
