"""Benchmark 3: `greenapi-migrate run` on one instance against an already running local Prefect server."""

from __future__ import annotations

import json
import secrets
import subprocess
import time

import httpx

from bench.infra import BIN, ROOT, emulator, prefect_server

RUNS = 3


def main() -> None:
    results = []
    with emulator() as emulator_url, prefect_server() as env:
        for attempt in range(RUNS):
            iid, token = 3_300_000_000 + attempt, secrets.token_hex(25)
            httpx.post(f"{emulator_url}/_emulator/instances", json={"id_instance": iid, "api_token": token, "notifications": 12},
                       timeout=30).raise_for_status()
            run_env = {**env, "GREEN_API_API_URL": emulator_url, "GREEN_API_ID_INSTANCE": str(iid), "GREEN_API_API_TOKEN_INSTANCE": token}
            started = time.perf_counter()
            done = subprocess.run([str(BIN / "greenapi-migrate"), "run", "--reason", "number_blocked", "--json"],
                                  env=run_env, capture_output=True, text=True, cwd=ROOT)
            wall = time.perf_counter() - started
            report = json.loads(done.stdout)
            calls = httpx.get(f"{emulator_url}/_emulator/calls", params={"instance": iid}, timeout=30).json()
            in_api = sum(c["finished_at"] - c["started_at"] for c in calls)
            results.append({
                "exit_status": done.returncode, "wall_seconds": round(wall, 3), "api_calls": len(calls),
                "waiting_on_greenapi_seconds": round(report["waited_seconds"] + in_api, 3),
                "prefect_and_startup_seconds": round(wall - report["waited_seconds"] - in_api, 3),
                "outcome": report["outcome"],
            })
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "single-run.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
