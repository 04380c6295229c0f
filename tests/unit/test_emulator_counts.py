"""The emulator's call counts (`GET /_emulator/counts`): per method and per instance, past the call log's cap."""

from __future__ import annotations

import httpx
import pytest

from emulator import EmulatorControl

TOKEN = "a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4a1"
ID, OTHER = 1104000001, 1104000002
CAP = 5


@pytest.fixture
def ctl(server):
    with EmulatorControl(server.url) as control:
        control.reset({"call_log_limit": CAP})
        yield control
        control.reset()  # the module's other tests get the default cap back


def test_counts_go_past_the_call_logs_cap(ctl, server):
    ctl.seed_instance(id_instance=ID, api_token=TOKEN, notifications=1)
    ctl.seed_instance(id_instance=OTHER, api_token=TOKEN)
    with httpx.Client(base_url=server.url, timeout=5) as api:
        for _ in range(7):
            assert api.get(f"/waInstance{ID}/getStateInstance/{TOKEN}").status_code == 200
        for _ in range(3):
            assert api.get(f"/waInstance{ID}/getSettings/{TOKEN}").status_code == 200
        assert api.get(f"/waInstance{OTHER}/getSettings/{TOKEN}").status_code == 200
        assert api.get(f"/waInstance{OTHER}/getSettings/wrong-token").status_code == 401

    assert len(ctl.calls()) == CAP  # the log keeps the last CAP calls, as before
    counts = ctl.counts()
    assert counts["total"] == 12
    assert counts["by_method"] == {"getStateInstance": 7, "getSettings": 5}
    assert counts["by_instance_method"] == {str(ID): {"getStateInstance": 7, "getSettings": 3},
                                            str(OTHER): {"getSettings": 2}}
    assert counts["answered_by_instance_method"] == {str(ID): {"getStateInstance": 7, "getSettings": 3},
                                                     str(OTHER): {"getSettings": 1}}
    assert TOKEN not in str(counts)


def test_reset_and_clear_calls_zero_the_counts(ctl, server):
    ctl.seed_instance(id_instance=ID, api_token=TOKEN)
    with httpx.Client(base_url=server.url, timeout=5) as api:
        api.get(f"/waInstance{ID}/getStateInstance/{TOKEN}")
        assert ctl.counts()["total"] == 1
        ctl.clear_calls()
        assert ctl.counts() == {"total": 0, "by_method": {}, "by_instance_method": {}, "answered_by_instance_method": {}}
        api.get(f"/waInstance{ID}/getStateInstance/{TOKEN}")
    ctl.reset()
    assert ctl.counts()["total"] == 0


def test_the_log_keeps_the_newest_calls_up_to_its_cap(ctl, server):
    ctl.seed_instance(id_instance=ID, api_token=TOKEN)
    with httpx.Client(base_url=server.url, timeout=5) as api:
        for _ in range(CAP + 2):
            assert api.get(f"/waInstance{ID}/getSettings/{TOKEN}").status_code == 200
    assert [c["seq"] for c in ctl.calls()] == list(range(3, CAP + 3))
    assert ctl.counts()["by_instance_method"] == {str(ID): {"getSettings": CAP + 2}}
