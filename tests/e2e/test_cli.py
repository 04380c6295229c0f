"""The greenapi-migrate command as a user runs it: real subprocesses, exit statuses, stdout/stderr."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys

import httpx
import pytest

from tests.e2e.conftest import on_sqlite_only
from tests.helpers import run_cli, wait_until
from bench.servers import CLI, FAST_GREEN_API, ROOT, clean_env, client_env, foreign_http_server, free_port, stop_process

pytestmark = pytest.mark.e2e

CANARY = "CANARYcli" + "a1b2c3" * 7


@pytest.fixture
def cli_env(prefect_server, emulator, tmp_path):
    """A clean environment: the session's Prefect server, the emulator, no stray GREEN_API_ settings."""
    return client_env(
        prefect_server.api_url, tmp_path / "prefect-home",
        GREEN_API_API_URL=emulator.url,
        **FAST_GREEN_API,
    )


@on_sqlite_only
def test_run_json_prints_one_result_object_and_exits_zero_when_verified(cli_env, seed_instance, tmp_path):
    instance = seed_instance(token=CANARY, state="blocked", notifications=7)
    cli_env.update(GREEN_API_ID_INSTANCE=str(instance.id_instance), GREEN_API_API_TOKEN_INSTANCE=CANARY)

    done = run_cli(["run", "--reason", "number_blocked", "--json"], cli_env, tmp_path)

    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)  # stdout is exactly one JSON object; logs go to stderr
    assert result["id_instance"] == instance.id_instance and result["reason"] == "number_blocked"
    assert result["count_before"] == 7 and result["count_after"] == 0 and result["verified_empty"] is True
    assert result["outcome"] == "cleared" and result["clear_attempts"] == 1
    assert CANARY not in done.stdout + done.stderr


@on_sqlite_only
def test_run_exits_one_when_the_queue_is_not_verified_empty(cli_env, seed_instance, tmp_path):
    instance = seed_instance(token=CANARY, notifications=3, refuse_clears={"reason": "temporarily unavailable"})
    cli_env.update(GREEN_API_ID_INSTANCE=str(instance.id_instance), GREEN_API_API_TOKEN_INSTANCE=CANARY)

    done = run_cli(["run", "--reason", "account_changed", "--json"], cli_env, tmp_path)

    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["outcome"] == "clear_refused" and result["verified_empty"] is False
    assert "temporarily unavailable" in result["message"]
    assert CANARY not in done.stdout + done.stderr


def _the_error_line(done: subprocess.CompletedProcess) -> str:
    """The one line on stderr that reports the failure (ours, or Prefect's ERROR line with the run's final
    state); and no traceback anywhere."""
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("greenapi-migrate:") or "| ERROR" in line]
    assert len(lines) == 1, done.stderr[-3000:]
    return lines[0]


@on_sqlite_only
def test_wrong_token_exits_one_with_one_line_naming_the_instance(cli_env, seed_instance, tmp_path):
    instance = seed_instance(notifications=3)
    cli_env.update(GREEN_API_ID_INSTANCE=str(instance.id_instance), GREEN_API_API_TOKEN_INSTANCE=CANARY)

    done = run_cli(["run", "--reason", "account_changed"], cli_env, tmp_path)

    assert done.returncode == 1
    assert re.search(rf"instance {instance.id_instance}: api_error: .*401 unauthorized", done.stdout)
    assert f"the apiTokenInstance was refused for idInstance {instance.id_instance}" in _the_error_line(done)
    assert CANARY not in done.stdout + done.stderr


@on_sqlite_only
# One per error class the CLI reports (no answer; a foreign page; a foreign 404): which answers fall in which class
# is the client's, proven per answer in tests/unit/test_client_errors.py.
@pytest.mark.parametrize("answer", ["nothing", "html", "html-404"])
def test_a_wrong_api_url_exits_one_with_one_line_naming_the_host(cli_env, tmp_path, answer):
    cli_env.update(GREEN_API_ID_INSTANCE="7990000001", GREEN_API_API_TOKEN_INSTANCE=CANARY)
    with contextlib.ExitStack() as stack:
        if answer == "nothing":
            url = f"http://127.0.0.1:{free_port()}"  # free a moment ago: nothing listens there
            expected = f"no answer from {url.removeprefix('http://')}"
        else:
            page = {"html": (200, "<html>It works!</html>", "text/html"), "html-404": (404, "<h1>Not Found</h1>", "text/html")}[answer]
            url = stack.enter_context(foreign_http_server(*page))
            expected = f"the answer from {url.removeprefix('http://')} does not look like GREEN-API's"
        cli_env["GREEN_API_API_URL"] = url

        done = run_cli(["run", "--reason", "number_blocked"], cli_env, tmp_path)

    assert done.returncode == 1, done.stderr[-2000:]
    line = _the_error_line(done)
    assert expected in line and "getStateInstance on instance 7990000001" in line
    assert CANARY not in done.stdout + done.stderr


