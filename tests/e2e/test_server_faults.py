"""Faults of the Prefect side while runs work, on both back-ends: the Prefect server restarted during a
leftTime wait, and (PostgreSQL) the database restarted during a sweep. A run may fail saying so; it
never reports a queue empty that is not, and never clears inside a window it knows of."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time

import pytest

from greenapi.timings import GreenApiTimings

from tests.e2e.conftest import on_postgres_only
from tests.helpers import clear_registry, wait_for_left_time
from bench.servers import CLI, client_env

pytestmark = pytest.mark.e2e

WINDOW_SECONDS = 20


def _client_env(prefect_server, tmp_path, **extra: str) -> dict[str, str]:
    return client_env(prefect_server.api_url, tmp_path / "client-home",
                      **GreenApiTimings(count_refresh_seconds=1, clear_interval_seconds=WINDOW_SECONDS).env(), **extra)


def test_a_run_outlives_a_prefect_server_restart_during_its_left_time_wait(prefect_server, emulator, seed_instance, tmp_path):
    emulator.state.set_config({"clear_window_seconds": WINDOW_SECONDS})
    instance = seed_instance(notifications=6, cleared_before_first_call_seconds=1)  # leftTime 19 s
    env = _client_env(prefect_server, tmp_path, GREEN_API_API_URL=emulator.url, GREEN_API_ID_INSTANCE=str(instance.id_instance),
                      GREEN_API_API_TOKEN_INSTANCE=instance.token)
    run = subprocess.Popen([CLI, "run", "--reason", "account_changed", "--json"], env=env, cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_left_time(emulator, instance.id_instance, process=run)

    restart_began = time.monotonic()
    prefect_server.server.restart()
    restart_seconds = time.monotonic() - restart_began
    out, err = run.communicate(timeout=180)

    assert restart_seconds < WINDOW_SECONDS - 2, f"the restart took {restart_seconds:.1f} s: longer than the wait it was to fall in"
    assert run.returncode == 0, err[-3000:]
    report = json.loads(out)
    assert report["outcome"] == "cleared" and report["verified_empty"] is True
    assert emulator.state.instance(instance.id_instance)["queue_length"] == 0
    assert emulator.state.violations() == []  # no clear inside the window leftTime announced


# While PostgreSQL restarts the Prefect server answers 500, which Prefect's client does not retry: the sweep retries its own
# writes (bounded) and waits for the server before Prefect's engine writes its final state (flows/sweep_instances.py).
@on_postgres_only
def test_a_sweep_across_a_postgres_restart_reports_only_what_it_verified(prefect_server, emulator, seed_instance, tmp_path):
    asyncio.run(clear_registry())  # the sweep checks every registered instance: these six only
    emulator.state.set_config({"clear_window_seconds": WINDOW_SECONDS})
    affected = [seed_instance(state="blocked", notifications=4, cleared_before_first_call_seconds=1) for _ in range(3)]
    healthy = [seed_instance(notifications=2) for _ in range(3)]
    blocks = "\n    ".join(
        f"await GreenApiInstance(api_url={emulator.url!r}, id_instance={s.id_instance}, api_token_instance={s.token!r})"
        f".asave('pg-{s.id_instance}', overwrite=True)" for s in (*affected, *healthy))
    script = textwrap.dedent("""
        import asyncio, json
        from flows import sweep_instances
        from instances import GreenApiInstance

        async def main():
            {blocks}
            state = await sweep_instances(max_concurrency=4, handle="inline", return_state=True)
            result = await state.aresult(raise_on_failure=False)
            print(json.dumps({{"state": state.type.value, "message": state.message,
                              "findings": [f.model_dump(mode="json") for f in result.findings] if hasattr(result, "findings") else None}}))

        asyncio.run(main())
    """).format(blocks=blocks)
    sweep = subprocess.Popen([sys.executable, "-c", script], env=_client_env(prefect_server, tmp_path), cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_left_time(emulator, affected[0].id_instance, process=sweep)

    prefect_server.cluster.restart()
    out, err = sweep.communicate(timeout=240)

    assert prefect_server.server.healthy(timeout=10)
    assert out.strip(), f"the sweep printed nothing (exit {sweep.returncode}):\n{err[-3000:]}"
    outcome = json.loads(out.strip().splitlines()[-1])
    assert outcome["state"] in ("COMPLETED", "FAILED"), outcome
    if outcome["state"] == "FAILED":
        assert outcome["message"], "a failed sweep says why"
    for finding in outcome["findings"] or []:
        if (finding["outcome"] or {}).get("handling") == "completed":  # reported verified: the queue must really be empty
            assert emulator.state.instance(finding["id_instance"])["queue_length"] == 0, finding
    for seeded in healthy:
        assert "clearWebhooksQueue" not in [c["method"] for c in emulator.state.calls(instance=seeded.id_instance)]
    assert emulator.state.violations() == []
