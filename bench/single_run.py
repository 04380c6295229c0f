"""Benchmark 3: `greenapi-migrate run` on one instance against an already running local Prefect server.

    python -m bench.single_run [--backend sqlite|postgres]

Each run's wall time is shown beside GREEN-API's floor: max(count refresh, receiveTimeout) + the other calls' times.
Writes bench/out/single-run-<backend>.json (BENCH_SMALL=1: one run instead of three, single-run-small-<backend>.json).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import time

import httpx

from bench.infra import backend, emulator, prefect_server
from bench.servers import BIN, ROOT
from greenapi.timings import COUNT_REFRESH_SECONDS, MIN_RECEIVE_TIMEOUT_SECONDS

RUNS = 3


def floor_seconds(calls: list[dict], receive_timeout: float) -> float:
    """GREEN-API's floor for a verified clear: the count-refresh wait and the peek's receiveTimeout run side by
    side (the larger of the two), plus the time of every other call, which cannot overlap anything."""
    others = sum(c["finished_at"] - c["started_at"] for c in calls if c["method"] != "receiveNotification")
    return max(COUNT_REFRESH_SECONDS, receive_timeout) + others


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.single_run")
    parser.add_argument("--backend", choices=("postgres", "sqlite"), help="the Prefect server's database (default: BENCH_BACKEND or sqlite)")
    args = parser.parse_args(argv)
    if args.backend:
        os.environ["BENCH_BACKEND"] = args.backend
    small = bool(os.environ.get("BENCH_SMALL"))
    results = []
    with emulator() as emulator_url, prefect_server() as env:
        for attempt in range(1 if small else RUNS):
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
            # The peek runs during the count-refresh wait: what GREEN-API costs is the floor, not waits + calls.
            floor = floor_seconds(calls, MIN_RECEIVE_TIMEOUT_SECONDS)
            results.append({
                "exit_status": done.returncode, "wall_seconds": round(wall, 3), "api_calls": len(calls),
                "waiting_on_greenapi_seconds": round(floor, 3),
                "prefect_and_startup_seconds": round(wall - floor, 3),
                "floor_seconds": round(floor, 3),
                "outcome": report["outcome"], "backend": backend(),
            })
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / f"single-run{'-small' if small else ''}-{backend()}.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
