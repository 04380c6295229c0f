"""Benchmark 1: the fleet sweep (5% affected) against a plain asyncio + httpx script, side by side on one server.

    python -m bench.fleet [SIZE ...] [--backend sqlite|postgres] [--rounds N]

Sizes default to 1000; the back-end to BENCH_BACKEND (sqlite). BENCH_SMALL=1 replaces the sizes with 20 (a smoke
test). Per size, one emulator and one Prefect server: the fleet is registered once (blocks and recorded wids,
through Prefect's client; not measured), then each round runs the baseline and then the product's sweep
(`bench.sweep_runner`), each in its own process against a freshly seeded emulator. Between rounds the Prefect
state a sweep leaves behind (new wids, clear windows) is put back, so a round measures what the first did.
Writes bench/out/fleet-<size>-<backend>.json.

Counted per run, from the emulator's call counts (`GET /_emulator/counts`, not capped like its call log): calls
per healthy and per affected instance, every instance the run reported as could not be checked and, of those,
the ones whose two check calls the emulator had answered; from the emulator's instance views: affected
instances actually cleared (queue empty, a clear done); from the run's own report: affected found, verified.
Peak memory: each process's own VmHWM (bench/memory.py). CPU-seconds each process used during each side's run
(``cpu_seconds``: the measured script, the emulator, the Prefect server and, with BENCH_DATABASE_URL, PostgreSQL;
bench/cpu.py), with the load average at its end: on a shared machine compare CPU, not only wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import defaultdict

import httpx

from bench.cpu import CpuMeter, find_roots
from bench.infra import backend, emulator, kept_database, prefect_server
from bench.servers import ROOT

MAX_CONCURRENCY = 20
AFFECTED_SHARE = 0.05
RECENT_CLEAR_SECONDS_AGO = 40  # within GREEN-API's 60 s window: leftTime 20 s applies
SMALL_SIZE = 20
TARGET_RATIO = {"postgres": 1.2, "sqlite": 1.5}
CHECK_METHODS = ("getStateInstance", "getSettings")


def fleet(size: int) -> tuple[list[dict], dict[int, str], set[int]]:
    """Instances (seed form), the wids recorded at the last sweep, and the ids that should be handled."""
    instances, recorded, affected = [], {}, set()
    n_affected = max(1, round(size * AFFECTED_SHARE))
    for index in range(size):
        iid = 3_100_000_000 + index
        wid = f"7{iid}@c.us"
        # The same token every time, so a kept database's blocks (BENCH_DATABASE_URL) fit a fresh emulator.
        token = hashlib.sha256(f"bench-{iid}".encode()).hexdigest()[:50]
        seed = {"id_instance": iid, "api_token": token, "wid": wid, "notifications": 5}
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
    """A fresh emulator (instances, windows, queues, call counts and log, violations)."""
    httpx.post(f"{url}/_emulator/reset", timeout=30).raise_for_status()
    # A call log that holds every call of a run (about 2 per instance), for the timeline below.
    httpx.put(f"{url}/_emulator/config", json={"call_log_limit": max(10_000, 3 * len(instances))}, timeout=30).raise_for_status()
    httpx.post(f"{url}/_emulator/instances", json=instances, timeout=120).raise_for_status()


def measure(url: str, instances: list[dict], affected: set[int], run: dict, started_at: float) -> dict:
    """What the emulator saw during one run, next to what the run reported (``run``: the script's JSON)."""
    counts = httpx.get(f"{url}/_emulator/counts", timeout=60).json()
    per_instance = {iid: sum(methods.values()) for iid, methods in counts["by_instance_method"].items()}
    ids = [str(s["id_instance"]) for s in instances]
    healthy = [per_instance.get(iid, 0) for iid in ids if int(iid) not in affected]
    hit = [per_instance.get(str(iid), 0) for iid in affected]
    answered = counts["answered_by_instance_method"]
    not_checked = run.get("not_checked_ids", [])
    views = {v["id_instance"]: v for v in httpx.get(f"{url}/_emulator/instances", timeout=120).json()}
    violations = httpx.get(f"{url}/_emulator/violations", params={"kind": "clear_inside_window"}, timeout=60).json()
    stats = {
        "api_calls": counts["total"],
        "calls_by_method": counts["by_method"],
        "calls_per_healthy_max": max(healthy, default=0),
        "calls_per_affected_max": max(hit, default=0),
        "calls_per_affected_mean": round(sum(hit) / max(len(hit), 1), 2),
        "clear_inside_known_window": len(violations),
        "affected_found": len(set(run.get("affected_ids", [])) & affected),
        "affected_misreported": sorted(set(run.get("affected_ids", [])) ^ affected)[:20],
        "not_checked": len(not_checked),
        # Reported as could not be checked although the emulator answered both of its check calls (2xx).
        "not_checked_but_answered": sum(1 for iid in not_checked
                                        if all(answered.get(str(iid), {}).get(m, 0) for m in CHECK_METHODS)),
        "emulator_cleared": sum(1 for iid in affected if views[iid]["clears_done"] and not views[iid]["queue_length"]),
    }
    stats.update(_timeline(url, affected, started_at, counts["total"]))
    return stats


def _timeline(url: str, affected: set[int], started: float, total_calls: int) -> dict:
    """When the checks ended, the last call, and the slowest affected instances' calls (seconds from the run's
    start), from the call log: only when the log still holds every call of the run."""
    calls = httpx.get(f"{url}/_emulator/calls", timeout=120).json()
    if not calls or len(calls) < total_calls:
        return {"timeline": f"call log holds {len(calls)} of {total_calls} calls"}
    per_instance: dict[int, list] = defaultdict(list)
    for call in calls:
        if call["instance"] in affected:
            per_instance[call["instance"]].append((call["method"], round(call["started_at"] - started, 2)))
    slowest = sorted(per_instance.items(), key=lambda item: item[1][-1][1])[-3:]
    checks = [c["finished_at"] for c in calls if c["method"] == "getSettings"]
    return {"timeline": {
        "first_call_at": round(min(c["started_at"] for c in calls) - started, 2),
        "checks_done_at": round(max(checks) - started, 2) if checks else None,
        "last_call_at": round(max(c["finished_at"] for c in calls) - started, 2),
        "slowest": {str(iid): steps for iid, steps in slowest},
    }}


def _with_prefect(env: dict, coroutine_function, *args):
    """Run ``coroutine_function(*args)`` with Prefect's client pointed at the benchmark's server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
        return asyncio.run(coroutine_function(*args))


async def _register(emulator_url: str, instances: list[dict], recorded: dict[int, str]) -> int:
    """Saves the blocks and recorded wids that are not there yet (all, on a fresh database); how many it saved.

    One Prefect client, and per instance two writes of its typed methods (the recorded wid, then the block:
    a block that is there has its record): ``Block.asave`` would also read the block type and schema each time."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import BlockDocumentCreate, VariableCreate
    from prefect.exceptions import ObjectAlreadyExists

    from domain.changes import SeenAccount
    from instances.blocks import BLOCK_TYPE_SLUG, GreenApiInstance
    from instances.lookup import registered_ids
    from instances.memory import record_seen, seen_variable_name

    there = await registered_ids()
    if there - {s["id_instance"] for s in instances}:
        raise RuntimeError(f"the database holds {len(there)} greenapi-instance blocks of another fleet: use one database per size")
    instances = [s for s in instances if s["id_instance"] not in there]
    if not instances:
        return 0
    first, *rest = instances
    await GreenApiInstance(api_url=emulator_url, id_instance=first["id_instance"], api_token_instance=first["api_token"]).asave(
        f"bench-{first['id_instance']}", overwrite=True)
    await record_seen(first["id_instance"], SeenAccount(state="authorized", wid=recorded[first["id_instance"]]))
    # SQLite answers 503 under many concurrent writers (Prefect's client then backs off for seconds).
    slots = asyncio.Semaphore(16 if backend() == "postgres" else 2)
    async with get_client() as client:
        model = await client.read_block_document_by_name(f"bench-{first['id_instance']}", BLOCK_TYPE_SLUG)

        async def one(seed: dict) -> None:
            iid = seed["id_instance"]
            seen = SeenAccount(state="authorized", wid=recorded[iid])
            async with slots:
                try:
                    await client.create_variable(VariableCreate(name=seen_variable_name(iid), value=seen.model_dump(mode="json"),
                                                                tags=["greenapi", "seen"]))
                except ObjectAlreadyExists:
                    await record_seen(iid, seen)
                await client.create_block_document(BlockDocumentCreate(
                    name=f"bench-{iid}", block_type_id=model.block_type_id, block_schema_id=model.block_schema_id,
                    data={"api_url": emulator_url, "id_instance": iid, "api_token_instance": seed["api_token"]}))

        await asyncio.gather(*(one(s) for s in rest))
    return len(instances)


def register(env: dict, emulator_url: str, instances: list[dict], recorded: dict[int, str]) -> int:
    """Blocks and recorded wids on the benchmark's Prefect server (setup, not measured); how many were saved."""
    return _with_prefect(env, _register, emulator_url, instances, recorded)


async def _put_back(affected: set[int], recorded: dict[int, str]) -> None:
    """Undo what a sweep wrote for the affected instances: their clear windows and new wids, and (a kept database
    whose last run was stopped) their instance locks: leases live in the server's memory, so a restarted server
    never frees the slots a stopped run held."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectNotFound
    from prefect.variables import Variable

    from domain.changes import SeenAccount
    from instances.locks import instance_limit_name
    from instances.memory import next_clear_variable_name, record_seen

    slots = asyncio.Semaphore(4)
    async with get_client() as client:

        async def one(iid: int) -> None:
            async with slots:
                await Variable.aunset(next_clear_variable_name(iid))
                await record_seen(iid, SeenAccount(state="authorized", wid=recorded[iid]))
                with contextlib.suppress(ObjectNotFound):
                    await client.update_global_concurrency_limit(instance_limit_name(iid), GlobalConcurrencyLimitUpdate(active_slots=0))

        await asyncio.gather(*(one(iid) for iid in affected))


async def _count_task_runs() -> int:
    """Every task run on the server, read in pages (Prefect's typed client counts flow runs, not task runs)."""
    from prefect.client.orchestration import get_client

    total, page = 0, 200
    async with get_client() as client:
        while True:
            runs = await client.read_task_runs(limit=page, offset=total)
            total += len(runs)
            if len(runs) < page:
                return total


def _run_script(args: list[str], meter: CpuMeter, env: dict | None = None) -> dict:
    """The script's JSON line, with the CPU-seconds it and each benchmark process used meanwhile (``cpu_seconds``)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    meter.start()
    done = subprocess.run([sys.executable, "-m", *args], env=env, capture_output=True, text=True, cwd=ROOT)
    cpu = meter.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    cpu["measured_process"] = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1)
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "cpu_seconds": cpu}


def run_size(size: int, rounds: int = 1, register_only: bool = False) -> dict | None:
    instances, recorded, affected = fleet(size)
    results = []
    with emulator() as emulator_url, prefect_server() as env:
        began = time.monotonic()
        registered = register(env, emulator_url, instances, recorded)
        register_seconds = time.monotonic() - began
        if register_only:
            print(json.dumps({"size": size, "registered": registered, "register_seconds": round(register_seconds, 1)}), flush=True)
            return None
        if registered < size:  # a kept database (BENCH_DATABASE_URL): what an earlier run's sweep wrote is put back
            _with_prefect(env, _put_back, affected, recorded)
        meter = CpuMeter(find_roots(_postgres_port()))
        spec = _dump({"api_url": emulator_url, "instances": instances, "recorded_wids": recorded, "max_concurrency": MAX_CONCURRENCY})
        for number in range(rounds):
            if number:
                _with_prefect(env, _put_back, affected, recorded)
            seed_emulator(emulator_url, instances)
            started = time.time()
            baseline = _run_script(["bench.baseline", spec], meter)
            baseline.update(measure(emulator_url, instances, affected, baseline, started), started_at=started)

            seed_emulator(emulator_url, instances)  # fresh windows and queues for the product
            tasks_before, started = _with_prefect(env, _count_task_runs), time.time()
            product = _run_script(["bench.sweep_runner", str(MAX_CONCURRENCY)], meter, env=env)
            product.update(measure(emulator_url, instances, affected, product, started), started_at=started)
            product["task_runs_created"] = _with_prefect(env, _count_task_runs) - tasks_before
            for side in (baseline, product):  # the ids are in the counts above; the file stays readable
                side.pop("affected_ids", None)
                side["not_checked_ids"] = side.get("not_checked_ids", [])[:20]
            result = {"round": number, "baseline": baseline, "product": product,
                      "wall_ratio": round(product["wall_seconds"] / baseline["wall_seconds"], 3)}
            results.append(result)
            print(json.dumps({"size": size, "backend": backend(), **result}), flush=True)
    os.unlink(spec)
    return {
        "size": size, "backend": backend(), "affected": len(affected), "max_concurrency": MAX_CONCURRENCY,
        "target_ratio": TARGET_RATIO.get(backend()), "register_seconds": round(register_seconds, 1),
        "registered": registered, "rounds": results,
    }


def _postgres_port() -> int | None:
    """The kept database's port (BENCH_DATABASE_URL), whose postmaster's CPU is then measured too."""
    url = kept_database()
    return urllib.parse.urlsplit(url).port if url else None


def _dump(value) -> str:
    handle = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump(value, handle)
    handle.close()
    return handle.name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[1000])
    parser.add_argument("--backend", choices=sorted(TARGET_RATIO), help="the Prefect server's database (default: BENCH_BACKEND or sqlite)")
    parser.add_argument("--rounds", type=int, default=1, help="baseline and product rounds on one registered fleet")
    parser.add_argument("--register-only", action="store_true",
                        help="only register the fleet (into BENCH_DATABASE_URL, to reuse it in later runs)")
    args = parser.parse_args(argv)
    if args.backend:
        os.environ["BENCH_BACKEND"] = args.backend
    sizes = [SMALL_SIZE] if os.environ.get("BENCH_SMALL") else args.sizes
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    for size in sizes:
        result = run_size(size, args.rounds, args.register_only)
        if result:
            (out / f"fleet-{size}-{backend()}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
