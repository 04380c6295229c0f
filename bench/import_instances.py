"""Benchmark: `greenapi-migrate instances import` of N instances on a fresh local Prefect server.

    python -m bench.import_instances [--backend sqlite|postgres] [--instances 1000]

Times three imports as subprocesses of the CLI: the first (all created), the same file again (all unchanged,
nothing written) and one with every token changed (all updated), each with its blocks per second. Targets:
1,000 created within 30 s; 10,000 created within 3 minutes on PostgreSQL (issue 23).
Writes bench/out/import-instances-<instances>-<backend>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.infra import backend, prefect_server
from bench.servers import ROOT

TARGET_SECONDS = {1000: 30.0, 10000: 180.0}
SLOWEST_BLOCKS_PER_SECOND = 2  # the import's time limit: a machine slower than this is not measuring anything


def _write_csv(path: Path, count: int) -> None:
    rows = [f"{5_000_000_001 + n},{secrets.token_hex(25)},http://127.0.0.1:9," for n in range(count)]
    path.write_text("idInstance,apiTokenInstance,apiUrl,name\n" + "\n".join(rows) + "\n")


def _import(env: dict[str, str], path: Path, count: int) -> tuple[float, dict]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "cli.main", "instances", "import", "--json", str(path)],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120 + count / SLOWEST_BLOCKS_PER_SECOND)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"import failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed, json.loads(done.stdout)


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
    with tempfile.TemporaryDirectory() as folder, prefect_server() as env:
        env = {**env, "PYTHONPATH": str(ROOT)}
        source = Path(folder) / "fleet.csv"
        _write_csv(source, args.instances)
        for label in ("first (created)", "again (unchanged)", "tokens changed (updated)"):
            if label.startswith("tokens"):
                _write_csv(source, args.instances)
            seconds, outcome = _import(env, source, args.instances)
            rows.append({"import": label, "seconds": round(seconds, 2), "blocks_per_second": round(args.instances / seconds, 1),
                         "created": len(outcome["created"]), "updated": len(outcome["updated"]),
                         "unchanged": len(outcome["unchanged"]), "load_average": round(os.getloadavg()[0], 1)})
            print(f"{backend()}: {args.instances} instances, {label}: {seconds:.2f} s, {args.instances / seconds:.1f} blocks/s "
                  f"({len(outcome['created'])} created, {len(outcome['updated'])} updated, {len(outcome['unchanged'])} unchanged; "
                  f"load average {os.getloadavg()[0]:.1f})", flush=True)
    target = TARGET_SECONDS.get(args.instances)
    out = out_path(args.instances, backend())
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"count": args.instances, "target_seconds": target, "rows": rows}, indent=2))
    first = rows[0]["seconds"]
    verdict = f" (target <= {target:.0f} s): {'OK' if first <= target else 'SLOW'}" if target else ""
    print(f"first import: {first:.2f} s{verdict}")


if __name__ == "__main__":
    main()
