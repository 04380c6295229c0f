"""The emulator delivers webhooks as GREEN-API does, over real loopback HTTP: the oldest queued notification
first, one at a time per instance, with the webhookUrlToken as a Bearer header; only a 200 removes it, anything
else sends the same one again after the redelivery pause while the ones behind wait; nothing goes out while
the webhookUrl is empty; a state change's stateInstanceChanged sits behind what was queued before it."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from emulator import EmulatorConfig, EmulatorControl, EmulatorServer
from tests.helpers import EMULATED_ID as ID, EMULATED_OTHER_ID as OTHER, EMULATED_TOKEN as TOKEN, seed_emulated, wait_until

HOOK_TOKEN = "hook-secret-" + "9f" * 10
WID_A, WID_B = "79001112233@c.us", "79004445566@c.us"
# The delivery timeout leaves a loaded machine time to answer a POST; the timeout test's server sleeps longer.
FAST = {"redelivery_pause_seconds": 0.3, "delivery_timeout_seconds": 1.0, "clear_window_seconds": 0}


class WebhookServer:
    """A webhook server on a free loopback port: records every POST; ``plan(path, [...])`` makes the next
    POSTs to ``path`` answer those statuses in turn (or, for ``("sleep", s)``, answer 200 after s seconds);
    once the plan is used up it answers 200."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self._plans: dict[str, list[Any]] = {}
        self._lock = threading.Lock()
        self.release = threading.Event()  # ends every sleep at teardown
        hook = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real webhook server

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = hook._record(self.path, self.headers, raw)
                if isinstance(status, tuple):
                    hook.release.wait(status[1])
                    status = 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the emulator gave up waiting (a timeout) and closed the connection
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def _record(self, path: str, headers: Any, raw: bytes) -> Any:
        with self._lock:
            self.received.append({"path": path, "authorization": headers.get("Authorization"),
                                  "content_type": headers.get("Content-Type"), "body": json.loads(raw),
                                  "at": time.monotonic()})
            plan = self._plans.get(path)
            return plan.pop(0) if plan else 200

    def plan(self, path: str, answers: list[Any]) -> None:
        with self._lock:
            self._plans[path] = list(answers)

    def bodies(self, path: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r["body"] for r in self.received if r["path"] == path]

    def requests(self, path: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self.received if r["path"] == path]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def hook():
    server = WebhookServer()
    yield server
    server.close()


@pytest.fixture
def ctl(server):
    """The module's emulator (tests/unit/conftest.py), reset to short pauses and timeouts."""
    with EmulatorControl(server.url) as control:
        control.reset(FAST)
        yield control


@pytest.fixture
def path(request) -> str:
    """A webhook path of this test's own, so the module's webhook server tells the tests apart."""
    return f"/hook/{request.node.name}"


def seed(ctl: EmulatorControl, **fields: Any) -> dict[str, Any]:
    return seed_emulated(ctl, **{"wid": WID_A, **fields})


