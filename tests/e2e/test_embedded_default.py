"""The embedded default, as a new user meets it: no PREFECT_API_URL, no profile, a fresh PREFECT_HOME.
Prefect starts its own temporary server in each process; the demo, `run`, `instances import` and the sweep
work on it, one after the other on the same database."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench.servers import CLI, clean_env

pytestmark = pytest.mark.e2e

CANARY = "CANARYembedded" + "c0ffee" * 6


@pytest.fixture
def embedded_env(tmp_path):
    """Nothing of Prefect's or ours set, PREFECT_API_URL and PREFECT_PROFILE included; a new PREFECT_HOME."""
    return clean_env(PREFECT_HOME=str(tmp_path / "fresh-home"))


def _run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _run_lines(stderr: str) -> str:
    """The run's own log lines: the temporary server's noise (its telemetry, SQLite tracebacks) left out."""
    return "\n".join(line for line in stderr.splitlines() if "Flow run" in line or "Task run" in line or "greenapi" in line)[-3000:]


def test_the_demo_then_run_then_an_import_and_a_sweep_on_one_temporary_database(embedded_env, emulator, seed_instance, tmp_path):
    demo = _run([CLI, "demo"], embedded_env, tmp_path)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert demo.stdout.count("COMPLETED: cleared") == 3

    single = seed_instance(token=CANARY, state="blocked", notifications=6)
    embedded_env.update(GREEN_API_API_URL=emulator.url, GREEN_API_COUNT_REFRESH_SECONDS="1", GREEN_API_CLEAR_INTERVAL_SECONDS="3")
    run = _run([CLI, "run", "--reason", "number_blocked", "--json"],
               {**embedded_env, "GREEN_API_ID_INSTANCE": str(single.id_instance), "GREEN_API_API_TOKEN_INSTANCE": CANARY}, tmp_path)

    assert run.returncode == 0, run.stdout[-2000:] + _run_lines(run.stderr)
    result = json.loads(run.stdout)
    assert result["outcome"] == "cleared" and result["verified_empty"] is True and result["count_before"] == 6
    assert emulator.state.instance(single.id_instance)["queue_length"] == 0
    assert "temporary server" in run.stderr  # it really ran on Prefect's own server, not one set up for it
    assert CANARY not in run.stdout + run.stderr

    blocked = seed_instance(token=CANARY, state="blocked", notifications=5)
    fleet = tmp_path / "fleet.csv"
    fleet.write_text(f"idInstance,apiTokenInstance,apiUrl,name\n{blocked.id_instance},{CANARY},{emulator.url},Front Desk\n")
    imported = _run([CLI, "instances", "import", str(fleet)], embedded_env, tmp_path)

    assert imported.returncode == 0, imported.stdout[-2000:] + imported.stderr[-2000:]
    assert "1 created, 0 updated, 0 unchanged" in imported.stdout and "stored as block 'front-desk'" in imported.stdout
    assert "temporary server" in imported.stderr
    assert CANARY not in imported.stdout + imported.stderr

    script = textwrap.dedent("""
        import asyncio, json
        from flows import sweep_instances

        report = asyncio.run(sweep_instances(max_concurrency=4))
        print(json.dumps(report.model_dump(mode="json")))
    """)
    sweep = _run([sys.executable, "-c", script], embedded_env, tmp_path)

    assert sweep.returncode == 0, sweep.stderr[-3000:]
    report = json.loads(sweep.stdout.strip().splitlines()[-1])
    # Only the block imported here: the demo removed its own, whose emulator is gone.
    assert [f["id_instance"] for f in report["findings"]] == [blocked.id_instance]
    assert report["not_checked"] == 0 and report["findings"][0]["outcome"]["handling"] == "completed"
    assert emulator.state.instance(blocked.id_instance)["queue_length"] == 0
    assert CANARY not in sweep.stdout + sweep.stderr
