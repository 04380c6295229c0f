"""Benchmark 1: the fleet sweep (100 and 1,000 instances, 5% affected) against a plain asyncio + httpx script."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import httpx

from bench.infra import ROOT, emulator, prefect_server

MAX_CONCURRENCY = 20
AFFECTED_SHARE = 0.05
RECENT_CLEAR_SECONDS_AGO = 40  # within GREEN-API's 60 s window: leftTime 20 s applies


def fleet(size: int) -> tuple[list[dict], dict[int, str], set[int]]:
    """Instances (seed form), the wids recorded at the last sweep, and the ids that should be handled."""
    instances, recorded, affected = [], {}, set()
    n_affected = max(1, round(size * AFFECTED_SHARE))
    for index in range(size):
        iid = 3_100_000_000 + index
        wid = f"7{iid}@c.us"
        seed = {"id_instance": iid, "api_token": secrets.token_hex(25), "wid": wid, "notifications": 5}
        recorded[iid] = wid
        if index < n_affected:
            affected.add(iid)
            if index % 2 == 0:
                seed["state"] = "blocked"
            else:
                recorded[iid] = f"7000{iid}@c.us"  # another account was recorded last time
            if index % 5 < 2:
                seed["cleared_seconds_ago"] = RECENT_CLEAR_SECONDS_AGO
        instances.append(seed)
    return instances, recorded, affected


def seed_emulator(url: str, instances: list[dict]) -> None:
    httpx.post(f"{url}/_emulator/reset", timeout=30).raise_for_status()
    httpx.post(f"{url}/_emulator/instances", json=instances, timeout=60).raise_for_status()


def call_stats(url: str, affected: set[int]) -> dict:
    calls = httpx.get(f"{url}/_emulator/calls", timeout=60).json()
    per_instance = Counter(c["instance"] for c in calls)
    healthy = [n for iid, n in per_instance.items() if iid not in affected]
    hit = [per_instance[iid] for iid in affected]
    violations = httpx.get(f"{url}/_emulator/violations", timeout=30).json()
    return {
        "api_calls": len(calls),
        "calls_per_healthy_max": max(healthy, default=0),
        "calls_per_affected_max": max(hit, default=0),
        "calls_per_affected_mean": round(sum(hit) / max(len(hit), 1), 2),
        "clear_inside_known_window": sum(1 for v in violations if v.get("kind") == "clear_inside_window"),
    }


async def _register(emulator_url: str, instances: list[dict], recorded: dict[int, str]) -> None:
    from prefect.variables import Variable

    from tasks.accounts import wid_variable_name
    from tasks.credentials import GreenApiInstance

    await GreenApiInstance.aregister_type_and_schema()
    slots = asyncio.Semaphore(2)  # SQLite answers 503 under many concurrent writers

    async def one(seed: dict) -> None:
        async with slots:
            await GreenApiInstance(api_url=emulator_url, id_instance=seed["id_instance"], api_token_instance=seed["api_token"]).asave(
                f"bench-{seed['id_instance']}", overwrite=True)
            await Variable.aset(wid_variable_name(seed["id_instance"]), recorded[seed["id_instance"]], overwrite=True)

    await asyncio.gather(*(one(s) for s in instances))


def register(env: dict, emulator_url: str, instances: list[dict], recorded: dict[int, str]) -> None:
    """Blocks and recorded wids on the benchmark's Prefect server (setup, not measured)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
        asyncio.run(_register(emulator_url, instances, recorded))


def count_task_runs(api_url: str) -> int:
    return int(httpx.post(f"{api_url}/task_runs/count", json={}, timeout=30).json())


def run_size(size: int) -> dict:
    instances, recorded, affected = fleet(size)
    with emulator() as emulator_url, prefect_server() as env:
        register(env, emulator_url, instances, recorded)

        seed_emulator(emulator_url, instances)
        spec = _dump({"api_url": emulator_url, "instances": instances, "recorded_wids": recorded, "max_concurrency": MAX_CONCURRENCY})
        baseline = json.loads(subprocess.run([sys.executable, str(ROOT / "bench" / "baseline.py"), spec],
                                             capture_output=True, text=True, check=True, cwd=ROOT).stdout)
        baseline.update(call_stats(emulator_url, affected))

        seed_emulator(emulator_url, instances)  # fresh windows and queues for the product
        tasks_before = count_task_runs(env["PREFECT_API_URL"])
        done = subprocess.run([sys.executable, "-m", "bench.sweep_runner", str(MAX_CONCURRENCY)], env=env,
                              capture_output=True, text=True, cwd=ROOT)
        if done.returncode:
            raise RuntimeError(done.stderr[-3000:])
        product = json.loads(done.stdout.strip().splitlines()[-1])
        product.update(call_stats(emulator_url, affected))
        product["task_runs_created"] = count_task_runs(env["PREFECT_API_URL"]) - tasks_before
    return {
        "size": size, "affected": len(affected), "max_concurrency": MAX_CONCURRENCY,
        "baseline": baseline, "product": product,
        "wall_ratio": round(product["wall_seconds"] / baseline["wall_seconds"], 3),
    }


def _dump(value) -> str:
    handle = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump(value, handle)
    handle.close()
    return handle.name


def main() -> None:
    sizes = [int(s) for s in sys.argv[1:]] or [100, 1000]
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    for size in sizes:
        result = run_size(size)
        (out / f"fleet-{size}.json").write_text(json.dumps(result, indent=2))
        print(json.dumps(result))


if __name__ == "__main__":
    main()