@on_sqlite_only
@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, "GREEN_API_ID_INSTANCE, GREEN_API_API_TOKEN_INSTANCE"),
        ({"GREEN_API_ID_INSTANCE": "12", "GREEN_API_MAX_RETRIES": "many"}, "invalid setting GREEN_API_MAX_RETRIES:"),
        ({"GREEN_API_ID_INSTANCE": "not-a-number", "GREEN_API_API_TOKEN_INSTANCE": CANARY}, "invalid setting GREEN_API_ID_INSTANCE:"),
        ({"GREEN_API_ID_INSTANCE": "12", "GREEN_API_API_TOKEN_INSTANCE": CANARY, "GREEN_API_API_URL": "ftp://x"}, "GREEN_API_API_URL:"),
    ],
)
def test_configuration_errors_are_one_line_without_a_traceback(cli_env, tmp_path, settings, expected):
    cli_env.update(settings)

    done = run_cli(["run", "--reason", "number_blocked"], cli_env, tmp_path, timeout=60)

    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("greenapi-migrate: configuration error:") and expected in lines[0]
    assert "Traceback" not in done.stderr and CANARY not in done.stderr


def test_a_configuration_error_is_reported_before_prefect_is_imported(tmp_path):
    script = "import sys; from cli.main import main; code = main(['run', '--reason', 'number_blocked']); print(sorted(m for m in sys.modules if m.split('.')[0] == 'prefect')); sys.exit(code)"
    done = subprocess.run([sys.executable, "-c", script], env=clean_env(PYTHONPATH=str(ROOT)), cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)

    assert done.returncode == 2 and "configuration error" in done.stderr, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"  # at once: no Prefect import (a second of CPU) before the one line


@on_sqlite_only
def test_unknown_reason_is_rejected_by_the_parser(cli_env, tmp_path):
    done = run_cli(["run", "--reason", "phone_lost"], cli_env, tmp_path, timeout=60)
    assert done.returncode == 2 and "invalid choice: 'phone_lost'" in done.stderr


@on_sqlite_only
@pytest.mark.parametrize(("block", "expected"), [
    ("nope", "no greenapi-instance block named 'nope'"),
    ("7990000002", "no greenapi-instance block registered for idInstance 7990000002"),
])
def test_a_wrong_block_name_or_idinstance_exits_two_with_one_line(cli_env, tmp_path, block, expected):
    done = run_cli(["run", "--reason", "number_blocked", "--block", block], cli_env, tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    line = _the_error_line(done)
    assert line.startswith("greenapi-migrate: configuration error:") and expected in line
    assert "greenapi-migrate instances list" in line


@on_sqlite_only
def test_demo_runs_three_instances_and_shows_the_left_time_path(prefect_server, tmp_path):
    done = run_cli(["demo"], client_env(prefect_server.api_url, tmp_path / "home"), tmp_path, timeout=180)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("COMPLETED: cleared") == 3
    assert re.search(r"too early: leftTime \d+ s", done.stdout)
    assert "peek                   found one" in done.stdout  # the stale zero count was caught
    assert "emulator queue now 0" in done.stdout
    assert prefect_server.api_url.removesuffix("/api") in done.stdout
    # One name per run from its first line: <reason>-<idInstance>, never the demo's block name.
    begun = set(re.findall(r"Beginning flow run '([^']+)'", done.stderr))
    assert begun == {"number_blocked-1101000001", "account_changed-1101000002", "account_changed-1101000003"}, begun


def test_emulator_command_serves_standalone(tmp_path):
    out = tmp_path / "emulator.out"
    with out.open("w") as sink:
        process = subprocess.Popen([CLI, "emulator", "--port", "0"], stdout=sink, stderr=subprocess.STDOUT, text=True)
    try:
        # Its first line names its URL; read from a file, so a silent emulator fails the wait, not pytest's timeout.
        match = wait_until(lambda: process.poll() is None and re.search(r"http://127\.0\.0\.1:\d+", out.read_text()),
                           timeout=30, message=lambda: f"the emulator printed no URL (exit {process.poll()}): {out.read_text()[-2000:]!r}")
        assert httpx.get(f"{match.group(0)}/_emulator/health", timeout=5).status_code == 200
    finally:
        stop_process(process, timeout=10)
