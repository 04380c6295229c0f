"""Benchmark: `greenapi-migrate instances import` of 1,000 instances on a fresh local Prefect server.

    python -m bench.import_instances [--backend sqlite|postgres] [--count 1000]

Times three imports as subprocesses of the CLI: the first (all created), the same file again (all unchanged,
nothing written) and one with every token changed (all updated). Target: the first import within 30 s.
Writes bench/out/import-instances-<backend>.json.
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

TARGET_SECONDS = 30.0


def _write_csv(path: Path, count: int) -> None:
    rows = [f"{5_000_000_001 + n},{secrets.token_hex(25)},http://127.0.0.1:9," for n in range(count)]
    path.write_text("idInstance,apiTokenInstance,apiUrl,name\n" + "\n".join(rows) + "\n")


def _import(env: dict[str, str], path: Path) -> tuple[float, dict]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "cli.main", "instances", "import", "--json", str(path)],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"import failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed, json.loads(done.stdout)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.import_instances")
    parser.add_argument("--backend", choices=("postgres", "sqlite"), help="the Prefect server's database (default: BENCH_BACKEND or sqlite)")
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args(argv)
    if args.backend:
        os.environ["BENCH_BACKEND"] = args.backend
    rows = []
    with tempfile.TemporaryDirectory() as folder, prefect_server() as env:
        env = {**env, "PYTHONPATH": str(ROOT)}
        source = Path(folder) / "fleet.csv"
        _write_csv(source, args.count)
        for label in ("first (created)", "again (unchanged)", "tokens changed (updated)"):
            if label.startswith("tokens"):
                _write_csv(source, args.count)
            seconds, outcome = _import(env, source)
            rows.append({"import": label, "seconds": round(seconds, 2), "created": len(outcome["created"]),
                         "updated": len(outcome["updated"]), "unchanged": len(outcome["unchanged"])})
            print(f"{backend()}: {args.count} instances, {label}: {seconds:.2f} s "
                  f"({len(outcome['created'])} created, {len(outcome['updated'])} updated, {len(outcome['unchanged'])} unchanged)", flush=True)
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / f"import-instances-{backend()}.json").write_text(json.dumps({"count": args.count, "target_seconds": TARGET_SECONDS, "rows": rows}, indent=2))
    first = rows[0]["seconds"]
    print(f"first import: {first:.2f} s (target <= {TARGET_SECONDS:.0f} s): {'OK' if first <= TARGET_SECONDS else 'SLOW'}")


if __name__ == "__main__":
    main()
