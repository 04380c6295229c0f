"""A run killed in the middle of a leftTime wait: the rerun completes correctly, never clears inside the
window, and nothing reports the queue empty before it is verified."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from greenapi.timings import GreenApiTimings

from tests.helpers import wait_for_left_time
from bench.servers import CLI, client_env

pytestmark = pytest.mark.e2e

# Longer than a loaded machine takes to reach the first clear, shorter than the dead run's lease (60 s).
WINDOW_SECONDS = 30


def _run(env, tmp_path) -> subprocess.Popen:
    return subprocess.Popen([CLI, "run", "--reason", "number_blocked", "--json"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# `real_prefect_server` (tests/e2e/conftest.py): the session's `prefect server start`, on each back-end; it
# reclaims the leases of dead runs every second (bench/servers.py; Prefect's default is every 15 s).


def test_a_run_killed_during_the_left_time_wait_is_rerun_safely(real_prefect_server, emulator, seed_instance, tmp_path):
    emulator.state.set_config({"clear_window_seconds": WINDOW_SECONDS})
    instance = seed_instance(notifications=5, cleared_before_first_call_seconds=1)  # leftTime 29 s
    env = client_env(
        real_prefect_server["PREFECT_API_URL"], tmp_path / "home",
        GREEN_API_API_URL=emulator.url, GREEN_API_ID_INSTANCE=str(instance.id_instance),
        GREEN_API_API_TOKEN_INSTANCE=instance.token,
        **GreenApiTimings(count_refresh_seconds=1, clear_interval_seconds=WINDOW_SECONDS).env(),
    )

    first = _run(env, tmp_path)
    wait_for_left_time(emulator, instance.id_instance, process=first)
    first.send_signal(signal.SIGKILL)  # no cleanup, no state change: a machine going away
    first.wait(timeout=10)
    assert first.stdout.read() == ""  # it reported nothing, let alone an empty queue
    assert emulator.state.instance(instance.id_instance)["queue_length"] == 5

    second = _run(env, tmp_path)  # waits for the dead run's lock lease (60 s at most), then works
    out, err = second.communicate(timeout=180)

    assert second.returncode == 0, err[-3000:]
    report = json.loads(out)
    assert report["verified_empty"] is True and report["outcome"] == "cleared"
    assert emulator.state.instance(instance.id_instance)["queue_length"] == 0
    clears = emulator.state.calls(instance=instance.id_instance, method="clearWebhooksQueue")
    too_early = next(c for c in clears if c["body_summary"].get("leftTime"))
    window_end = too_early["finished_at"] + too_early["body_summary"]["leftTime"]
    assert all(c["started_at"] >= window_end - 1 for c in clears if c["body_summary"].get("isCleared"))
    assert emulator.state.violations() == []
