"""``greenapi-migrate receiver`` as a user runs it: a real subprocess, its output and exit status."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from tests.e2e.conftest import on_sqlite_only
from tests.helpers import register_instances, run_cli
from bench.servers import Receiver, client_env

pytestmark = [pytest.mark.e2e, on_sqlite_only]

CANARY = "CANARYrcvcli" + "b0a7" * 8


@pytest.fixture
def receiver_env(prefect_server, tmp_path):
    asyncio.run(register_instances([7_790_000_001]))
    return client_env(prefect_server.api_url, tmp_path / "prefect-home")


def test_without_a_secret_it_exits_2_with_one_line(receiver_env, tmp_path):
    done = run_cli(["receiver"], receiver_env, tmp_path, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "GREEN_API_RECEIVER_SECRET" in lines[0], done.stderr


@pytest.mark.parametrize("setting, value, args", [
    ("GREEN_API_RECEIVER_PORT", "lots", []),
    ("GREEN_API_RECEIVER_FORWARD_URL", None, ["--forward-to", "ftp://bot.internal/" + CANARY]),  # a wrong forward URL
])
def test_a_bad_setting_exits_2_with_one_line_and_no_secret(receiver_env, tmp_path, setting, value, args):
    receiver_env.update(GREEN_API_RECEIVER_SECRET=CANARY, **({setting: value} if value else {}))
    done = run_cli(["receiver", *args], receiver_env, tmp_path, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and setting in lines[0], done.stderr
    assert CANARY not in done.stderr


def test_with_a_secret_it_prints_its_url_answers_and_stops_on_sigterm(receiver_env, tmp_path):
    (tmp_path / ".env").write_text(f"GREEN_API_RECEIVER_SECRET={CANARY}\n")  # the secret from .env
    receiver = Receiver.start(receiver_env, tmp_path, "--port", "0")
    try:
        url = receiver.url
        assert int(re.fullmatch(r"http://127\.0\.0\.1:(\d+)", url).group(1)) > 0, url

        health = httpx.get(f"{url}/health", timeout=10)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        unauthorized = httpx.post(f"{url}/events/queue-reset", json={"idInstance": 7_790_000_001, "reason": "number_blocked"}, timeout=10)
        assert unauthorized.status_code == 401
        accepted = httpx.post(
            f"{url}/events/queue-reset", json={"idInstance": 7_790_000_001, "reason": "number_blocked", "source": "e2e"},
            headers={"Authorization": f"Bearer {CANARY}"}, timeout=30,
        )
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["event"] == "greenapi.instance.number-blocked"
        for response in (health, unauthorized, accepted):
            assert CANARY not in response.text
    finally:
        code = receiver.terminate(timeout=20)
    stderr = "".join(receiver.stderr)
    assert code == 0, stderr[-2000:]
    output = "".join(receiver.stdout)
    assert output.count("receiver listening on") == 1 and output.rstrip().endswith("receiver stopped")
    assert "not relaying" in output  # no forward URL: it says it must not be an app's webhookUrl
    assert CANARY not in output + stderr
    assert stderr.strip() == "", stderr[-2000:]  # no access log, no warnings on a clean run
