"""GREEN-API's rules, without HTTP: instances, queues, the clear window, the count snapshot,
arrivals, injected faults, webhook delivery's bookkeeping, the call log, the call counts, the delivery log
and the violations list.

All public methods take one lock, so the server thread, the delivery thread and test code can share one state.
Tokens are kept only in ``_Instance.token`` and are never returned, logged or summarised; a webhookUrlToken
only leaves through ``Delivery.token`` (to the deliverer, for the Authorization header).
"""

from __future__ import annotations

import hmac
import json
import math
import re
import secrets
import threading
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

from .clock import Clock
from .config import (
    DOCUMENTED_SETTINGS,
    METHOD_VERBS,
    MINIMAL_SETTINGS_FIELDS,
    READ_ONLY_SETTINGS,
    WEBHOOK_URL_CLEAR_REASON,
    EmulatorConfig,
    FaultRule,
    InstancePatch,
    InstanceSeed,
    NewNotifications,
    RefuseClears,
    StateChange,
)

_PATH_RE = re.compile(r"^(?P<v3>/v3)?/waInstance(?P<id>[^/]*)/(?P<method>[^/]+)(?:/(?P<rest>.*))?$")
RECEIVE_TIMEOUT_RANGE = (5, 60)
_SAFE_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
CALL_LOG_LIMIT = 10_000  # the default of EmulatorConfig.call_log_limit
VIOLATION_LIMIT = 10_000


class ControlError(Exception):
    """Bad control-API input: carries the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Outcome:
    """What the HTTP layer should answer to one GREEN-API request."""

    status: int = 200
    payload: Any = None  # a JSON value, used when ``text`` is None
    text: str | None = None  # a raw body (non-JSON answers)
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    fault: str | None = None
    # Set by dispatch() for the app to act on:
    instance: int | None = None
    method: str | None = None
    token_ok: bool | None = None
    delay_seconds: float = 0.0  # sleep, then ask answer() for the normal reply
    faults_cleared_seen: int = 0  # the instance's clear_faults() count when the delay began: a later one ends it
    disconnect: bool = False  # drop the connection without a response
    poll_until: float | None = None  # receiveNotification long-poll deadline (clock time)
    query: dict[str, str] = field(default_factory=dict)
    extra: str | None = None
    body: bytes = b""  # the request body (setSettings); never logged
    received_at: float | None = None  # clock time the request arrived (a delayed answer comes later)


@dataclass
class _Queued:
    """One queued notification: its body as made when it was queued (never changed after)."""

    body: dict[str, Any]
    queued_at: float  # clock time, for notification_ttl_seconds


@dataclass(frozen=True)
class Delivery:
    """One POST the deliverer is to make; hand it back to ``EmulatorState.delivery_answered``."""

    instance: int
    receipt_id: int
    url: str
    token: str = field(repr=False)  # the webhookUrlToken: the Authorization header, nothing else
    body: dict[str, Any] = field(repr=False)  # message text: never logged
    timeout: float
    started_at: float  # wall
    instance_wid: str
    instance_state: str
    epoch: int  # the state's reset count: an answer from before a reset is ignored
    entry: _Queued = field(repr=False, compare=False)


@dataclass
class _PendingFault:
    rule: FaultRule
    left: int | None  # None = forever
    skip: int = 0  # matching requests still to let through before the fault applies


@dataclass
class _Instance:
    id: int
    token: str
    state: str
    wid: str
    webhook_url: str
    queue: "OrderedDict[int, _Queued]" = field(default_factory=OrderedDict)  # receiptId -> notification, FIFO
    next_receipt: int = 1
    outgoing: int = 0
    last_clear: float | None = None
    clear_before_first_call: float | None = None  # seconds; applied at the first authenticated call
    #: How a client can know the current clear window: None (seeded: someone else cleared, no
    #: client has been told yet), "api_clear" (opened by a clear through the API) or
    #: "left_time" (announced by a leftTime answer).
    window_known: str | None = None
    window_known_at: float | None = None  # clock time it became knowable
    clears_done: int = 0
    faults_cleared: int = 0  # clear_faults() calls: each ends the delays of the requests held then
    snapshot_value: int | None = None
    snapshot_at: float | None = None
    arrival_rate: float = 0.0
    arrival_anchor: float = 0.0
    arrival_fraction: float = 0.0
    cyrillic_count: bool = False
    refuse: RefuseClears | None = None
    faults: list[_PendingFault] = field(default_factory=list)
    rate_hits: dict[str, deque] = field(default_factory=dict)
    type_instance: str = "whatsapp"
    v3_prefix_required: bool = False
    count_zero_at: int | None = None
    webhook_url_unreachable: bool = False
    clear_fails_with_webhook_url: bool | str = False
    strict_receive_timeout: bool = False
    settings_fields: str = "minimal"
    #: Every settings field but wid and webhookUrl (those are ``wid`` and ``webhook_url``).
    settings: dict[str, Any] = field(default_factory=dict)
    settings_apply_delay: float = 0.0
    pending_settings: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # (apply at, changes)
    settings_saved: int = 0
    name: str = ""
    deleted: bool = False
    is_expired: bool = False
    created_wall: float = 0.0
    delivering: bool = False  # a POST to the webhookUrl is in flight
    last_post_at: float | None = None  # clock time the last delivery attempt started (delivery_interval_seconds)
    retry_at: float | None = None  # clock time the failed head may be POSTed again
    delivered: int = 0  # deliveries answered 200

    def __repr__(self) -> str:  # never show the token
        return f"_Instance(id={self.id}, state={self.state!r}, queue={len(self.queue)})"


def summarise(payload: Any) -> Any:
    """A short, token-free summary of a JSON answer for the call log."""
    if payload is None:
        return None
    if isinstance(payload, dict):
        out: dict[str, Any] = {}
        for key, value in payload.items():
            if "token" in key.lower() and isinstance(value, str):
                out[key] = "***" if value else ""  # webhookUrlToken: a secret of the user's webhook server
            elif isinstance(value, str):
                out[key] = value if len(value) <= 120 else value[:117] + "..."
            elif value is None or isinstance(value, (bool, int, float)):
                out[key] = value
        return out
    if isinstance(payload, list):
        return {"list_length": len(payload)}
    if isinstance(payload, str):
        return {"value": payload[:120]}
    return {"value": payload}


def url_host(url: str) -> str:
    """``host:port`` of a URL (the default port when none is given): where a webhook went, without its path,
    query or credentials."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme.lower())
    except ValueError:
        return "<invalid>"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port else host


