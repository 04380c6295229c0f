"""The fleet sweep several times on one server: register once, then N rounds of baseline and product.

`python -m bench.fleet_repeat 1000 3`. Registering 1,000 blocks takes about 3 minutes, so comparing a
change over several rounds is cheaper here than with `make bench`. Between rounds, the emulator is
seeded again (fresh windows and queues), and the Prefect state a sweep leaves behind (new wids, clear
windows) is put back. Per round: both walls and their ratio, when the checks ended, the product's
last API call, and the slowest affected instances' calls (seconds from the product's start), which
show where a slow round lost its time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import defaultdict

import httpx

from bench.fleet import MAX_CONCURRENCY, _dump, call_stats, count_task_runs, fleet, register, seed_emulator
from bench.infra import ROOT, emulator, prefect_server
from tasks.accounts import next_clear_variable_name, wid_variable_name


def _put_back(api_url: str, affected: set[int], recorded: dict[int, str]) -> None:
    """Undo what the last round's sweep wrote, retrying the server's 503s (SQLite) for as long as they last."""
    with httpx.Client(base_url=api_url, timeout=60) as http:
        for iid in affected:
            for verb, path, body in (("DELETE", f"/variables/name/{next_clear_variable_name(iid)}", None),
                                     ("PATCH", f"/variables/name/{wid_variable_name(iid)}", {"value": recorded[iid]})):
                for _ in range(40):
                    try:
                        if http.request(verb, path, json=body).status_code != 503:
                            break
                    except httpx.TransportError:
                        pass
                    time.sleep(0.5)


def _timeline(emulator_url: str, affected: set[int], started: float) -> dict:
    calls = httpx.get(f"{emulator_url}/_emulator/calls", timeout=60).json()
    per_instance: dict[int, list] = defaultdict(list)
    for call in calls:
        if call["instance"] in affected:
            per_instance[call["instance"]].append((call["method"], round(call["started_at"] - started, 2)))
    slowest = sorted(per_instance.items(), key=lambda item: item[1][-1][1])[-3:]
    return {
        "checks_done_at": round(max(c["finished_at"] for c in calls if c["method"] == "getSettings") - started, 2),
        "last_call_at": round(max(c["finished_at"] for c in calls) - started, 2),
        "slowest": {str(iid): steps for iid, steps in slowest},
    }


def main() -> None:
    size, rounds = int(sys.argv[1]), int(sys.argv[2])
    instances, recorded, affected = fleet(size)
    with emulator() as emulator_url, prefect_server() as env:
        register(env, emulator_url, instances, recorded)
        api_url = env["PREFECT_API_URL"]
        for number in range(rounds):
            if number:
                _put_back(api_url, affected, recorded)
            seed_emulator(emulator_url, instances)
            spec = _dump({"api_url": emulator_url, "instances": instances, "recorded_wids": recorded, "max_concurrency": MAX_CONCURRENCY})
            baseline = json.loads(subprocess.run([sys.executable, str(ROOT / "bench" / "baseline.py"), spec],
                                                 capture_output=True, text=True, check=True, cwd=ROOT).stdout)
            seed_emulator(emulator_url, instances)
            task_runs_before, started = count_task_runs(api_url), time.time()
            done = subprocess.run([sys.executable, "-m", "bench.sweep_runner", str(MAX_CONCURRENCY)], env=env,
                                  capture_output=True, text=True, cwd=ROOT)
            if done.returncode:
                print(json.dumps({"round": number, "error": done.stderr[-2000:]}), flush=True)
                continue
            product = json.loads(done.stdout.strip().splitlines()[-1])
            print(json.dumps({
                "round": number, "baseline_wall": round(baseline["wall_seconds"], 1), "product_wall": round(product["wall_seconds"], 1),
                "ratio": round(product["wall_seconds"] / baseline["wall_seconds"], 2), "state": product["state"],
                "verified": product["verified"], "peak_rss_mb": round(product["peak_rss_mb"]),
                "task_runs": count_task_runs(api_url) - task_runs_before, **call_stats(emulator_url, affected),
                **_timeline(emulator_url, affected, started),
            }), flush=True)


if __name__ == "__main__":
    main()