def closed_port_url() -> str:
    """A loopback URL nobody listens on (a port bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/hook"


def texts(bodies: list[dict[str, Any]]) -> list[str]:
    return [b["messageData"]["textMessageData"]["textMessage"] if "messageData" in b else b["typeWebhook"]
            for b in bodies]


# ------------------------------------------------------------------ order, headers, removal


def test_the_queue_goes_out_oldest_first_with_the_bearer_token_and_only_a_200_removes(ctl, hook, path):
    seed(ctl, webhook_url=hook.url + path, settings={"webhookUrlToken": HOOK_TOKEN})
    queued = ctl.add_notifications(ID, count=5)
    assert queued["queue_length"] <= 5 and [q["wid"] for q in queued["queued"]] == [WID_A] * 5
    ids = [q["idMessage"] for q in queued["queued"]]
    assert len(set(ids)) == 5 and all(len(i) == 20 and i == i.upper() for i in ids)

    wait_until(lambda: len(hook.bodies(path)) == 5, timeout=5, message="5 webhooks", interval=0.01)
    requests = hook.requests(path)
    assert [r["body"]["idMessage"] for r in requests] == ids
    assert {r["authorization"] for r in requests} == {f"Bearer {HOOK_TOKEN}"}
    assert {r["content_type"] for r in requests} == {"application/json"}
    body = requests[0]["body"]
    assert body["typeWebhook"] == "incomingMessageReceived" and body["timestamp"] == queued["queued"][0]["timestamp"]
    assert body["instanceData"] == {"idInstance": ID, "wid": WID_A, "typeInstance": "whatsapp"}
    view = wait_until(lambda: (v := ctl.instance(ID))["delivered"] == 5 and v, timeout=5, message="5 answered", interval=0.01)
    assert view["queue_length"] == 0 and view["delivering"] is False and view["next_delivery_at"] is None

    log = ctl.deliveries(instance=ID)
    assert [d["id_message"] for d in log] == ids and all(d["status"] == 200 and d["removed"] for d in log)
    assert log[0]["url_host"] == hook.url.removeprefix("http://") and log[0]["error"] is None
    assert HOOK_TOKEN not in json.dumps(log) and "stale #" not in json.dumps(log)  # never the token or the text
    # One at a time per instance: each POST started after the previous one (and delivery_interval_seconds).
    starts = [d["started_at"] for d in log]
    assert all(b - a >= 0.015 for a, b in zip(starts, starts[1:]))


def test_a_failed_delivery_sends_the_same_one_again_after_the_pause_and_nothing_overtakes_it(ctl, hook, path):
    hook.plan(path, [500, 404])
    seed(ctl, webhook_url=hook.url + path)  # no webhookUrlToken: no Authorization header
    ids = [q["idMessage"] for q in ctl.add_notifications(ID, count=3)["queued"]]

    wait_until(lambda: len(hook.bodies(path)) == 5, timeout=5, message="3 webhooks and 2 repeats", interval=0.01)
    requests = hook.requests(path)
    assert [r["body"]["idMessage"] for r in requests] == [ids[0], ids[0], ids[0], ids[1], ids[2]]
    assert requests[1]["at"] - requests[0]["at"] >= 0.25 and requests[2]["at"] - requests[1]["at"] >= 0.25
    assert {r["authorization"] for r in requests} == {None}
    wait_until(lambda: ctl.instance(ID)["queue_length"] == 0, timeout=5, message="the queue to empty", interval=0.01)
    log = ctl.deliveries(instance=ID)
    assert [(d["status"], d["removed"]) for d in log] == [(500, False), (404, False), (200, True), (200, True), (200, True)]


def test_the_pause_runs_on_the_emulator_clock_and_an_advance_ends_it(ctl, hook, path):
    ctl.set_config(redelivery_pause_seconds=60)
    hook.plan(path, [503])
    seed(ctl, webhook_url=hook.url + path)
    ids = [q["idMessage"] for q in ctl.add_notifications(ID, count=2)["queued"]]
    wait_until(lambda: ctl.deliveries(instance=ID), timeout=5, message="the first attempt", interval=0.01)
    view = ctl.instance(ID)
    assert view["next_delivery_at"] is not None and view["queue_length"] == 2 and view["delivered"] == 0

    ctl.advance_clock(60)
    wait_until(lambda: len(hook.bodies(path)) == 3, timeout=2, message="the repeat and the next one", interval=0.01)
    assert [b["idMessage"] for b in hook.bodies(path)] == [ids[0], ids[0], ids[1]]


def test_a_timeout_is_a_failed_delivery_and_is_sent_again(ctl, hook, path):
    hook.plan(path, [("sleep", 3.0)])
    seed(ctl, webhook_url=hook.url + path)
    ids = [q["idMessage"] for q in ctl.add_notifications(ID, count=2)["queued"]]
    wait_until(lambda: len(ctl.deliveries(instance=ID)) == 3, timeout=10, message="a timeout, then 2 deliveries", interval=0.01)
    log = ctl.deliveries(instance=ID)
    assert [(d["id_message"], d["status"], d["error"]) for d in log] == [
        (ids[0], None, "timeout"), (ids[0], 200, None), (ids[1], 200, None)]
    assert log[0]["finished_at"] - log[0]["started_at"] < 2.5  # delivery_timeout_seconds, not the server's 3 s


def test_connection_errors_and_the_1100_bug_are_failed_deliveries(ctl, hook, path):
    seed(ctl, webhook_url=closed_port_url(), notifications=1)
    seed(ctl, id_instance=OTHER, webhook_url=hook.url + path, notifications=1, webhook_url_unreachable=True)
    wait_until(lambda: len(ctl.deliveries()) >= 2, timeout=5, message="both attempts", interval=0.01)
    errors = {d["instance"]: (d["status"], d["error"], d["removed"]) for d in ctl.deliveries()}
    assert errors == {ID: (None, "connect", False), OTHER: (None, "unreachable", False)}
    assert hook.bodies(path) == []  # #1100: nothing reached the webhook server
    assert ctl.instance(ID)["queue_length"] == 1 and ctl.instance(OTHER)["queue_length"] == 1


# ------------------------------------------------------------------ no webhookUrl, clears, account changes


def test_nothing_goes_out_while_the_webhook_url_is_empty_then_the_backlog_in_order(ctl, hook, path, api):
    seed(ctl, notifications=3)
    seed(ctl, id_instance=OTHER, webhook_url=hook.url + path + "/other", notifications=1)
    wait_until(lambda: ctl.instance(OTHER)["delivered"] == 1, timeout=5, message="the other instance's delivery", interval=0.01)  # the deliverer runs
    assert ctl.deliveries(instance=ID) == [] and ctl.instance(ID)["queue_length"] == 3
    backlog = [api.get(f"/waInstance{ID}/receiveNotification/{TOKEN}").json()["body"]["idMessage"]]

    answer = api.post(f"/waInstance{ID}/setSettings/{TOKEN}", json={"webhookUrl": hook.url + path})
    assert answer.json() == {"saveSettings": True}
    wait_until(lambda: len(hook.bodies(path)) == 3, timeout=5, message="the backlog", interval=0.01)
    assert texts(hook.bodies(path)) == ["stale #1", "stale #2", "stale #3"]
    assert hook.bodies(path)[0]["idMessage"] == backlog[0]  # the body a peek saw is the body delivered


def test_a_clear_removes_what_is_undelivered(ctl, hook, path, api):
    ctl.set_config(redelivery_pause_seconds=60)
    hook.plan(path, [500])
    seed(ctl, webhook_url=hook.url + path, notifications=4)
    wait_until(lambda: ctl.deliveries(instance=ID), timeout=5, message="the failed attempt", interval=0.01)
    cleared = api.delete(f"/waInstance{ID}/clearWebhooksQueue/{TOKEN}").json()
    assert cleared["isCleared"] is True and ctl.instance(ID)["queue_length"] == 0

    after = ctl.add_notifications(ID, count=1)["queued"][0]
    ctl.advance_clock(60)
    wait_until(lambda: ctl.instance(ID)["delivered"] == 1, timeout=5, message="the new one", interval=0.01)
    assert [b["idMessage"] for b in hook.bodies(path)][1:] == [after["idMessage"]]  # none of the cleared ones


def test_a_state_change_webhook_arrives_after_what_was_queued_before_it_with_the_new_wid(ctl, hook, path):
    seed(ctl, notifications=2)
    patched = ctl.patch_instance(ID, state="blocked")  # a PATCH is a silent edit: no webhook queued
    assert patched["queue_length"] == 2
    changed = ctl.change_state(ID, "authorized", wid=WID_B)
    assert changed["state"] == "authorized" and changed["wid"] == WID_B and changed["queue_length"] == 3
    assert [q["wid"] for q in changed["queued"]] == [WID_B] and changed["queued"][0]["idMessage"] is None
    ctl.add_notifications(ID, count=1)
    ctl.patch_instance(ID, webhook_url=hook.url + path)

    bodies = wait_until(lambda: len(hook.bodies(path)) == 4 and hook.bodies(path), timeout=5, message="4 webhooks", interval=0.01)
    assert [(b["typeWebhook"], b["instanceData"]["wid"]) for b in bodies] == [
        ("incomingMessageReceived", WID_A), ("incomingMessageReceived", WID_A),
        ("stateInstanceChanged", WID_B), ("incomingMessageReceived", WID_B)]
    assert bodies[2]["stateInstance"] == "authorized" and isinstance(bodies[2]["timestamp"], int)
    wait_until(lambda: len(ctl.deliveries(instance=ID)) == 4, timeout=5, message="4 log entries", interval=0.01)
    log = ctl.deliveries(instance=ID)
    # The old account's messages reach the app while the instance already holds the new one.
    assert [(d["wid"], d["instance_wid"], d["instance_state"]) for d in log[:2]] == [(WID_A, WID_B, "authorized")] * 2
    assert [d["type_webhook"] for d in log] == [b["typeWebhook"] for b in bodies]


def test_no_state_webhook_when_state_webhook_is_no(ctl):
    seed(ctl, settings={"stateWebhook": "no"})
    changed = ctl.change_state(ID, "blocked")
    assert changed["queued"] == [] and changed["queue_length"] == 0 and ctl.instance(ID)["state"] == "blocked"


# ------------------------------------------------------------------ control routes, TTL, config, stop


def test_the_delivery_log_filters_and_empties(ctl, hook, path):
    seed(ctl, webhook_url=hook.url + path, notifications=2)
    seed(ctl, id_instance=OTHER, webhook_url=hook.url + path, notifications=1)
    wait_until(lambda: len(ctl.deliveries()) == 3, timeout=5, message="3 deliveries", interval=0.01)
    first = ctl.deliveries()[0]["seq"]
    assert [d["seq"] for d in ctl.deliveries(after_seq=first)] == [first + 1, first + 2]
    assert len(ctl.deliveries(instance=OTHER)) == 1
    ctl.clear_deliveries()
    assert ctl.deliveries() == [] and ctl.instance(ID)["delivered"] == 2


def test_notifications_past_their_ttl_are_dropped_and_delivery_can_be_turned_off(ctl, hook, path):
    ctl.set_config(notification_ttl_seconds=100, deliver_webhooks=False)
    seed(ctl, webhook_url=hook.url + path, notifications=2)
    ctl.advance_clock(50)
    ctl.add_notifications(ID, count=1, type_webhook="outgoingAPIMessageReceived")
    ctl.advance_clock(51)
    assert ctl.instance(ID)["queue_length"] == 1  # the first two are 101 s old
    ctl.set_config(deliver_webhooks=True)
    bodies = wait_until(lambda: hook.bodies(path), timeout=5, message="the survivor", interval=0.01)
    assert bodies[0]["typeWebhook"] == "outgoingAPIMessageReceived" and bodies[0]["senderData"]["sender"] == WID_A


def test_control_routes_refuse_bad_input(ctl):
    seed(ctl)
    for call in (lambda: ctl.add_notifications(ID, count=0), lambda: ctl.add_notifications(ID, type_webhook="a/b"),
                 lambda: ctl.change_state(ID, ""), lambda: ctl.add_notifications(OTHER)):
        with pytest.raises(Exception) as err:
            call()
        assert getattr(err.value, "status", None) in (404, 422)
    with httpx.Client(base_url=ctl.base_url) as client:
        assert client.get("/_emulator/deliveries", params={"after_seq": "x"}).status_code == 400


def test_stop_cancels_a_delivery_in_flight_quickly(hook, path):
    hook.plan(path, [("sleep", 30)])
    server = EmulatorServer(EmulatorConfig(delivery_timeout_seconds=60)).start()
    with EmulatorControl(server.url) as control:
        control.seed_instance(id_instance=ID, api_token=TOKEN, webhook_url=hook.url + path, notifications=1)
    wait_until(lambda: server.state.instance(ID)["delivering"], timeout=5, message="the POST in flight", interval=0.01)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2.5 and not server.deliverer.running
    assert server.state.instance(ID)["queue_length"] == 1 and server.state.instance(ID)["delivering"] is False
