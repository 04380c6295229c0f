"""What the emulator remembers of its clients: the call log, the call counts and the violations list.

None of it holds a token: the call log keeps a token-free summary of each answer.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .world import World

VIOLATION_LIMIT = 10_000


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


class CallRecords:
    """The call log (the last ``call_log_limit`` calls), the call counts (never capped) and the violations."""

    def __init__(self, world: World) -> None:
        self._world = world
        self._calls: list[dict[str, Any]] = []
        # Every call since the last reset (or clear_calls), by (instance, method, answered 2xx).
        self._counts: Counter[tuple[int | None, str | None, bool]] = Counter()
        self._violations: list[dict[str, Any]] = []
        self._seq = 0

    def reset(self) -> None:
        with self._world.lock:
            self.clear_calls()
            self._violations.clear()
            self._seq = 0

    def record_call(self, *, instance: int | None, method: str | None, verb: str, status: int | None,
                    started_at: float, finished_at: float, token_ok: bool | None, fault: str | None,
                    body_summary: Any) -> dict[str, Any]:
        with self._world.lock:
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
            limit = self._world.config.call_log_limit
            if len(self._calls) > limit:
                del self._calls[: len(self._calls) - limit]
            return dict(entry)

    def calls(self, instance: int | None = None, method: str | None = None) -> list[dict[str, Any]]:
        with self._world.lock:
            return [
                dict(c)
                for c in self._calls
                if (instance is None or c["instance"] == instance) and (method is None or c["method"] == method)
            ]

    def clear_calls(self) -> None:
        """Forget the call log and the call counts."""
        with self._world.lock:
            self._calls.clear()
            self._counts.clear()

    def counts(self) -> dict[str, Any]:
        """How many calls were made since the last reset (or clear_calls), however many the log has dropped.

        ``total``; ``by_method`` {method: n}; ``by_instance_method`` {"<idInstance>": {method: n}};
        ``answered_by_instance_method``: the same, only the calls answered with a 2xx status. Calls that
        named no known method count under method ``null`` in ``by_method``; those without a numeric
        instance id are left out of the per-instance maps.
        """
        with self._world.lock:
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

    def violation(self, entry: dict[str, Any]) -> None:
        """Record what a correct client never does (with ``at``, wall time); never enforced."""
        with self._world.lock:
            self._violations.append({**entry, "at": self._world.clock.wall()})
            if len(self._violations) > VIOLATION_LIMIT:
                del self._violations[: len(self._violations) - VIOLATION_LIMIT]

    def violations(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self._world.lock:
            return [dict(v) for v in self._violations if kind is None or v["kind"] == kind]

    def clear_violations(self) -> None:
        with self._world.lock:
            self._violations.clear()