class EmulatorState:
    """The emulator's whole world. Thread-safe; driven by ``clock``."""

    def __init__(self, config: EmulatorConfig | dict | None = None, clock: Clock | None = None) -> None:
        self._lock = threading.RLock()
        self.clock = clock or Clock()
        self._config = self._coerce_config(config)
        self._instances: dict[int, _Instance] = {}
        self._calls: list[dict[str, Any]] = []
        # Every call since the last reset (or clear_calls), by (instance, method, answered): never capped.
        self._counts: Counter[tuple[int | None, str | None, bool]] = Counter()
        self._violations: list[dict[str, Any]] = []
        self._seq = 0
        self._deliveries: list[dict[str, Any]] = []
        self._delivery_seq = 0
        self._epoch = 0  # reset() count: deliveries answered after a reset belong to the old world
        self._listeners: list[Callable[[], None]] = []

    # ------------------------------------------------------------ config / reset

    @staticmethod
    def _coerce_config(config: EmulatorConfig | dict | None) -> EmulatorConfig:
        if config is None:
            return EmulatorConfig()
        if isinstance(config, EmulatorConfig):
            return config.model_copy(deep=True)
        return EmulatorConfig.model_validate(config)

    @property
    def config(self) -> EmulatorConfig:
        with self._lock:
            return self._config.model_copy(deep=True)

    def set_config(self, config: EmulatorConfig | dict) -> EmulatorConfig:
        """Replace the config. A dict is merged over the current values."""
        with self._lock:
            if isinstance(config, dict):
                merged = {**self._config.model_dump(), **config}
                self._config = EmulatorConfig.model_validate(merged)
            else:
                self._config = self._coerce_config(config)
            self._wake()
            return self._config.model_copy(deep=True)

    def reset(self, config: EmulatorConfig | dict | None = None) -> None:
        """Forget instances, calls, violations and deliveries; optionally install a new config.
        The clock offset is kept (the clock never goes backwards)."""
        with self._lock:
            self._config = self._coerce_config(config)
            self._instances.clear()
            self._calls.clear()
            self._counts.clear()
            self._violations.clear()
            self._seq = 0
            self._deliveries.clear()
            self._delivery_seq = 0
            self._epoch += 1
            self._wake()

    def advance_clock(self, seconds: float) -> float:
        """Move the emulator's clock forward (windows, snapshots, arrivals, redelivery pauses)."""
        with self._lock:
            offset = self.clock.advance(seconds)
            self._wake()  # a redelivery pause may be over
            return offset

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (from any thread, under the state's lock: it must not block or call back) whenever
        something may have become deliverable: the deliverer's wake-up."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _wake(self) -> None:
        for listener in self._listeners:
            listener()

    # ------------------------------------------------------------ instances

    def add_instances(self, seeds: Iterable[InstanceSeed | dict]) -> list[dict[str, Any]]:
        """Create instances (all or none). Duplicate ids -> ControlError 409."""
        parsed = [s if isinstance(s, InstanceSeed) else InstanceSeed.model_validate(s) for s in seeds]
        with self._lock:
            ids = [s.id_instance for s in parsed]
            dupes = sorted({i for i in ids if ids.count(i) > 1 or i in self._instances})
            if dupes:
                raise ControlError(409, f"instance(s) already exist: {dupes}")
            now = self.clock.now()
            for seed in parsed:
                inst = _Instance(
                    id=seed.id_instance,
                    token=seed.api_token,
                    state=seed.state,
                    wid=seed.wid,
                    webhook_url=seed.webhook_url,
                    outgoing=seed.outgoing_messages,
                    cyrillic_count=seed.cyrillic_count,
                    refuse=seed.refuse_clears.model_copy() if seed.refuse_clears else None,
                    arrival_rate=seed.arrival_rate_per_second,
                    arrival_anchor=now,
                    type_instance=seed.type_instance,
                    v3_prefix_required=seed.v3_prefix_required,
                    count_zero_at=seed.count_zero_at,
                    webhook_url_unreachable=seed.webhook_url_unreachable,
                    clear_fails_with_webhook_url=seed.clear_fails_with_webhook_url,
                    strict_receive_timeout=seed.strict_receive_timeout,
                    settings_fields=seed.settings_fields,
                    settings={k: v for k, v in {**DOCUMENTED_SETTINGS, **seed.settings}.items() if k not in ("wid", "webhookUrl")},
                    settings_apply_delay=seed.settings_apply_delay_seconds,
                    name=seed.name,
                    deleted=seed.deleted,
                    is_expired=seed.is_expired,
                    created_wall=self.clock.wall(),
                )
                if seed.cleared_seconds_ago is not None:
                    inst.last_clear = now - seed.cleared_seconds_ago
                inst.clear_before_first_call = seed.cleared_before_first_call_seconds
                self._enqueue(inst, seed.notifications)
                if seed.count_snapshot is not None:
                    inst.snapshot_value = seed.count_snapshot
                    inst.snapshot_at = now
                self._instances[inst.id] = inst
            self._wake()
            return [self._view(self._instances[i], now) for i in ids]

    def add_instance(self, seed: InstanceSeed | dict | None = None, **fields: Any) -> dict[str, Any]:
        if seed is None:
            seed = fields
        return self.add_instances([seed])[0]

    def _get(self, id_instance: int) -> _Instance:
        inst = self._instances.get(id_instance)
        if inst is None:
            raise ControlError(404, f"no instance {id_instance}")
        return inst

    def instance(self, id_instance: int) -> dict[str, Any]:
        with self._lock:
            inst = self._get(id_instance)
            now = self.clock.now()
            self._materialise(inst, now)
            return self._view(inst, now)

    def instances(self) -> list[dict[str, Any]]:
        with self._lock:
            now = self.clock.now()
            out = []
            for inst in self._instances.values():
                self._materialise(inst, now)
                out.append(self._view(inst, now))
            return out

    def patch_instance(self, id_instance: int, patch: InstancePatch | dict) -> dict[str, Any]:
        """A silent edit: a state or wid given here queues no stateInstanceChanged (see ``change_state``)."""
        if not isinstance(patch, InstancePatch):
            patch = InstancePatch.model_validate(patch)
        with self._lock:
            inst = self._get(id_instance)
            now = self.clock.now()
            self._materialise(inst, now)
            given = patch.model_fields_set
            if patch.state is not None:
                inst.state = patch.state
            if patch.wid is not None:
                inst.wid = patch.wid
            if patch.webhook_url is not None:
                inst.webhook_url = patch.webhook_url
            if patch.arrival_rate_per_second is not None:
                inst.arrival_rate = patch.arrival_rate_per_second
                inst.arrival_anchor = now
            if patch.cyrillic_count is not None:
                inst.cyrillic_count = patch.cyrillic_count
            if "refuse_clears" in given:
                inst.refuse = patch.refuse_clears.model_copy() if patch.refuse_clears else None
            if "count_zero_at" in given:
                inst.count_zero_at = patch.count_zero_at
            for name in ("webhook_url_unreachable", "clear_fails_with_webhook_url", "strict_receive_timeout"):
                if getattr(patch, name) is not None:
                    setattr(inst, name, getattr(patch, name))
            self._enqueue(inst, patch.add_notifications)
            inst.outgoing += patch.add_outgoing
            self._wake()  # a webhookUrl set, or notifications added: something may be deliverable
            return self._view(inst, now)

    def add_faults(self, id_instance: int, rules: Iterable[FaultRule | dict]) -> dict[str, Any]:
        parsed = [r if isinstance(r, FaultRule) else FaultRule.model_validate(r) for r in rules]
        with self._lock:
            inst = self._get(id_instance)
            inst.faults.extend(_PendingFault(rule=r, left=r.times, skip=r.after) for r in parsed)
            return self._view(inst, self.clock.now())

    def clear_faults(self, id_instance: int) -> dict[str, Any]:
        """Drop the instance's pending faults; requests held by a ``delay`` fault are answered now."""
        with self._lock:
            inst = self._get(id_instance)
            inst.faults.clear()
            inst.faults_cleared += 1
            return self._view(inst, self.clock.now())

    def delay_ended(self, outcome: Outcome) -> bool:
        """Whether a delayed request's delay was ended early: its instance's faults cleared since, or it is gone."""
        with self._lock:
            inst = self._instances.get(outcome.instance)  # type: ignore[arg-type]
            return inst is None or inst.faults_cleared != outcome.faults_cleared_seen

    def partner_instances(self, partner_token: str) -> dict[str, Any] | list[dict[str, Any]]:
        """GREEN-API's partner ``getInstances``: every instance, in GREEN-API's shape (with its token), or the
        error body GREEN-API sends with HTTP 200 when the partner token is wrong."""
        with self._lock:
            expected = self._config.partner_token
            if not expected or not hmac.compare_digest(partner_token.encode(), expected.encode()):
                return {"code": 401, "description": "Unauthorized"}
            return [self._partner_view(inst) for inst in sorted(self._instances.values(), key=lambda i: i.id)]

    @staticmethod
    def _partner_view(inst: _Instance) -> dict[str, Any]:
        created = datetime.fromtimestamp(inst.created_wall, timezone.utc)
        stamp = "%Y-%m-%dT%H:%M:%S.000Z"
        return {
            "idInstance": inst.id,
            "name": inst.name,
            "typeInstance": inst.type_instance,
            "typeAccount": "",
            "partnerUserUiid": "",
            "timeCreated": created.strftime(stamp),
            "timeDeleted": created.strftime(stamp) if inst.deleted else "",
            "apiTokenInstance": inst.token,
            "deleted": inst.deleted,
            "tariff": "Developer",
            "isFree": False,
            "isPartner": True,
            "expirationDate": (created + timedelta(days=30)).strftime(stamp),
            "isExpired": inst.is_expired,
        }

    def _view(self, inst: _Instance, now: float) -> dict[str, Any]:
        window_left = 0.0
        if inst.last_clear is not None:
            window_left = max(0.0, self._config.clear_window_seconds - (now - inst.last_clear))
        return {
            "id_instance": inst.id,
            "state": inst.state,
            "wid": inst.wid,
            "webhook_url": inst.webhook_url,
            "queue_length": len(inst.queue),
            "count_snapshot": inst.snapshot_value,
            "snapshot_age_seconds": None if inst.snapshot_at is None else now - inst.snapshot_at,
            "outgoing_messages": inst.outgoing,
            "window_left_seconds": window_left,
            "window_known": inst.window_known if window_left > 0 else None,
            "clears_done": inst.clears_done,
            "faults_pending": [
                {"method": f.rule.method, "fault": f.rule.fault.model_dump(), "times": f.left, "after": f.skip}
                for f in inst.faults
            ],
            "arrival_rate_per_second": inst.arrival_rate,
            "cyrillic_count": inst.cyrillic_count,
            "refuse_clears": inst.refuse.model_dump() if inst.refuse else None,
            "type_instance": inst.type_instance,
            "v3_prefix_required": inst.v3_prefix_required,
            "count_zero_at": inst.count_zero_at,
            "webhook_url_unreachable": inst.webhook_url_unreachable,
            "clear_fails_with_webhook_url": inst.clear_fails_with_webhook_url,
            "strict_receive_timeout": inst.strict_receive_timeout,
            "settings_fields": inst.settings_fields,
            "settings_saved": inst.settings_saved,
            "settings_pending": len(inst.pending_settings),
            "name": inst.name,
            "deleted": inst.deleted,
            "is_expired": inst.is_expired,
            "delivering": inst.delivering,
            "next_delivery_at": inst.retry_at if inst.retry_at is not None and inst.retry_at > now else None,
            "delivered": inst.delivered,
        }

    # ------------------------------------------------------------ queue internals

    def _enqueue(self, inst: _Instance, n: int, type_webhook: str = "incomingMessageReceived") -> list[int]:
        """Queue ``n`` notifications of the account on the instance now, behind what is queued; their receiptIds."""
        now = self.clock.now()
        receipts = []
        for _ in range(n):
            receipt = inst.next_receipt
            inst.next_receipt += 1
            inst.queue[receipt] = _Queued(self._make_body(inst, type_webhook, receipt), now)
            receipts.append(receipt)
        return receipts

    def _make_body(self, inst: _Instance, type_webhook: str, receipt: int) -> dict[str, Any]:
        """A notification body in GREEN-API's shape, with the instance's account and state as they are now."""
        body: dict[str, Any] = {
            "typeWebhook": type_webhook,
            "instanceData": {"idInstance": inst.id, "wid": inst.wid, "typeInstance": inst.type_instance},
            "timestamp": int(self.clock.wall()),
        }
        if type_webhook == "stateInstanceChanged":
            body["stateInstance"] = inst.state
        elif type_webhook.endswith("MessageReceived"):  # incoming..., outgoing..., outgoingAPI...
            contact = "79995550000@c.us"
            incoming = type_webhook.startswith("incoming")
            body["idMessage"] = secrets.token_hex(10).upper()
            body["senderData"] = {
                "chatId": contact,
                "chatName": "Stale Sender",
                "sender": contact if incoming else inst.wid,
                "senderName": "Stale Sender" if incoming else "",
            }
            body["messageData"] = {
                "typeMessage": "textMessage",
                "textMessageData": {"textMessage": f"stale #{receipt}"},
            }
        return body

    def _materialise(self, inst: _Instance, now: float) -> None:
        """Let notifications that 'arrived' since the last look appear in the queue, settings saved
        by setSettings apply once their delay is over, and notifications past their TTL go."""
        while inst.pending_settings and inst.pending_settings[0][0] <= now:
            self._apply_settings(inst, inst.pending_settings.pop(0)[1])
        if inst.arrival_rate > 0 and now > inst.arrival_anchor:
            inst.arrival_fraction += (now - inst.arrival_anchor) * inst.arrival_rate
            whole = int(inst.arrival_fraction)
            inst.arrival_fraction -= whole
            self._enqueue(inst, whole)
        inst.arrival_anchor = max(inst.arrival_anchor, now)
        oldest = now - self._config.notification_ttl_seconds
        while inst.queue and next(iter(inst.queue.values())).queued_at < oldest:
            inst.queue.popitem(last=False)  # FIFO: the head is the oldest

    @staticmethod
    def _head(inst: _Instance) -> dict[str, Any]:
        receipt, entry = next(iter(inst.queue.items()))
        return {"receiptId": receipt, "body": entry.body}

    # ------------------------------------------------------------ GREEN-API dispatch

    def dispatch(self, verb: str, path: str, query: dict[str, str] | None = None, body: bytes = b"") -> Outcome:
        """Route, authenticate and answer one GREEN-API request.

        Order: bad URL / unknown method -> 404; wrong verb -> 404 (+violation);
        unknown idInstance -> 403; wrong token -> 401; then faults; then the method's rules.
        The returned Outcome may ask the caller to sleep (delay), drop the connection
        (disconnect) or long-poll (poll_until).
        """
        query = dict(query or {})
        with self._lock:
            m = _PATH_RE.match(path)
            if not m:
                return Outcome(404, {"error": "unknown URL"})
            id_text, method, rest, v3 = m.group("id"), m.group("method"), m.group("rest"), m.group("v3") is not None
            id_instance = int(id_text) if id_text.isdigit() and len(id_text) <= 12 else None
            if method not in METHOD_VERBS:
                return Outcome(404, {"error": "unknown method"}, instance=id_instance,
                               method=self._safe_method_name(method))
            out = Outcome(instance=id_instance, method=method, query=query)
            expected = METHOD_VERBS[method]
            if verb.upper() != expected:
                self._violation({"kind": "wrong_verb", "instance": id_instance, "method": method,
                                 "verb": verb.upper(), "expected_verb": expected})
                out.status, out.payload = 404, {"error": f"{method} expects {expected}"}
                return out
            inst = self._instances.get(id_instance) if id_instance is not None else None
            if inst is None:
                out.status, out.payload = 403, {"error": "unknown idInstance"}
                return out
            if v3 != (inst.type_instance == "v3") and (v3 or inst.v3_prefix_required):
                # /v3/... is MAX's (typeInstance v3); with v3_prefix_required a v3 instance needs it.
                out.status, out.payload = 404, {"error": "unknown URL"}
                return out
            token, _, extra = (rest or "").partition("/")
            out.token_ok = bool(token) and hmac.compare_digest(token.encode(), inst.token.encode())
            if not out.token_ok:
                out.status, out.payload = 401, {"error": "wrong apiTokenInstance"}
                return out
            out.extra = extra or None
            out.body = body
            now = self.clock.now()
            out.received_at = now
            if inst.clear_before_first_call is not None:
                inst.last_clear, inst.clear_before_first_call = now - inst.clear_before_first_call, None
            self._count_rate(inst, method, now)
            fault = self._take_fault(inst, method)
            if fault is not None:
                out.faults_cleared_seen = inst.faults_cleared
                return self._apply_fault(out, fault)
            return self._answer_locked(out, inst, now)

    def answer(self, outcome: Outcome) -> Outcome:
        """The normal (fault-free) answer for an already routed and authorised request."""
        with self._lock:
            inst = self._instances.get(outcome.instance)  # type: ignore[arg-type]
            if inst is None:  # reset while a delayed request slept
                return Outcome(403, {"error": "unknown idInstance"}, instance=outcome.instance,
                               method=outcome.method, token_ok=None, fault=outcome.fault)
            fresh = Outcome(instance=outcome.instance, method=outcome.method, token_ok=outcome.token_ok,
                            fault=outcome.fault, query=outcome.query, extra=outcome.extra,
                            received_at=outcome.received_at, body=outcome.body)
            return self._answer_locked(fresh, inst, self.clock.now())

    def poll_notification(self, id_instance: int) -> dict[str, Any] | None:
        """The oldest queued notification (not removed), or None."""
        with self._lock:
            inst = self._instances.get(id_instance)
            if inst is None or inst.webhook_url:
                return None
            self._materialise(inst, self.clock.now())
            if not inst.queue:
                return None
            return self._head(inst)

    def _safe_method_name(self, name: str) -> str:
        """Unknown method names go in the call log only if they cannot be a token."""
        if not _SAFE_NAME_RE.match(name):
            return "<unrecognised>"
        if any(hmac.compare_digest(name.encode(), i.token.encode()) for i in self._instances.values()):
            return "<unrecognised>"
        return name

    def _count_rate(self, inst: _Instance, method: str, now: float) -> None:
        limit = self._config.rate_limits_per_second.get(method)
        if limit is None:
            return
        hits = inst.rate_hits.setdefault(method, deque())
        hits.append(now)
        while hits and hits[0] <= now - 1.0:
            hits.popleft()
        if len(hits) > limit:
            self._violation({"kind": "rate_limit", "instance": inst.id, "method": method,
                             "calls_in_1s": len(hits), "limit": limit})

    def _take_fault(self, inst: _Instance, method: str) -> _PendingFault | None:
        """The first pending rule (FIFO) that matches and has no requests left to skip.
        Every matching rule still skipping counts this request as one of its ``after``."""
        chosen: _PendingFault | None = None
        for pending in inst.faults:
            if pending.rule.method not in ("*", method):
                continue
            if pending.skip > 0:
                pending.skip -= 1
            elif chosen is None:
                chosen = pending
        if chosen is not None and chosen.left is not None:
            chosen.left -= 1
            if chosen.left <= 0:
                inst.faults.remove(chosen)
        return chosen

    @staticmethod
    def _apply_fault(out: Outcome, pending: _PendingFault) -> Outcome:
        fault = pending.rule.fault
        out.fault = fault.kind
        if fault.kind == "status":
            out.status = fault.status
            out.headers = dict(fault.headers)
            if fault.body is None:
                out.payload = {"error": f"injected fault: HTTP {fault.status}"}
                out.content_type = fault.content_type or "application/json"
            elif isinstance(fault.body, str):
                out.text = fault.body
                out.content_type = fault.content_type or "text/plain; charset=utf-8"
            else:
                out.payload = fault.body
                out.content_type = fault.content_type or "application/json"
        elif fault.kind == "non_json":
            out.text = fault.body
            out.content_type = "text/plain; charset=utf-8"
        elif fault.kind == "null_body":
            out.payload = None
        elif fault.kind == "json":
            out.payload = fault.body
        elif fault.kind == "delay":
            out.delay_seconds = fault.seconds
        elif fault.kind == "disconnect":
            out.disconnect = True
            out.status = 0
        return out

    def _answer_locked(self, out: Outcome, inst: _Instance, now: float) -> Outcome:
        self._materialise(inst, now)
        method = out.method
        cfg = self._config
        if method == "getStateInstance":
            out.payload = {"stateInstance": inst.state}
        elif method == "getSettings":
            every = {"wid": inst.wid, "webhookUrl": inst.webhook_url, **inst.settings}
            names = MINIMAL_SETTINGS_FIELDS if inst.settings_fields == "minimal" else tuple(DOCUMENTED_SETTINGS)
            out.payload = {name: every[name] for name in names}
        elif method == "setSettings":
            self._set_settings(out, inst, now)
        elif method == "getWebhooksCount":
            if inst.snapshot_at is None or now - inst.snapshot_at >= cfg.count_refresh_seconds:
                inst.snapshot_value = len(inst.queue)
                inst.snapshot_at = now
            key = "\u0441ount" if inst.cyrillic_count else "count"
            value = inst.snapshot_value
            if inst.count_zero_at is not None and len(inst.queue) >= inst.count_zero_at:
                value = 0  # bug #1108: 0 on a full queue
            if inst.webhook_url_unreachable and inst.webhook_url:
                value = 0  # bug #1100: 0 while the webhookUrl does not answer
            out.payload = {key: value}
        elif method == "getMessagesCount":
            key = "\u0441ount" if inst.cyrillic_count else "count"
            out.payload = {key: inst.outgoing}
        elif method == "clearMessagesQueue":
            inst.outgoing = 0
            out.payload = {"isCleared": True}
        elif method == "clearWebhooksQueue":
            out.payload = self._clear(inst, now, now if out.received_at is None else out.received_at)
        elif method == "receiveNotification":
            self._receive(out, inst, now)
        elif method == "deleteNotification":
            receipt_text = out.extra or ""
            if not receipt_text.isdigit():
                out.status, out.payload = 400, {"error": "receiptId must be a positive integer"}
            else:
                out.payload = {"result": inst.queue.pop(int(receipt_text), None) is not None}
        return out

    def _clear(self, inst: _Instance, now: float, received_at: float) -> dict[str, Any]:
        """One clearWebhooksQueue. Too early is a violation only when a client could know the
        window when it sent the request (``received_at``; a delayed answer comes later): it was
        opened by a clear through the API (known to whoever cleared), or a leftTime answer already
        announced it. The first too-early clear in a seeded window (someone else cleared) is how a
        client learns leftTime: answered, not recorded."""
        window = self._config.clear_window_seconds
        if inst.last_clear is not None and now - inst.last_clear < window:
            left = max(1, math.ceil(window - (now - inst.last_clear)))
            if inst.window_known is not None and inst.window_known_at is not None and inst.window_known_at < received_at:
                self._violation({"kind": "clear_inside_window", "instance": inst.id, "method": "clearWebhooksQueue",
                                 "left_time": left, "window_known_from": inst.window_known})
            elif inst.window_known is None:
                inst.window_known, inst.window_known_at = "left_time", now
            return {"isCleared": False, "reason": "Too many requests", "leftTime": left}
        if inst.clear_fails_with_webhook_url and inst.webhook_url:  # bug #1107
            failing = inst.clear_fails_with_webhook_url
            return {"isCleared": False, "reason": failing if isinstance(failing, str) else WEBHOOK_URL_CLEAR_REASON}
        if inst.refuse is not None:
            reason = inst.refuse.reason
            if inst.refuse.times is not None:
                inst.refuse.times -= 1
                if inst.refuse.times <= 0:
                    inst.refuse = None
            return {"isCleared": False, "reason": reason}
        inst.queue.clear()
        inst.last_clear = now
        inst.window_known, inst.window_known_at = "api_clear", now
        inst.clears_done += 1
        return {"isCleared": True, "reason": ""}

    def _set_settings(self, out: Outcome, inst: _Instance, now: float) -> None:
        """setSettings: any non-empty subset of GetSettings' writable fields; answers ``{"saveSettings": true}``
        and applies them after ``settings_apply_delay`` (at once when 0). Error bodies name fields, never values."""
        try:
            changes = json.loads(out.body.decode("utf-8")) if out.body.strip() else None
        except (UnicodeDecodeError, ValueError):
            out.status, out.payload = 400, {"error": "the body is not JSON"}
            return
        if not isinstance(changes, dict) or not changes:
            out.status, out.payload = 400, {"error": "give at least one setting as a JSON object"}
            return
        unknown = sorted(k for k in changes if k not in DOCUMENTED_SETTINGS or k in READ_ONLY_SETTINGS)
        if unknown:
            shown = [k if _SAFE_NAME_RE.match(k) else "<unrecognised>" for k in unknown]
            out.status, out.payload = 400, {"error": f"fields that cannot be set: {shown}"}
            return
        wrong = sorted(k for k, v in changes.items()
                       if not isinstance(v, type(DOCUMENTED_SETTINGS[k])) or isinstance(v, bool))
        if wrong:
            out.status, out.payload = 400, {"error": f"fields of the wrong type: {wrong}"}
            return
        inst.settings_saved += 1
        if inst.settings_apply_delay > 0:
            inst.pending_settings.append((now + inst.settings_apply_delay, dict(changes)))
        else:
            self._apply_settings(inst, changes)
        out.payload = {"saveSettings": True}

    def _apply_settings(self, inst: _Instance, changes: dict[str, Any]) -> None:
        for name, value in changes.items():
            if name == "webhookUrl":
                inst.webhook_url = value
            else:
                inst.settings[name] = value
        if "webhookUrl" in changes:
            self._wake()  # a backlog may now go out

    def _receive(self, out: Outcome, inst: _Instance, now: float) -> None:
        raw = out.query.get("receiveTimeout", "5")
        try:
            timeout = int(raw)
        except ValueError:
            timeout = -1
        if timeout < 0:
            out.status, out.payload = 400, {"error": "receiveTimeout must be a non-negative integer"}
            return
        low, high = RECEIVE_TIMEOUT_RANGE
        if inst.strict_receive_timeout and not low <= timeout <= high:
            out.status, out.payload = 400, {"error": f"receiveTimeout must be an integer from {low} to {high}"}
            return
        if inst.webhook_url:
            out.payload = None
            return
        if inst.queue:
            out.payload = self._head(inst)
            return
        wait = float(timeout)
        cap = self._config.max_receive_wait_seconds
        if cap is not None:
            wait = min(wait, cap)
        out.payload = None
        if wait > 0:
            out.poll_until = now + wait

    # ------------------------------------------------------------ account changes, notifications, delivery

    def change_state(self, id_instance: int, change: StateChange | dict) -> dict[str, Any]:
        """The instance's state (and, with ``wid``, its account) changes as GREEN-API would see it: unlike a
        PATCH, a stateInstanceChanged with the new state and wid is queued behind what is queued, when the
        instance's ``stateWebhook`` setting is "yes"."""
        if not isinstance(change, StateChange):
            change = StateChange.model_validate(change)
        with self._lock:
            inst = self._get(id_instance)
            self._materialise(inst, self.clock.now())  # arrivals until now belong to the old account
            inst.state = change.state
            if change.wid is not None:
                inst.wid = change.wid
            receipts = []
            if inst.settings.get("stateWebhook", "yes") == "yes":
                receipts = self._enqueue(inst, 1, "stateInstanceChanged")
                self._wake()
            return {"state": inst.state, "wid": inst.wid, "queued": self._queued_view(inst, receipts),
                    "queue_length": len(inst.queue)}

    def queue_notifications(self, id_instance: int, request: NewNotifications | dict) -> dict[str, Any]:
        """Queue ``count`` notifications (``type_webhook``) of the account now on the instance, behind what is queued."""
        if not isinstance(request, NewNotifications):
            request = NewNotifications.model_validate(request)
        with self._lock:
            inst = self._get(id_instance)
            self._materialise(inst, self.clock.now())
            receipts = self._enqueue(inst, request.count, request.type_webhook)
            self._wake()
            return {"queued": self._queued_view(inst, receipts), "queue_length": len(inst.queue)}

    @staticmethod
    def _queued_view(inst: _Instance, receipts: list[int]) -> list[dict[str, Any]]:
        out = []
        for receipt in receipts:
            body = inst.queue[receipt].body
            out.append({"receiptId": receipt, "idMessage": body.get("idMessage"),
                        "wid": body["instanceData"]["wid"], "timestamp": body["timestamp"]})
        return out

    def delivery_candidates(self) -> list[int]:
        """Instances with a notification to POST now: a webhookUrl, something queued, no POST in flight and no
        redelivery pause running. Called by the deliverer every few tens of milliseconds, so it stays cheap."""
        with self._lock:
            if not self._config.deliver_webhooks:
                return []
            now = self.clock.now()
            out = []
            for inst in self._instances.values():
                if inst.pending_settings or (inst.webhook_url and inst.arrival_rate):
                    self._materialise(inst, now)  # a webhookUrl about to apply, or arrivals to show
                if self._deliverable(inst, now):
                    out.append(inst.id)
            return out

    @staticmethod
    def _deliverable(inst: _Instance, now: float) -> bool:
        """A webhookUrl, something queued, no POST in flight and no redelivery pause running."""
        return bool(inst.webhook_url and inst.queue and not inst.delivering
                    and (inst.retry_at is None or inst.retry_at <= now))

    def next_delivery(self, id_instance: int) -> Delivery | float | None:
        """What the instance's delivery task does next: a Delivery (POST it, then call ``delivery_answered``),
        seconds to wait first (``delivery_interval_seconds`` since the previous attempt started), or None:
        nothing to send now (no webhookUrl, nothing queued, a redelivery pause, delivery off)."""
        with self._lock:
            inst = self._instances.get(id_instance)
            if inst is None or not self._config.deliver_webhooks:
                return None
            now = self.clock.now()
            self._materialise(inst, now)
            if not self._deliverable(inst, now):
                return None
            if inst.last_post_at is not None:
                gap = inst.last_post_at + self._config.delivery_interval_seconds - now
                if gap > 0:
                    return gap
            inst.retry_at, inst.last_post_at = None, now
            receipt, entry = next(iter(inst.queue.items()))
            delivery = Delivery(
                instance=inst.id, receipt_id=receipt, url=inst.webhook_url,
                token=str(inst.settings.get("webhookUrlToken") or ""), body=entry.body,
                timeout=self._config.delivery_timeout_seconds, started_at=self.clock.wall(),
                instance_wid=inst.wid, instance_state=inst.state, epoch=self._epoch, entry=entry,
            )
            if inst.webhook_url_unreachable:  # bug #1100: the attempt fails without reaching anyone
                self._delivery_failed(inst, delivery, None, "unreachable", now)
                return None
            inst.delivering = True
            return delivery

    def delivery_answered(self, delivery: Delivery, status: int | None, error: str | None) -> None:
        """The outcome of one POST: only status 200 removes the notification (if it is still queued: a clear may
        have removed it); anything else keeps it at the head, to be POSTed again after the redelivery pause."""
        with self._lock:
            inst = self._instances.get(delivery.instance)
            if delivery.epoch != self._epoch or inst is None:
                return  # the world was reset while the POST was in flight
            now = self.clock.now()
            inst.delivering = False
            if status != 200:
                self._delivery_failed(inst, delivery, status, error, now)
                return
            inst.delivered += 1
            removed = inst.queue.get(delivery.receipt_id) is delivery.entry
            if removed:
                del inst.queue[delivery.receipt_id]
            self._log_delivery(delivery, status, None, removed)

    def delivery_abandoned(self, delivery: Delivery) -> None:
        """The POST was cancelled (the deliverer stopped): no outcome, no pause; it is sent again next time."""
        with self._lock:
            inst = self._instances.get(delivery.instance)
            if inst is not None and delivery.epoch == self._epoch:
                inst.delivering = False

    def _delivery_failed(self, inst: _Instance, delivery: Delivery, status: int | None, error: str | None,
                         now: float) -> None:
        inst.retry_at = now + self._config.redelivery_pause_seconds
        self._log_delivery(delivery, status, error, False)

    def _log_delivery(self, delivery: Delivery, status: int | None, error: str | None, removed: bool) -> None:
        self._delivery_seq += 1
        body = delivery.body
        self._deliveries.append({
            "seq": self._delivery_seq,
            "instance": delivery.instance,
            "receipt_id": delivery.receipt_id,
            "type_webhook": body.get("typeWebhook"),
            "id_message": body.get("idMessage"),
            "wid": body.get("instanceData", {}).get("wid"),
            "instance_wid": delivery.instance_wid,
            "instance_state": delivery.instance_state,
            "url_host": url_host(delivery.url),
            "status": status,
            "error": error,
            "removed": removed,
            "started_at": delivery.started_at,
            "finished_at": self.clock.wall(),
        })
        limit = self._config.delivery_log_limit
        if len(self._deliveries) > limit:
            del self._deliveries[: len(self._deliveries) - limit]

    def deliveries(self, instance: int | None = None, after_seq: int | None = None) -> list[dict[str, Any]]:
        """Every delivery attempt still in the log, oldest first (never the token or the message text)."""
        with self._lock:
            return [dict(d) for d in self._deliveries
                    if (instance is None or d["instance"] == instance) and (after_seq is None or d["seq"] > after_seq)]

    def clear_deliveries(self) -> None:
        """Empty the delivery log (the instances' ``delivered`` counts stay)."""
        with self._lock:
            self._deliveries.clear()

    # ------------------------------------------------------------ call log / violations

    def _violation(self, entry: dict[str, Any]) -> None:
        entry = {**entry, "at": self.clock.wall()}
        self._violations.append(entry)
        if len(self._violations) > VIOLATION_LIMIT:
            del self._violations[: len(self._violations) - VIOLATION_LIMIT]

    def record_call(self, *, instance: int | None, method: str | None, verb: str, status: int | None,
                    started_at: float, finished_at: float, token_ok: bool | None, fault: str | None,
                    body_summary: Any) -> dict[str, Any]:
        with self._lock:
            self._seq += 1
            entry = {
                "seq": self._seq,
                "instance": instance,
                "method": method,
                "verb": verb,
                "status": status,
                "started_at": started_at,
                "finished_at": finished_at,
                "token_ok": token_ok,
                "fault": fault,
                "body_summary": body_summary,
            }
            self._calls.append(entry)
            self._counts[(instance, method, status is not None and 200 <= status < 300)] += 1
            limit = self._config.call_log_limit
            if len(self._calls) > limit:
                del self._calls[: len(self._calls) - limit]
            return dict(entry)

    def calls(self, instance: int | None = None, method: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                dict(c)
                for c in self._calls
                if (instance is None or c["instance"] == instance) and (method is None or c["method"] == method)
            ]

    def clear_calls(self) -> None:
        """Forget the call log and the call counts."""
        with self._lock:
            self._calls.clear()
            self._counts.clear()

    def counts(self) -> dict[str, Any]:
        """How many calls were made since the last reset (or clear_calls), however many the log has dropped.

        ``total``; ``by_method`` {method: n}; ``by_instance_method`` {"<idInstance>": {method: n}};
        ``answered_by_instance_method``: the same, only the calls answered with a 2xx status. Calls that
        named no known method count under method ``null`` in ``by_method``; those without a numeric
        instance id are left out of the per-instance maps.
        """
        with self._lock:
            items = list(self._counts.items())
        by_method: Counter[str | None] = Counter()
        by_instance: dict[str, Counter[str | None]] = {}
        answered: dict[str, Counter[str | None]] = {}
        for (instance, method, ok), n in items:
            by_method[method] += n
            if instance is None:
                continue
            by_instance.setdefault(str(instance), Counter())[method] += n
            if ok:
                answered.setdefault(str(instance), Counter())[method] += n
        name = lambda m: m if m is not None else "null"  # noqa: E731  (JSON object keys are strings)
        return {
            "total": sum(n for _, n in items),
            "by_method": {name(m): n for m, n in by_method.items()},
            "by_instance_method": {i: {name(m): n for m, n in c.items()} for i, c in by_instance.items()},
            "answered_by_instance_method": {i: {name(m): n for m, n in c.items()} for i, c in answered.items()},
        }

    def violations(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(v) for v in self._violations if kind is None or v["kind"] == kind]

    def clear_violations(self) -> None:
        with self._lock:
            self._violations.clear()
