"""The emulator's control API, token hygiene, the Python-side state, and `python -m emulator`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from emulator import (
    EmulatorConfig,
    EmulatorControl,
    EmulatorControlError,
    EmulatorServer,
    EmulatorState,
    InstanceSeed,
    load_seed_file,
)
from tests.helpers import wait_until

TOKEN = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0"
OTHER_TOKEN = "beefbeefbeefbeefbeefbeefbeefbeefbeefbeefbeefbeefbe"
ID = 1103000003
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def ctl(server):
    with EmulatorControl(server.url) as control:
        control.reset()
        yield control


def u(method: str, token: str = TOKEN, id_instance: int = ID) -> str:
    return f"/waInstance{id_instance}/{method}/{token}"


# ------------------------------------------------------------------ token hygiene


def test_token_never_appears_in_logs_views_or_answers(server, ctl, api):
    ctl.seed_instance(id_instance=ID, api_token=TOKEN, notifications=2, outgoing_messages=1)
    ctl.seed_instance(id_instance=ID + 1, api_token=OTHER_TOKEN)
    ctl.add_faults(ID, [
        {"method": "getSettings", "fault": {"kind": "status", "status": 502, "body": "bad gateway"}},
        {"method": "getSettings", "fault": {"kind": "disconnect"}},
    ])
    answers = []
    for method in ("getStateInstance", "getSettings", "getWebhooksCount", "getMessagesCount",
                   "clearMessagesQueue"):
        answers.append(api.get(u(method)).text)
    with pytest.raises(httpx.RemoteProtocolError):
        api.get(u("getSettings"))
    answers.append(api.get(u("receiveNotification")).text)
    answers.append(api.delete(u("deleteNotification") + "/1").text)
    answers.append(api.delete(u("clearWebhooksQueue")).text)
    answers.append(api.delete(u("clearWebhooksQueue")).text)
    answers.append(api.get(u("getStateInstance", token=OTHER_TOKEN)).text)  # another instance's token: 401
    answers.append(api.get(f"/waInstance{ID}/{TOKEN}").text)  # token where the method goes
    answers.append(api.get(f"/waInstance{ID}/{TOKEN}/{TOKEN}").text)
    answers.append(api.get(u("clearWebhooksQueue")).text)  # wrong verb
    answers.append(api.get(u("getStateInstance", id_instance=1)).text)

    everything = json.dumps([
        answers, ctl.calls(), ctl.violations(), ctl.instances(), ctl.instance(ID), ctl.get_config(),
        server.state.calls(), server.state.instances(),
    ])
    assert len(ctl.calls()) >= 14
    assert TOKEN not in everything and OTHER_TOKEN not in everything
    assert TOKEN not in repr(InstanceSeed(id_instance=1, api_token=TOKEN))
    statuses = [c["token_ok"] for c in ctl.calls(instance=ID, method="getStateInstance")]
    assert statuses == [True, False]


# ------------------------------------------------------------------ call log


def test_call_log_filters_and_clear(ctl, api):
    ctl.seed_instances([
        {"id_instance": ID, "api_token": TOKEN, "notifications": 4},
        {"id_instance": ID + 1, "api_token": OTHER_TOKEN},
    ])
    api.get(u("getWebhooksCount"))
    api.delete(u("clearWebhooksQueue"))
    api.delete(u("clearWebhooksQueue"))
    api.get(u("getWebhooksCount", token=OTHER_TOKEN, id_instance=ID + 1))
    api.get(u("getWebhooksCount", id_instance=999))

    everything = ctl.calls()
    assert [c["seq"] for c in everything] == [1, 2, 3, 4, 5]
    first = everything[0]
    assert set(first) == {"seq", "instance", "method", "verb", "status", "started_at", "finished_at",
                          "token_ok", "fault", "body_summary"}
    assert first["body_summary"] == {"count": 4} and first["verb"] == "GET"
    assert first["finished_at"] >= first["started_at"] > 1e9
    clears = ctl.calls(instance=ID, method="clearWebhooksQueue")
    assert [c["body_summary"] for c in clears] == [
        {"isCleared": True, "reason": ""},
        {"isCleared": False, "reason": "Too many requests", "leftTime": 60},
    ]
    assert len(ctl.calls(method="getWebhooksCount")) == 3
    assert ctl.calls(instance=999)[0]["status"] == 403
    assert ctl.calls(instance=999)[0]["token_ok"] is None
    ctl.clear_calls()
    assert ctl.calls() == []


# ------------------------------------------------------------------ control API


def test_instance_views_and_patch(ctl):
    views = ctl.seed_instances([
        InstanceSeed(id_instance=ID, api_token=TOKEN, notifications=2, count_snapshot=9),
        {"id_instance": ID + 1, "api_token": OTHER_TOKEN, "state": "notAuthorized"},
    ])
    assert [v["id_instance"] for v in views] == [ID, ID + 1]
    view = ctl.instance(ID)
    for key in ("id_instance", "state", "wid", "webhook_url", "queue_length", "count_snapshot",
                "snapshot_age_seconds", "outgoing_messages", "window_left_seconds", "clears_done",
                "faults_pending"):
        assert key in view
    assert view["queue_length"] == 2 and view["count_snapshot"] == 9 and view["window_left_seconds"] == 0
    assert "api_token" not in view
    patched = ctl.patch_instance(ID, state="blocked", add_notifications=3, add_outgoing=2,
                                 webhook_url="https://x.example/hook")
    assert patched["state"] == "blocked" and patched["queue_length"] == 5
    assert patched["outgoing_messages"] == 2 and patched["webhook_url"] == "https://x.example/hook"
    assert len(ctl.instances()) == 2
    assert ctl.health()["status"] == "ok"


def test_config_get_put_and_reset_with_config(ctl):
    assert ctl.get_config()["clear_window_seconds"] == 60
    updated = ctl.set_config(clear_window_seconds=5)
    assert updated["clear_window_seconds"] == 5 and updated["count_refresh_seconds"] == 10
    assert updated["rate_limits_per_second"]["getStateInstance"] == 1
    ctl.seed_instance(id_instance=ID, api_token=TOKEN)
    ctl.reset({"count_refresh_seconds": 3})
    config = ctl.get_config()
    assert config["count_refresh_seconds"] == 3 and config["clear_window_seconds"] == 60
    assert ctl.instances() == [] and ctl.calls() == [] and ctl.violations() == []
    ctl.reset(EmulatorConfig(max_receive_wait_seconds=1))
    assert ctl.get_config()["max_receive_wait_seconds"] == 1


@pytest.mark.parametrize(
    ("call", "status", "fragment"),
    [
        (lambda c: c.instance(424242), 404, "no instance 424242"),
        (lambda c: c.patch_instance(424242, state="x"), 404, "no instance"),
        (lambda c: c.seed_instance(id_instance=ID, api_token=TOKEN), 409, "already exist"),
        (lambda c: c.seed_instance(id_instance="abc", api_token=TOKEN), 422, "id_instance"),
        (lambda c: c.seed_instance(id_instance=5), 422, "api_token"),
        (lambda c: c.seed_instance(id_instance=6, api_token="t", colour="red"), 422, "colour"),
        (lambda c: c.patch_instance(ID, add_notifications=-1), 422, "add_notifications"),
        (lambda c: c.patch_instance(ID, api_token="new"), 422, "api_token"),
        (lambda c: c.add_fault(ID, "getSomething", {"kind": "null_body"}), 422, "unknown method"),
        (lambda c: c.add_fault(ID, "*", {"kind": "explode"}), 422, "kind"),
        (lambda c: c.add_fault(ID, "*", {"kind": "status", "status": 99}), 422, "status"),
        (lambda c: c.add_fault(ID, "*", {"kind": "delay"}), 422, "seconds"),
        (lambda c: c.advance_clock(-1), 422, "seconds"),
        (lambda c: c.set_config(clear_window_seconds="soon"), 422, "clear_window_seconds"),
        (lambda c: c.set_config(unknown_knob=1), 422, "unknown_knob"),
        (lambda c: c._call("GET", "/calls", params={"instance": "x"}), 400, "integer"),
        (lambda c: c._call("GET", "/instances/abc"), 400, "integer"),
        (lambda c: c._call("GET", "/no-such-route"), 404, "Not Found"),
        (lambda c: c._call("POST", "/instances"), 400, "JSON body is required"),
        (lambda c: c._call("POST", "/instances", [1, 2]), 400, "InstanceSeed"),
    ],
)
def test_control_errors(ctl, call, status, fragment):
    ctl.seed_instance(id_instance=ID, api_token=TOKEN)
    with pytest.raises(EmulatorControlError) as info:
        call(ctl)
    assert info.value.status == status
    assert fragment in info.value.message


def test_control_rejects_malformed_json(server, ctl):
    r = httpx.post(server.url + "/_emulator/instances", content=b"{not json",
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    r = httpx.post(server.url + "/_emulator/clock/advance", json={"seconds": "ten"})
    assert r.status_code == 422


def test_seed_list_is_all_or_nothing(ctl):
    with pytest.raises(EmulatorControlError):
        ctl.seed_instances([{"id_instance": ID, "api_token": TOKEN}, {"id_instance": ID, "api_token": TOKEN}])
    assert ctl.instances() == []


# ------------------------------------------------------------------ Python-side use


def test_state_shared_with_the_server_thread(api):
    state = EmulatorState(EmulatorConfig(clear_window_seconds=1))
    state.add_instance(id_instance=ID, api_token=TOKEN, notifications=1)
    with EmulatorServer(state) as srv:
        assert srv.state is state and srv.url.startswith("http://127.0.0.1:")
        assert httpx.get(srv.url + u("getWebhooksCount")).json() == {"count": 1}
        errors = []

        def hammer():
            try:
                for _ in range(20):
                    state.instance(ID)
                    state.calls()
            except Exception as exc:  # pragma: no cover - failure path
                errors.append(exc)

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        for _ in range(10):
            httpx.get(srv.url + u("getMessagesCount"))
        for t in threads:
            t.join()
        assert errors == []
        assert len(state.calls(method="getMessagesCount")) == 10
    assert not srv.running


def test_seed_file_round_trip(tmp_path):
    path = tmp_path / "seed.json"
    path.write_text(json.dumps({
        "config": {"clear_window_seconds": 5},
        "instances": [{"id_instance": 11, "api_token": TOKEN, "refuse_clears": {"reason": "nope", "times": 1}}],
    }))
    seed_file = load_seed_file(path)
    assert seed_file.config.clear_window_seconds == 5
    assert seed_file.instances[0].refuse_clears.reason == "nope"


# ------------------------------------------------------------------ standalone


def test_python_dash_m_emulator_serves_health(tmp_path):
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"instances": [
        {"id_instance": 1101, "api_token": TOKEN, "notifications": 2},
        {"id_instance": 1102, "api_token": OTHER_TOKEN},
    ]}))
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", "0", "--seed", str(seed), "--clear-window", "3",
         "--max-receive-wait", "1"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("emulator listening on http://127.0.0.1:"), line
        url = line.split(" on ", 1)[1].strip()
        ids_line = proc.stdout.readline()
        assert "1101" in ids_line and "1102" in ids_line
        with EmulatorControl(url) as control:
            assert control.health() == {"status": "ok", "instances": 2}
            assert control.get_config()["clear_window_seconds"] == 3
            assert control.get_config()["max_receive_wait_seconds"] == 1
        assert httpx.get(f"{url}/waInstance1101/getWebhooksCount/{TOKEN}").json() == {"count": 2}
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert TOKEN not in line + ids_line + out + err and OTHER_TOKEN not in out + err


def test_python_dash_m_emulator_rejects_a_bad_seed(tmp_path):
    seed = tmp_path / "seed.json"
    seed.write_text('{"instances": [{"id_instance": "x"}]}')
    proc = subprocess.run([sys.executable, "-m", "emulator", "--port", "0", "--seed", str(seed)],
                          cwd=REPO, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "cannot start" in proc.stderr


def test_stop_is_quick_with_a_pending_long_poll():
    srv = EmulatorServer(EmulatorConfig()).start()
    srv.state.add_instance(id_instance=ID, api_token=TOKEN)
    # A rule that lets one receiveNotification through: its "after" drops to 0 once the poll is dispatched.
    srv.state.add_faults(ID, [{"method": "receiveNotification", "fault": {"kind": "status", "status": 500}, "after": 1}])
    result = {}

    def poll():
        try:
            result["text"] = httpx.get(srv.url + u("receiveNotification") + "?receiveTimeout=30", timeout=40).text
        except httpx.HTTPError as exc:  # pragma: no cover - failure path
            result["error"] = exc

    thread = threading.Thread(target=poll)
    thread.start()
    wait_until(lambda: srv.state.instance(ID)["faults_pending"][0]["after"] == 0, timeout=10,
               message="the long-poll under way", interval=0.02)
    started = time.monotonic()
    srv.stop()
    thread.join(5)
    assert time.monotonic() - started < 1.5
    assert result == {"text": "null"} and not srv.running
