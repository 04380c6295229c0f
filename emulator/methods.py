"""GREEN-API's rules for each method, once a request is routed, authenticated and past the faults: the clear
window, the count snapshot, the receive long-poll, settings, and the reported bugs an instance was seeded with."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .config import DOCUMENTED_SETTINGS, READ_ONLY_SETTINGS, WEBHOOK_URL_CLEAR_REASON
from .instance import Instance
from .notifications import catch_up, head
from .outcome import Outcome
from .records import CallRecords
from .world import World

RECEIVE_TIMEOUT_RANGE = (5, 60)
#: A name that may appear in an error body or the call log: it cannot be a token.
SAFE_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
_CYRILLIC_COUNT_KEY = "\u0441ount"  # a Cyrillic "с": GREEN-API's reported misspelling


class MethodRules:
    """``answer(out, inst, now)`` fills ``out`` with the method's normal answer."""

    def __init__(self, world: World, records: CallRecords) -> None:
        self._world = world
        self._records = records

    def answer(self, out: Outcome, inst: Instance, now: float) -> Outcome:
        """Call under the world's lock."""
        catch_up(self._world, inst, now)
        method = out.method
        if method == "getStateInstance":
            out.payload = {"stateInstance": inst.state}
        elif method == "getSettings":
            out.payload = inst.all_settings()
        elif method == "setSettings":
            self._set_settings(out, inst, now)
        elif method == "getWebhooksCount":
            out.payload = self._webhooks_count(inst, now)
        elif method == "getMessagesCount":
            out.payload = {_CYRILLIC_COUNT_KEY if inst.cyrillic_count else "count": inst.outgoing}
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

    def _webhooks_count(self, inst: Instance, now: float) -> dict[str, Any]:
        """The snapshot, refreshed once it is ``count_refresh_seconds`` old (a clear does not refresh it)."""
        if inst.snapshot_at is None or now - inst.snapshot_at >= self._world.config.count_refresh_seconds:
            inst.snapshot_value = len(inst.queue)
            inst.snapshot_at = now
        value = inst.snapshot_value
        if inst.count_zero_at is not None and len(inst.queue) >= inst.count_zero_at:
            value = 0  # bug #1108: 0 on a full queue
        if inst.webhook_url_unreachable and inst.webhook_url:
            value = 0  # bug #1100: 0 while the webhookUrl does not answer
        return {_CYRILLIC_COUNT_KEY if inst.cyrillic_count else "count": value}

    def _clear(self, inst: Instance, now: float, received_at: float) -> dict[str, Any]:
        """One clearWebhooksQueue. Too early is a violation only when a client could know the
        window when it sent the request (``received_at``; a delayed answer comes later): it was
        opened by a clear through the API (known to whoever cleared), or a leftTime answer already
        announced it. The first too-early clear in a seeded window (someone else cleared) is how a
        client learns leftTime: answered, not recorded."""
        window_left = inst.window_left(now, self._world.config.clear_window_seconds)
        if window_left > 0:
            left = max(1, math.ceil(window_left))
            if inst.window_known is not None and inst.window_known_at is not None and inst.window_known_at < received_at:
                self._records.violation({"kind": "clear_inside_window", "instance": inst.id,
                                         "method": "clearWebhooksQueue", "left_time": left,
                                         "window_known_from": inst.window_known})
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

    def _set_settings(self, out: Outcome, inst: Instance, now: float) -> None:
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
            shown = [k if SAFE_NAME_RE.match(k) else "<unrecognised>" for k in unknown]
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
        elif inst.apply_settings(changes):
            self._world.wake()  # a backlog may now go out
        out.payload = {"saveSettings": True}

    def _receive(self, out: Outcome, inst: Instance, now: float) -> None:
        """receiveNotification: the head (not removed), or null at once with a webhookUrl set, or a long-poll."""
        try:
            timeout = int(out.query.get("receiveTimeout", "5"))
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
            out.payload = head(inst)
            return
        wait = float(timeout)
        cap = self._world.config.max_receive_wait_seconds
        if cap is not None:
            wait = min(wait, cap)
        out.payload = None
        if wait > 0:
            out.poll_until = now + wait
