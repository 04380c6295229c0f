"""One GREEN-API request, from its URL to its answer: routing, authentication, the rate limits, the injected faults,
then the method's rules (``methods.py``)."""

from __future__ import annotations

import hmac
import re
from collections import deque
from typing import Any

from .config import METHOD_VERBS
from .faults import apply_fault, take_fault
from .instance import Instance
from .methods import SAFE_NAME_RE, MethodRules
from .notifications import catch_up, head
from .outcome import Outcome
from .records import CallRecords
from .world import World

_PATH_RE = re.compile(r"^(?P<v3>/v3)?/waInstance(?P<id>[^/]*)/(?P<method>[^/]+)(?:/(?P<rest>.*))?$")


class GreenApi:
    """What the app asks about a GREEN-API request: ``dispatch``, then maybe ``answer`` (after a delay fault) or
    ``poll_notification`` (a long-poll)."""

    def __init__(self, world: World, records: CallRecords) -> None:
        self._world = world
        self._records = records
        self._methods = MethodRules(world, records)

    def dispatch(self, verb: str, path: str, query: dict[str, str] | None = None, body: bytes = b"") -> Outcome:
        """Route, authenticate and answer one GREEN-API request.

        Order: bad URL / unknown method -> 404; wrong verb -> 404 (+violation);
        unknown idInstance -> 403; wrong token -> 401; then faults; then the method's rules.
        The returned Outcome may ask the caller to sleep (delay), drop the connection
        (disconnect) or long-poll (poll_until).
        """
        query = dict(query or {})
        with self._world.lock:
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
                self._records.violation({"kind": "wrong_verb", "instance": id_instance, "method": method,
                                         "verb": verb.upper(), "expected_verb": expected})
                out.status, out.payload = 404, {"error": f"{method} expects {expected}"}
                return out
            inst = self._world.instances.get(id_instance) if id_instance is not None else None
            if inst is None:
                out.status, out.payload = 403, {"error": "unknown idInstance"}
                return out
            if v3 != (inst.type_instance == "v3") and (v3 or inst.v3_prefix_required):
                # /v3/... is MAX's (typeInstance v3); with v3_prefix_required a v3 instance needs it.
                out.status, out.payload = 404, {"error": "unknown URL"}
                return out
            return self._authenticated(out, inst, rest, body)

    def _authenticated(self, out: Outcome, inst: Instance, rest: str | None, body: bytes) -> Outcome:
        """The token check, then the faults, then the method."""
        token, _, extra = (rest or "").partition("/")
        out.token_ok = bool(token) and hmac.compare_digest(token.encode(), inst.token.encode())
        if not out.token_ok:
            out.status, out.payload = 401, {"error": "wrong apiTokenInstance"}
            return out
        out.extra = extra or None
        out.body = body
        now = self._world.clock.now()
        out.received_at = now
        if inst.clear_before_first_call is not None:
            inst.last_clear, inst.clear_before_first_call = now - inst.clear_before_first_call, None
        self._count_rate(inst, out.method or "", now)
        fault = take_fault(inst.faults, out.method or "")
        if fault is not None:
            out.faults_cleared_seen = inst.faults_cleared
            return apply_fault(out, fault)
        return self._methods.answer(out, inst, now)

    def answer(self, outcome: Outcome) -> Outcome:
        """The normal (fault-free) answer for an already routed and authorised request."""
        with self._world.lock:
            inst = self._world.instances.get(outcome.instance)  # type: ignore[arg-type]
            if inst is None:  # reset while a delayed request slept
                return Outcome(403, {"error": "unknown idInstance"}, instance=outcome.instance,
                               method=outcome.method, token_ok=None, fault=outcome.fault)
            fresh = Outcome(instance=outcome.instance, method=outcome.method, token_ok=outcome.token_ok,
                            fault=outcome.fault, query=outcome.query, extra=outcome.extra,
                            received_at=outcome.received_at, body=outcome.body)
            return self._methods.answer(fresh, inst, self._world.clock.now())

    def delay_ended(self, outcome: Outcome) -> bool:
        """Whether a delayed request's delay was ended early: its instance's faults cleared since, or it is gone."""
        with self._world.lock:
            inst = self._world.instances.get(outcome.instance)  # type: ignore[arg-type]
            return inst is None or inst.faults_cleared != outcome.faults_cleared_seen

    def poll_notification(self, id_instance: int) -> dict[str, Any] | None:
        """The oldest queued notification (not removed), or None."""
        with self._world.lock:
            inst = self._world.instances.get(id_instance)
            if inst is None or inst.webhook_url:
                return None
            catch_up(self._world, inst, self._world.clock.now())
            if not inst.queue:
                return None
            return head(inst)

    def _safe_method_name(self, name: str) -> str:
        """Unknown method names go in the call log only if they cannot be a token."""
        if not SAFE_NAME_RE.match(name):
            return "<unrecognised>"
        if any(hmac.compare_digest(name.encode(), i.token.encode()) for i in self._world.instances.values()):
            return "<unrecognised>"
        return name

    def _count_rate(self, inst: Instance, method: str, now: float) -> None:
        """Record a rate_limit violation when the method was called more often than allowed in the last second."""
        limit = self._world.config.rate_limits_per_second.get(method)
        if limit is None:
            return
        hits = inst.rate_hits.setdefault(method, deque())
        hits.append(now)
        while hits and hits[0] <= now - 1.0:
            hits.popleft()
        if len(hits) > limit:
            self._records.violation({"kind": "rate_limit", "instance": inst.id, "method": method,
                                     "calls_in_1s": len(hits), "limit": limit})
