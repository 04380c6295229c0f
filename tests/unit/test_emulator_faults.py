"""Fault injection in the GREEN-API emulator: every fault kind, FIFO order, times, '*'."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest

from emulator import EmulatorControl
from tests.helpers import NGINX_502, wait_until

TOKEN = "fedcba9876543210fedcba9876543210fedcba9876543210fe"
ID = 7105000042


@pytest.fixture
def ctl(server):
    with EmulatorControl(server.url) as control:
        control.reset({"clear_window_seconds": 2, "rate_limits_per_second": {}})
        control.seed_instance(id_instance=ID, api_token=TOKEN, notifications=3)
        yield control


def u(method: str, token: str = TOKEN) -> str:
    return f"/waInstance{ID}/{method}/{token}"


def test_status_fault_html_502_then_normal(ctl, api):
    ctl.add_fault(ID, "getWebhooksCount",
                  {"kind": "status", "status": 502, "body": NGINX_502, "content_type": "text/html"})
    r = api.get(u("getWebhooksCount"))
    assert r.status_code == 502
    assert r.headers["content-type"].startswith("text/html") and "nginx" in r.text
    assert api.get(u("getWebhooksCount")).json() == {"count": 3}
    assert ctl.instance(ID)["faults_pending"] == []


def test_status_fault_headers_times_and_default_body(ctl, api):
    ctl.add_fault(ID, "getStateInstance",
                  {"kind": "status", "status": 429, "headers": {"Retry-After": "1"}}, times=2)
    for _ in range(2):
        r = api.get(u("getStateInstance"))
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert "error" in r.json()
    assert api.get(u("getStateInstance")).status_code == 200

    ctl.add_fault(ID, "getStateInstance", {"kind": "status", "status": 466, "body": {"invokeStatus": {"status": "QUOTE_ALLOWED"}}})
    r = api.get(u("getStateInstance"))
    assert r.status_code == 466 and r.json()["invokeStatus"]["status"] == "QUOTE_ALLOWED"


def test_status_fault_replaces_the_action(ctl, api):
    ctl.add_fault(ID, "clearWebhooksQueue", {"kind": "status", "status": 500})
    assert api.delete(u("clearWebhooksQueue")).status_code == 500
    view = ctl.instance(ID)
    assert view["queue_length"] == 3 and view["window_left_seconds"] == 0
    assert api.delete(u("clearWebhooksQueue")).json()["isCleared"] is True


def test_forever_fault_and_clear_faults(ctl, api):
    ctl.add_fault(ID, "*", {"kind": "status", "status": 503}, times=None)
    for method in ("getStateInstance", "getSettings", "getMessagesCount"):
        assert api.get(u(method)).status_code == 503
    assert ctl.instance(ID)["faults_pending"][0]["times"] is None
    ctl.clear_faults(ID)
    assert api.get(u("getStateInstance")).status_code == 200


def test_faults_are_fifo_and_match_by_method(ctl, api):
    ctl.add_faults(ID, [
        {"method": "getSettings", "fault": {"kind": "status", "status": 504}},
        {"method": "*", "fault": {"kind": "status", "status": 502}},
        {"method": "*", "fault": {"kind": "status", "status": 500}},
    ])
    assert api.get(u("getStateInstance")).status_code == 502  # first rule does not match
    assert api.get(u("getSettings")).status_code == 504
    assert api.get(u("getSettings")).status_code == 500
    assert api.get(u("getSettings")).status_code == 200


def test_faults_apply_after_auth(ctl, api):
    ctl.add_fault(ID, "*", {"kind": "status", "status": 500})
    assert api.get(u("getStateInstance", token="wrong")).status_code == 401
    assert api.get(u("getStatus")).status_code == 404
    assert len(ctl.instance(ID)["faults_pending"]) == 1  # not consumed
    assert api.get(u("getStateInstance")).status_code == 500


def test_non_json_null_and_json_faults(ctl, api):
    ctl.add_faults(ID, [
        {"method": "getWebhooksCount", "fault": {"kind": "non_json"}},
        {"method": "getWebhooksCount", "fault": {"kind": "null_body"}},
        {"method": "getWebhooksCount", "fault": {"kind": "json", "body": {"total": 3}}},
        {"method": "clearWebhooksQueue", "fault": {"kind": "json", "body": {"isCleared": False}}},
    ])
    r = api.get(u("getWebhooksCount"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    with pytest.raises(ValueError):
        r.json()
    r = api.get(u("getWebhooksCount"))
    assert r.status_code == 200 and r.text == "null"
    assert api.get(u("getWebhooksCount")).json() == {"total": 3}
    assert api.delete(u("clearWebhooksQueue")).json() == {"isCleared": False}
    assert ctl.instance(ID)["queue_length"] == 3


def test_clearing_the_faults_answers_a_delayed_request_now(ctl, api):
    ctl.add_fault(ID, "getWebhooksCount", {"kind": "delay", "seconds": 60})
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        held = pool.submit(api.get, u("getWebhooksCount"), timeout=30)
        wait_until(lambda: ctl.instance(ID)["faults_pending"] == [], timeout=5, interval=0.05,  # taken on arrival
                   message="the request never reached the emulator")
        assert not held.done() and ctl.calls(instance=ID) == []  # held: logged only once answered

        started = time.monotonic()
        ctl.clear_faults(ID)
        answered = held.result(timeout=10)

    assert answered.json() == {"count": 3} and time.monotonic() - started < 5
    assert [c["fault"] for c in ctl.calls(instance=ID)] == ["delay"]


def test_delay_fault_causes_client_timeout_then_answers(ctl, api):
    ctl.add_fault(ID, "getStateInstance", {"kind": "delay", "seconds": 0.6})
    with pytest.raises(httpx.ReadTimeout):
        api.get(u("getStateInstance"), timeout=0.2)
    ctl.add_fault(ID, "getStateInstance", {"kind": "delay", "seconds": 0.3})
    start = time.monotonic()
    r = api.get(u("getStateInstance"))
    assert r.json() == {"stateInstance": "authorized"}
    assert time.monotonic() - start >= 0.28
    # the abandoned first request still finishes server-side; wait for it so it cannot
    # land in the next test's call log
    wait_until(lambda: len(ctl.calls(instance=ID)) >= 2, timeout=3, interval=0.05,
               message=lambda: f"the abandoned request never finished: {ctl.calls(instance=ID)}")
    assert [c["fault"] for c in ctl.calls(instance=ID)] == ["delay", "delay"]


def test_disconnect_fault_drops_the_connection(ctl, api):
    ctl.add_fault(ID, "getWebhooksCount", {"kind": "disconnect"})
    with pytest.raises(httpx.RemoteProtocolError):
        api.get(u("getWebhooksCount"))
    assert api.get(u("getWebhooksCount")).json() == {"count": 3}


def test_call_log_records_fault_kinds(ctl, api):
    ctl.add_faults(ID, [
        {"method": "*", "fault": {"kind": "status", "status": 502, "body": NGINX_502, "content_type": "text/html"}},
        {"method": "*", "fault": {"kind": "disconnect"}},
        {"method": "*", "fault": {"kind": "delay", "seconds": 0.05}},
    ])
    api.get(u("getStateInstance"))
    with pytest.raises(httpx.RemoteProtocolError):
        api.get(u("getStateInstance"))
    api.get(u("getStateInstance"))
    api.get(u("getStateInstance"))
    # The disconnect entry is written as the handler unwinds: until all four calls are logged.
    def four_logged():
        found = ctl.calls(instance=ID, method="getStateInstance")
        return found if len(found) >= 4 else None

    calls = wait_until(four_logged, timeout=3, interval=0.05,
                       message=lambda: f"not four calls logged: {ctl.calls(instance=ID, method='getStateInstance')}")
    assert [(c["fault"], c["status"]) for c in calls] == [
        ("status", 502), ("disconnect", None), ("delay", 200), (None, 200)]
    assert calls[0]["body_summary"]["content_type"] == "text/html"
    assert calls[2]["finished_at"] - calls[2]["started_at"] >= 0.04


# ------------------------------------------------------------------ after: skip the first N matching calls


def test_after_faults_the_second_matching_call_only(ctl, api):
    """The verification count (the second getWebhooksCount), not the first."""
    ctl.add_fault(ID, "getWebhooksCount", {"kind": "status", "status": 502}, after=1)
    assert ctl.instance(ID)["faults_pending"][0]["after"] == 1
    assert api.get(u("getStateInstance")).status_code == 200  # other methods do not count
    assert api.get(u("getWebhooksCount")).json() == {"count": 3}
    assert ctl.instance(ID)["faults_pending"][0]["after"] == 0
    assert api.get(u("getWebhooksCount")).status_code == 502
    assert api.get(u("getWebhooksCount")).status_code == 200
    assert ctl.instance(ID)["faults_pending"] == []


def test_after_with_times_and_the_raw_control_api(server, ctl, api):
    with httpx.Client(base_url=server.url + "/_emulator", timeout=5) as raw:
        r = raw.post(f"/instances/{ID}/faults",
                     json={"method": "getSettings", "fault": {"kind": "status", "status": 503}, "times": 2, "after": 2})
        assert r.status_code == 201
        assert r.json()["faults_pending"] == [
            {"method": "getSettings", "fault": {"kind": "status", "status": 503, "body": None, "content_type": None,
                                                "headers": {}}, "times": 2, "after": 2}]
        bad = raw.post(f"/instances/{ID}/faults",
                       json={"method": "getSettings", "fault": {"kind": "null_body"}, "after": -1})
        assert bad.status_code == 422
    assert [api.get(u("getSettings")).status_code for _ in range(5)] == [200, 200, 503, 503, 200]


def test_after_counts_calls_taken_by_an_earlier_rule(ctl, api):
    """Every pending rule counts the matching calls it sees, including one an earlier rule faulted."""
    ctl.add_faults(ID, [
        {"method": "getStateInstance", "fault": {"kind": "status", "status": 500}},
        {"method": "*", "fault": {"kind": "status", "status": 504}, "after": 1},
    ])
    assert api.get(u("getStateInstance")).status_code == 500  # rule 1; rule 2 counts it as its one skip
    assert api.get(u("getStateInstance")).status_code == 504
    assert api.get(u("getStateInstance")).status_code == 200


def test_after_does_not_count_unauthorised_calls(ctl, api):
    ctl.add_fault(ID, "getStateInstance", {"kind": "status", "status": 500}, after=1)
    assert api.get(u("getStateInstance", token="wrong")).status_code == 401
    assert api.get(u("getStateInstance")).status_code == 200
    assert api.get(u("getStateInstance")).status_code == 500
