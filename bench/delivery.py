"""Benchmark: what the operator's app receives from GREEN-API, scenario by scenario, under four wirings
(issue 20, item 5). Real processes on loopback: the emulator (its own process, delivering webhooks as
GREEN-API does), `prefect server start` (BENCH_BACKEND or --backend), the receiver and the relay as
`greenapi-migrate receiver` subprocesses, a `greenapi-migrate task-worker`; the app stubs and the W1 sweep in
this process. The wirings of one scenario run at the same time, each on its own instance.

    python -m bench.delivery [--backend sqlite|postgres] [--scale F] [--scenarios i,ii] [--wirings W0,W3]

``--scale`` multiplies the scenario times (30 s, a minute, the 60 s redelivery pause); 1 is GREEN-API's.
Writes bench/out/delivery-<backend>.json (with --scale other than 1: delivery-<backend>-scale<F>.json) and
prints the table for bench/RESULTS.md. Definitions: scenarios/measure.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

from bench.infra import backend, emulator
from bench.servers import ROOT
from scenarios.runner import (GREEN_API_ENV, SCENARIO_TITLES, SCENARIOS, WIRING_TITLES, WIRINGS, PrefectHandle, Stack,
                              Timing, cell_row, configure_emulator, run_scenario)

TARGETS = "with the relay (W3): 0 stale in (i)-(v), 0 fresh lost in (iii)-(v), order kept"


@contextlib.contextmanager
def prefect_handle():
    from bench.servers import PostgresCluster, PrefectServer

    with contextlib.ExitStack() as stack:
        database_url = None
        if backend() == "postgres":
            database_url = stack.enter_context(PostgresCluster()).create_database("delivery")
        server = stack.enter_context(PrefectServer(database_url))
        yield PrefectHandle(api_url=server.api_url, env=server.client_env, stop=server.stop, start=server.start)


async def run_matrix(emulator_url: str, prefect: PrefectHandle, timing: Timing, scenarios, wirings, workdir: Path) -> dict:
    configure_emulator(emulator_url, timing)
    results: dict = {"backend": backend(), "scale": timing.scale, "rate_per_second": timing.rate_per_second,
                     "targets": TARGETS, "cells": [], "notes": {}}
    with Stack(emulator_url=emulator_url, prefect=prefect, workdir=workdir, wirings=wirings, timing=timing) as stack:
        await stack.task_worker_ready()
        try:
            for scenario in scenarios:
                began = time.monotonic()
                cells, notes = await run_scenario(stack, scenario, wirings)
                notes["seconds"] = round(time.monotonic() - began, 1)
                results["notes"][scenario] = notes
                for cell in cells.values():
                    results["cells"].append(cell_row(cell))
                print(f"scenario {scenario}: {notes}", flush=True)
                for cell in cells.values():
                    r = cell.result
                    print(f"  {cell.wiring}: stale {r.stale_got} fresh {r.fresh_got}/{r.fresh_enqueued} lost {r.fresh_lost} "
                          f"dup {r.duplicates} order {'kept' if r.order_kept else 'NOT kept'} clears {cell.extra['clears']}", flush=True)
            (workdir / "outputs.txt").write_text(stack.outputs())
            results["relay_health"] = stack.relay_health()
            results["sweep"] = {"passes": stack.sweep_passes, "errors": stack.sweep_errors[-20:]}
        finally:
            await stack.stop_sweeping()
    return results


def table(results: dict) -> str:
    lines = ["| scenario | wiring | stale got | fresh got | fresh lost | duplicates | order kept | clears | old: got before / never got |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in results["cells"]:
        old = f"{row['old_got_before_change']} / {row['old_never_got']}" if row["old_enqueued"] else "—"
        lines.append(f"| {SCENARIO_TITLES[row['scenario']]} | {WIRING_TITLES[row['wiring']]} | **{row['stale_got']}** | "
                     f"{row['fresh_got']} / {row['fresh_enqueued']} | **{row['fresh_lost']}** | {row['duplicates']} | "
                     f"{'yes' if row['order_kept'] else 'no (' + str(row['out_of_order']) + ')'} | {row['clears']} | {old} |")
    return "\n".join(lines)


@contextlib.contextmanager
def _workdir(keep: bool):
    if keep:
        yield tempfile.mkdtemp(prefix="delivery-")
    else:
        with tempfile.TemporaryDirectory(prefix="delivery-") as path:
            yield path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.delivery", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=2.0, help="notifications per second per instance")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--wirings", default=",".join(WIRINGS))
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs, outputs.txt)")
    args = parser.parse_args(argv)
    if args.backend:
        os.environ["BENCH_BACKEND"] = args.backend
    os.environ.update(GREEN_API_ENV)  # the in-process W1 sweep's timings, as the subprocesses get them
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # the W1 sweep's run logs would bury the table
    scenarios = [s for s in args.scenarios.split(",") if s]
    wirings = [w for w in args.wirings.split(",") if w]
    timing = Timing(scale=args.scale, rate_per_second=args.rate)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with emulator(clear_window=3, count_refresh=1) as emulator_url, prefect_handle() as prefect, \
            _workdir(args.keep) as workdir, \
            temporary_settings(updates={PREFECT_API_URL: prefect.api_url}):
        results = asyncio.run(run_matrix(emulator_url, prefect, timing, scenarios, wirings, Path(workdir)))
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    name = f"delivery-{backend()}.json" if args.scale == 1 else f"delivery-{backend()}-scale{args.scale:g}.json"
    (out / name).write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"written: bench/out/{name}" + (f"; logs in {workdir}" if args.keep else ""))


if __name__ == "__main__":
    main()
