"""Benchmark: `greenapi-migrate instances import` of N instances on a fresh local Prefect server.

    python -m bench.import_instances [--backend sqlite|postgres] [--instances 1000]

Times three imports as subprocesses of the CLI: the first (all created), the same file again (all unchanged,
nothing written) and one with every token changed (all updated), each with its blocks per second, the CPU the
Prefect server and the CLI used per row, and the load average. The server's CPU per block is the floor: its
one process writes every block (bench/NOTES.md, session 8). Targets: 1,000 created within 30 s; 10,000 created
within 3 minutes on PostgreSQL (issue 23).
Writes bench/out/import-instances-<instances>-<backend>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench.infra import backend, prefect_server_process
from bench.servers import ROOT

TARGET_SECONDS = {1000: 30.0, 10000: 180.0}
SLOWEST_BLOCKS_PER_SECOND = 2  # the import's time limit: a machine slower than this is not measuring anything


def _write_csv(path: Path, count: int) -> None:
    rows = [f"{5_000_000_001 + n},{secrets.token_hex(25)},http://127.0.0.1:9," for n in range(count)]
    path.write_text("idInstance,apiTokenInstance,apiUrl,name\n" + "\n".join(rows) + "\n")


def _cpu_seconds(process: psutil.Process) -> float:
    """User and system CPU of a process and everything it started."""
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        try:
            times = each.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _import(env: dict[str, str], path: Path, count: int, server: psutil.Process) -> dict:
    """One CLI import: its wall time, its outcome, and the CPU seconds the server and the CLI used for it."""
    server_before, client_before, started = _cpu_seconds(server), _children_cpu_seconds(), time.monotonic()
    done = subprocess.run([sys.executable, "-m", "cli.main", "instances", "import", "--json", str(path)],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120 + count / SLOWEST_BLOCKS_PER_SECOND)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"import failed ({done.returncode}): {done.stderr[-2000:]}")
    return {"seconds": elapsed, "outcome": json.loads(done.stdout), "server_cpu": _cpu_seconds(server) - server_before,
            "client_cpu": _children_cpu_seconds() - client_before}


def out_path(instances: int, backend_name: str) -> Path:
    """The file this benchmark writes for a size and a back-end (bench/report.py reads it)."""
    return ROOT / "bench" / "out" / f"import-instances-{instances}-{backend_name}.json"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.import_instances")
    parser.add_argument("--backend", choices=("postgres", "sqlite"), help="the Prefect server's database (default: BENCH_BACKEND or sqlite)")
    parser.add_argument("--instances", "--count", dest="instances", type=int, default=1000, help="rows in the file (default 1000)")
    args = parser.parse_args(argv)
    if args.backend:
        os.environ["BENCH_BACKEND"] = args.backend
    rows = []
    with tempfile.TemporaryDirectory() as folder, prefect_server_process() as server:
        env = {**server.client_env, "PYTHONPATH": str(ROOT)}
        server_process = psutil.Process(server.process.pid)
        source = Path(folder) / "fleet.csv"
        _write_csv(source, args.instances)
        for label in ("first (created)", "again (unchanged)", "tokens changed (updated)"):
            if label.startswith("tokens"):
                _write_csv(source, args.instances)
            load_before = os.getloadavg()[0]
            run = _import(env, source, args.instances, server_process)
            seconds, outcome = run["seconds"], run["outcome"]
            row = {"import": label, "seconds": round(seconds, 2), "blocks_per_second": round(args.instances / seconds, 1),
                   "created": len(outcome["created"]), "updated": len(outcome["updated"]), "unchanged": len(outcome["unchanged"]),
                   "server_cpu_ms_per_block": round(1000 * run["server_cpu"] / args.instances, 1),
                   "server_busy": round(run["server_cpu"] / seconds, 2),
                   "client_cpu_ms_per_block": round(1000 * run["client_cpu"] / args.instances, 1),
                   "load_average_before": round(load_before, 1), "load_average": round(os.getloadavg()[0], 1)}
            rows.append(row)
            print(f"{backend()}: {args.instances} instances, {label}: {seconds:.2f} s, {row['blocks_per_second']:.1f} blocks/s "
                  f"({row['created']} created, {row['updated']} updated, {row['unchanged']} unchanged); the server's CPU "
                  f"{row['server_cpu_ms_per_block']:.1f} ms a block (busy {row['server_busy']:.0%} of the time), the CLI's "
                  f"{row['client_cpu_ms_per_block']:.1f} ms; load average {load_before:.1f} -> {row['load_average']:.1f}", flush=True)
    target = TARGET_SECONDS.get(args.instances)
    out = out_path(args.instances, backend())
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"count": args.instances, "target_seconds": target, "rows": rows}, indent=2))
    first = rows[0]["seconds"]
    verdict = f" (target <= {target:.0f} s): {'OK' if first <= target else 'SLOW'}" if target else ""
    print(f"first import: {first:.2f} s{verdict}")


if __name__ == "__main__":
    main()
