"""The GREEN-API emulator over real loopback HTTP: routing, auth, each method, clear window,
count snapshot, arrivals, long-poll, rate-limit bookkeeping."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from emulator import EmulatorControl
from tests.helpers import EMULATED_ID as ID, EMULATED_TOKEN as TOKEN, method_path as u, seed_emulated as seed, wait_until


@pytest.fixture
def ctl(server):
    with EmulatorControl(server.url) as control:
        control.reset({"clear_window_seconds": 2, "count_refresh_seconds": 10})
        yield control


# ------------------------------------------------------------------ routing and auth


def test_auth_order_unknown_method_then_id_then_token(ctl, api):
    seed(ctl)
    # unknown method wins over a wrong id and a wrong token
    assert api.get(u("getSomething", id_instance=999, token="bad")).status_code == 404
    # method names are case-sensitive
    assert api.get(u("GetStateInstance")).status_code == 404
    # unknown id wins over a wrong token
    assert api.get(u("getStateInstance", id_instance=999, token="bad")).status_code == 403
    assert api.get("/waInstanceabc/getStateInstance/" + TOKEN).status_code == 403
    assert api.get(u("getStateInstance", token="bad")).status_code == 401
    assert api.get(f"/waInstance{ID}/getStateInstance").status_code == 401  # no token at all
    ok = api.get(u("getStateInstance"))
    assert ok.status_code == 200 and ok.json() == {"stateInstance": "authorized"}
    assert api.get("/not-green-api").status_code == 404
    assert ctl.violations() == []


def test_wrong_verb_is_404_and_a_violation(ctl, api):
    seed(ctl, notifications=2)
    assert api.get(u("clearWebhooksQueue")).status_code == 404
    assert api.delete(u("getWebhooksCount")).status_code == 404
    # wrong verb is checked before the instance id
    assert api.post(u("getSettings", id_instance=42)).status_code == 404
    kinds = [(v["kind"], v["method"], v["verb"]) for v in ctl.violations()]
    assert kinds == [
        ("wrong_verb", "clearWebhooksQueue", "GET"),
        ("wrong_verb", "getWebhooksCount", "DELETE"),
        ("wrong_verb", "getSettings", "POST"),
    ]
    assert ctl.instance(ID)["queue_length"] == 2  # the GET did not clear anything


# ------------------------------------------------------------------ simple methods


def test_state_and_settings_bodies(ctl, api):
    seed(ctl, state="blocked", wid="71230000000@c.us", webhook_url="https://hook.example/x")
    assert api.get(u("getStateInstance")).json() == {"stateInstance": "blocked"}
    settings = api.get(u("getSettings")).json()
    assert (settings["wid"], settings["webhookUrl"], settings["webhookUrlToken"]) == (
        "71230000000@c.us", "https://hook.example/x", "")
    ctl.patch_instance(ID, state="authorized", wid="79998887766@c.us")
    assert api.get(u("getStateInstance")).json() == {"stateInstance": "authorized"}
    ctl.advance_clock(1.1)  # keep clear of the 1/s getSettings limit
    assert api.get(u("getSettings")).json()["wid"] == "79998887766@c.us"


def test_messages_count_is_live_and_clear_messages_queue(ctl, api):
    seed(ctl, outgoing_messages=4)
    assert api.get(u("getMessagesCount")).json() == {"count": 4}
    ctl.patch_instance(ID, add_outgoing=2)
    assert api.get(u("getMessagesCount")).json() == {"count": 6}
    assert api.get(u("clearMessagesQueue")).json() == {"isCleared": True}
    assert api.get(u("getMessagesCount")).json() == {"count": 0}
    assert api.delete(u("clearMessagesQueue")).status_code == 404  # it is a GET method


# ------------------------------------------------------------------ clear window


def test_clear_window_left_time_and_violation(ctl, api):
    seed(ctl, notifications=3)
    assert api.delete(u("clearWebhooksQueue")).json() == {"isCleared": True, "reason": ""}
    assert ctl.instance(ID)["queue_length"] == 0
    ctl.patch_instance(ID, add_notifications=2)

    too_early = api.delete(u("clearWebhooksQueue"))
    assert too_early.status_code == 200
    assert too_early.json() == {"isCleared": False, "reason": "Too many requests", "leftTime": 2}
    ctl.advance_clock(1.5)
    assert api.delete(u("clearWebhooksQueue")).json()["leftTime"] == 1
    assert ctl.instance(ID)["queue_length"] == 2  # refused clears do not clear

    # refused calls did not move the window: 2 s after the first clear it is allowed
    ctl.advance_clock(0.6)
    assert api.delete(u("clearWebhooksQueue")).json() == {"isCleared": True, "reason": ""}
    view = ctl.instance(ID)
    assert view["queue_length"] == 0 and view["clears_done"] == 2
    assert 1.9 < view["window_left_seconds"] <= 2

    inside = ctl.violations("clear_inside_window")
    assert [(v["instance"], v["left_time"]) for v in inside] == [(ID, 2), (ID, 1)]


def test_left_time_is_at_least_one_and_seeded_window(ctl, api):
    ctl.set_config(clear_window_seconds=60)
    seed(ctl, cleared_seconds_ago=50)
    left = api.delete(u("clearWebhooksQueue")).json()["leftTime"]
    assert left in (10, 11) and isinstance(left, int)
    ctl.advance_clock(9.8)  # about 0.2 s left: still at least 1
    assert api.delete(u("clearWebhooksQueue")).json()["leftTime"] == 1
    ctl.advance_clock(0.25)
    assert api.delete(u("clearWebhooksQueue")).json()["isCleared"] is True


def test_a_window_seeded_before_the_first_call_opens_at_that_call_not_at_seeding(ctl, api):
    ctl.set_config(clear_window_seconds=60)
    seed(ctl, cleared_before_first_call_seconds=10)
    ctl.advance_clock(120)  # a run that starts late: seeded as cleared_seconds_ago, its window would be over
    assert api.get(u("getStateInstance")).status_code == 200  # the first call: cleared 10 s before it
    ctl.advance_clock(5)
    assert api.delete(u("clearWebhooksQueue")).json()["leftTime"] in (45, 46)
    assert ctl.violations() == []  # someone else's clear: the first leftTime is how the client learns it


def test_first_too_early_clear_in_a_seeded_window_is_how_a_client_learns_left_time(ctl, api):
    """Someone else cleared (seeded): the first too-early clear is answered, not a violation; the
    window is then announced, so a second clear inside it is one."""
    ctl.set_config(clear_window_seconds=60)
    seed(ctl, notifications=2, cleared_seconds_ago=30)
    assert ctl.instance(ID)["window_known"] is None
    first = api.delete(u("clearWebhooksQueue")).json()
    assert first["isCleared"] is False and first["leftTime"] in (30, 31)
    assert ctl.violations() == []
    assert ctl.instance(ID)["window_known"] == "left_time"

    ctl.advance_clock(10)
    assert api.delete(u("clearWebhooksQueue")).json()["leftTime"] in (20, 21)
    inside = ctl.violations("clear_inside_window")
    assert [(v["instance"], v["method"], v["window_known_from"]) for v in inside] == [
        (ID, "clearWebhooksQueue", "left_time")]

    # after the window: allowed, and the new window is known to whoever cleared
    ctl.clear_violations()
    ctl.advance_clock(21)
    assert api.delete(u("clearWebhooksQueue")).json()["isCleared"] is True
    assert ctl.instance(ID)["window_known"] == "api_clear"
    assert api.delete(u("clearWebhooksQueue")).json()["leftTime"] in (59, 60)
    assert [v["window_known_from"] for v in ctl.violations()] == ["api_clear"]


def test_a_clear_after_a_seeded_window_expired_is_no_violation(ctl, api):
    seed(ctl, cleared_seconds_ago=5)  # window is 2 s: long over
    assert ctl.instance(ID)["window_known"] is None
    assert api.delete(u("clearWebhooksQueue")).json()["isCleared"] is True
    assert ctl.violations() == []


def test_a_delayed_clear_sent_before_a_window_opened_is_no_violation(server, ctl, api):
    """A clear is judged by what could be known when it was sent, not when its delayed answer is made."""
    seed(ctl, notifications=2)
    ctl.add_fault(ID, "clearWebhooksQueue", {"kind": "delay", "seconds": 60})
    answers = {}

    def slow_clear():
        with httpx.Client(base_url=server.url, timeout=30) as other:
            answers["slow"] = other.delete(u("clearWebhooksQueue")).json()

    thread = threading.Thread(target=slow_clear)
    thread.start()
    wait_until(lambda: ctl.instance(ID)["faults_pending"] == [], timeout=10, message="the slow clear held by its delay",
               interval=0.02)
    assert api.delete(u("clearWebhooksQueue")).json() == {"isCleared": True, "reason": ""}  # opens the window
    ctl.clear_faults(ID)  # the slow clear is answered now, inside the window it could not know of
    thread.join(10)
    assert answers["slow"]["isCleared"] is False and answers["slow"]["leftTime"] == 2
    assert ctl.violations() == []
    assert api.delete(u("clearWebhooksQueue")).json()["leftTime"] == 2  # sent after the clear: a violation
    assert [v["window_known_from"] for v in ctl.violations()] == ["api_clear"]


def test_refuse_clears_with_reason(ctl, api):
    seed(ctl, notifications=2, refuse_clears={"reason": "webhookUrl is set", "times": 2})
    for _ in range(2):
        refused = api.delete(u("clearWebhooksQueue")).json()
        assert refused == {"isCleared": False, "reason": "webhookUrl is set"}  # no leftTime
    view = ctl.instance(ID)
    assert view["queue_length"] == 2 and view["window_left_seconds"] == 0 and view["refuse_clears"] is None
    assert api.delete(u("clearWebhooksQueue")).json()["isCleared"] is True
    assert ctl.violations() == []

    # forever, until patched away
    ctl.advance_clock(3)
    ctl.patch_instance(ID, refuse_clears={"reason": "internal error"})
    for _ in range(3):
        assert api.delete(u("clearWebhooksQueue")).json()["reason"] == "internal error"
    ctl.patch_instance(ID, refuse_clears=None)
    assert api.delete(u("clearWebhooksQueue")).json()["isCleared"] is True


# ------------------------------------------------------------------ count snapshot


def test_count_snapshot_is_stale_after_clear_until_refresh(ctl, api):
    seed(ctl, notifications=5)
    assert api.get(u("getWebhooksCount")).json() == {"count": 5}
    assert api.delete(u("clearWebhooksQueue")).json()["isCleared"] is True
    assert api.get(u("getWebhooksCount")).json() == {"count": 5}  # stale snapshot
    ctl.advance_clock(9.5)
    assert api.get(u("getWebhooksCount")).json() == {"count": 5}
    ctl.advance_clock(0.6)
    assert api.get(u("getWebhooksCount")).json() == {"count": 0}
    view = ctl.instance(ID)
    assert view["count_snapshot"] == 0 and view["snapshot_age_seconds"] < 1


def test_seeded_count_snapshot_and_cyrillic_key(ctl, api):
    seed(ctl, notifications=0, count_snapshot=7, cyrillic_count=True, outgoing_messages=1)
    body = api.get(u("getWebhooksCount")).json()
    assert body == {"\u0441ount": 7} and "count" not in body
    assert api.get(u("getMessagesCount")).json() == {"\u0441ount": 1}
    ctl.advance_clock(10)
    assert api.get(u("getWebhooksCount")).json() == {"\u0441ount": 0}
    ctl.patch_instance(ID, cyrillic_count=False)
    assert api.get(u("getWebhooksCount")).json() == {"count": 0}


# ------------------------------------------------------------------ arrivals


def test_arrivals_follow_the_clock_and_keep_the_fraction(ctl, api):
    ctl.set_config(count_refresh_seconds=0)
    seed(ctl, arrival_rate_per_second=2)
    ctl.advance_clock(1.3)
    assert ctl.instance(ID)["queue_length"] >= 2
    ctl.patch_instance(ID, arrival_rate_per_second=0)  # freeze: no more real-time drift
    frozen = ctl.instance(ID)["queue_length"]
    assert frozen in (2, 3)
    assert api.get(u("getWebhooksCount")).json() == {"count": frozen}

    ctl.patch_instance(ID, arrival_rate_per_second=4)
    ctl.advance_clock(0.2)  # 0.8 notifications: nothing yet
    ctl.patch_instance(ID, arrival_rate_per_second=4)  # re-anchors, keeps the fraction
    ctl.advance_clock(0.1)  # +0.4 -> the fraction passes 1
    assert ctl.instance(ID)["queue_length"] >= frozen + 1

    # a clear empties the queue but arrivals continue
    assert api.delete(u("clearWebhooksQueue")).json()["isCleared"] is True
    ctl.advance_clock(1)
    assert ctl.instance(ID)["queue_length"] >= 4


# ------------------------------------------------------------------ receive / delete


def test_receive_peeks_and_delete_removes(ctl, api):
    seed(ctl, notifications=2, wid="71231234567@c.us")
    first = api.get(u("receiveNotification")).json()
    assert first["receiptId"] == 1
    body = first["body"]
    assert body["typeWebhook"] == "incomingMessageReceived"
    assert body["instanceData"] == {"idInstance": ID, "wid": "71231234567@c.us", "typeInstance": "whatsapp"}
    assert isinstance(body["timestamp"], int) and isinstance(body["idMessage"], str)
    assert body["messageData"] == {"typeMessage": "textMessage", "textMessageData": {"textMessage": "stale #1"}}
    assert "senderData" in body
    assert api.get(u("receiveNotification")).json()["receiptId"] == 1  # still there

    assert api.delete(u("deleteNotification", "1")).json() == {"result": True}
    assert api.delete(u("deleteNotification", "1")).json() == {"result": False}
    assert api.get(u("receiveNotification")).json()["receiptId"] == 2
    assert api.delete(u("deleteNotification", "abc")).status_code == 400
    assert api.get(u("deleteNotification", "2")).status_code == 404  # DELETE only
    assert ctl.instance(ID)["queue_length"] == 1


def test_receive_empty_long_polls_then_null(ctl, api):
    seed(ctl)
    start = time.monotonic()
    r = api.get(u("receiveNotification"), params={"receiveTimeout": 0})
    assert r.status_code == 200 and r.text == "null"
    assert time.monotonic() - start < 0.5

    start = time.monotonic()
    assert api.get(u("receiveNotification"), params={"receiveTimeout": 1}).text == "null"
    assert 0.9 <= time.monotonic() - start < 2.5

    ctl.set_config(max_receive_wait_seconds=0.2)
    start = time.monotonic()
    assert api.get(u("receiveNotification"), params={"receiveTimeout": 30}).text == "null"
    assert time.monotonic() - start < 1.5
    assert api.get(u("receiveNotification"), params={"receiveTimeout": "x"}).status_code == 400


def test_receive_long_poll_returns_an_arrival(ctl, api):
    seed(ctl)
    timer = threading.Timer(0.3, lambda: ctl.patch_instance(ID, add_notifications=1))
    timer.start()
    start = time.monotonic()
    body = api.get(u("receiveNotification"), params={"receiveTimeout": 5}).json()
    timer.join()
    assert body["receiptId"] == 1
    assert time.monotonic() - start < 3


def test_receive_long_poll_ends_when_clock_advances(ctl, api):
    seed(ctl)
    timer = threading.Timer(0.2, lambda: ctl.advance_clock(10))
    timer.start()
    start = time.monotonic()
    assert api.get(u("receiveNotification"), params={"receiveTimeout": 8}).text == "null"
    timer.join()
    assert time.monotonic() - start < 3


def test_receive_with_webhook_url_answers_null_at_once(ctl, api):
    seed(ctl, notifications=3, webhook_url="https://hook.example/in")
    start = time.monotonic()
    assert api.get(u("receiveNotification"), params={"receiveTimeout": 5}).text == "null"
    assert time.monotonic() - start < 1


# ------------------------------------------------------------------ rate limits


def test_rate_limits_are_recorded_not_enforced(ctl, api):
    seed(ctl)
    statuses = [api.get(u("getStateInstance")).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    limits = ctl.violations("rate_limit")
    assert limits and limits[0]["method"] == "getStateInstance" and limits[0]["instance"] == ID
    assert limits[0]["calls_in_1s"] == 2
    ctl.clear_violations()
    ctl.advance_clock(1.1)
    api.get(u("getStateInstance"))
    assert ctl.violations() == []
