"""Writes bench/RESULTS.md from bench/out/*.json, with the machine and each row's back-end described.

`python -m bench.report`; with BENCH_SMALL=1 it reports the smoke-test files instead (fleet-20-*,
webhook-latency-4-*, single-run-small-*) into bench/out/RESULTS-small.md, leaving RESULTS.md alone.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).parent / "out"
RESULTS = Path(__file__).parent / "RESULTS.md"
BACKENDS = ("sqlite", "postgres")
BACKEND_NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
FLEET_RUNS = ((1000, "sqlite"), (1000, "postgres"), (5000, "postgres"), (10000, "postgres"))
IMPORT_RUNS = ((1000, "sqlite"), (1000, "postgres"), (10000, "postgres"))  # bench.import_instances --instances N
SMALL_FLEET, SMALL_EVENTS = 20, 4
FLEET_RATIO_TARGET = {"postgres": 1.2, "sqlite": 1.5}
WEBHOOK_TARGETS = {"postgres": (1.0, 2.0), "sqlite": (2.0, 5.0)}
MAKE_BENCH_MINUTES = 45


def _postgres_version() -> str:
    from bench.servers import PG_CTL

    try:
        done = subprocess.run([str(PG_CTL), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "PostgreSQL"
    return done.stdout.strip().replace("pg_ctl (PostgreSQL)", "PostgreSQL") or "PostgreSQL"


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    mem_kb = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")), 0)
    prefect = subprocess.run([sys.executable, "-c", "import prefect; print(prefect.__version__)"], capture_output=True, text=True).stdout.strip()
    return (f"{os.cpu_count()} CPU ({cpu}), {mem_kb / 1024 / 1024:.0f} GiB RAM, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, Prefect {prefect or '?'}. Everything on this one machine, on loopback: the "
            "emulator (its own process, GREEN-API's timing: 60 s clear window, 10 s count refresh, 5 s receiveTimeout long-poll), "
            "`prefect server start` and the measured processes. Back-ends (the **back-end** column of every table): "
            "**SQLite**, a fresh database file in the server's PREFECT_HOME; "
            f"**PostgreSQL**, {_postgres_version()} (Debian's server binaries), a fresh database in a throwaway cluster "
            "started for the benchmark (bench/servers.py: pytest-postgresql's executor; fsync and synchronous_commit off)")


def _load(name: str):
    path = OUT / name
    return json.loads(path.read_text()) if path.exists() else None


def _mb(value) -> str:
    return f"{value:.0f}" if isinstance(value, (int, float)) else "?"


def _fleet_rows(small: bool) -> list[str]:
    runs = [(SMALL_FLEET, b) for b in BACKENDS] if small else FLEET_RUNS
    rows = []
    for size, backend in runs:
        r = _load(f"fleet-{size}-{backend}.json")
        if not r:
            rows.append(f"| {BACKEND_NAMES[backend]} | {size} | not run | | | | | | | | | | | |")
            continue
        if size >= 10000:
            target = f"≤ {FLEET_RATIO_TARGET[backend]}, ≤ 300 MB"
        elif size >= 5000:
            target = "completes; none not checked that answered"
        else:
            target = f"≤ {FLEET_RATIO_TARGET[backend]}"
        for rnd in r["rounds"]:
            b, p = rnd["baseline"], rnd["product"]
            rows.append(
                f"| {BACKEND_NAMES[backend]} | {r['size']} | {r['affected']} | {b['wall_seconds']:.1f} s | {p['wall_seconds']:.1f} s, {p['state'].title()} | "
                f"**{rnd['wall_ratio']:.2f}** ({target}) | "
                f"{p['calls_per_healthy_max']} / {b['calls_per_healthy_max']} | "
                f"{p['calls_per_affected_max']} ({p['calls_per_affected_mean']}) / {b['calls_per_affected_max']} ({b['calls_per_affected_mean']}) | "
                f"{p['clear_inside_known_window']} / {b['clear_inside_known_window']} | "
                f"{p['not_checked']} ({p['not_checked_but_answered']}) / {b['not_checked']} ({b['not_checked_but_answered']}) | "
                f"{p['verified']}/{r['affected']} ({p['emulator_cleared']}) / {b['verified']}/{r['affected']} ({b['emulator_cleared']}) | "
                f"{_mb(p['peak_memory_mb'])} / {_mb(b['peak_memory_mb'])} MB | {p['api_calls']} / {b['api_calls']} | {p['task_runs_created']} |"
            )
    return rows


def _delivery_section() -> list[str]:
    """Section 5: what the app receives per scenario and wiring (bench.delivery) and the relay's cost (bench.relay_cost)."""
    from bench.delivery import table as delivery_table
    from bench.relay_cost import table as relay_table

    lines = ["## 5. What the app receives (delivery scenarios), and what the relay costs", "",
             "`python -m bench.delivery --scale 1`: the emulator delivering webhooks as GREEN-API does (FIFO, 20 ms per "
             "webhook, 60 s redelivery pause), 2 notifications/s per instance of the account on it throughout, the four "
             "wirings of a scenario side by side on their own instances. Definitions: `scenarios/measure.py`. Targets "
             "with the relay (W3): 0 stale in (i)-(v), 0 fresh lost in (iii)-(v), order kept. *Clears*: ClearWebhooksQueue "
             "calls GREEN-API answered on the instance.", ""]
    lines += _per_backend("delivery", delivery_table)
    lines += ["`python -m bench.relay_cost`: one run, the emulator delivering straight to an app stub and through the "
              "relay side by side (50 instances each); round trips from the emulator's delivery log; added = relayed - "
              "direct, per percentile.", ""]
    return lines + _per_backend("relay-cost", relay_table)


def _per_backend(name: str, table) -> list[str]:
    """``table`` of bench/out/<name>-<backend>.json, for each back-end that has one."""
    lines = []
    for backend in BACKENDS:
        found = _load(f"{name}-{backend}.json")
        if found:
            lines += [f"{BACKEND_NAMES[backend]}:", "", table(found), ""]
    return lines


def _worker_pull_section(small: bool) -> list[str]:
    """Section 6: a scheduled sweep's first GREEN-API call on a worker that pulls the code (bench.worker_pull)."""
    from bench.worker_pull import LEAD_SECONDS

    lines = ["## 6. A worker that pulls the code", "",
             "`python -m bench.worker_pull`: a worker from a fresh virtualenv with only prefect (docs/deploy.md), Prefect's "
             f"default polling; each sweep-instances run (one instance) created {LEAD_SECONDS} s before its scheduled time, one after the "
             "other. Each run clones the branch and runs `pip install -r requirements.lock` (the pull steps) before the flow; "
             "the first on the fresh worker installs the lock. A time below zero: Prefect's worker submits a run up to its "
             "`--prefetch-seconds` (10 by default) before the scheduled time, so a warm worker can be Running before it.", "",
             "| back-end | run | worker | scheduled -> first GREEN-API call | scheduled -> Running | pull steps | Running -> first call | state |",
             "|---|---|---|---|---|---|---|---|"]
    for backend in BACKENDS:
        found = _load(f"worker-pull{'-small' if small else ''}-{backend}.json")
        for run in (found or {}).get("runs", []):
            cells = [run.get(k) for k in ("scheduled_to_first_call_seconds", "scheduled_to_running_seconds", "pull_steps_seconds",
                                          "running_to_first_call_seconds")]
            lines.append(f"| {BACKEND_NAMES[backend]} | {run['run']} | {run['worker']} | "
                         + " | ".join("—" if c is None else f"{c:.1f} s" for c in cells) + f" | {run['state'].title()} |")
    return lines + [""]


def main() -> None:
    small = bool(os.environ.get("BENCH_SMALL"))
    results = OUT / "RESULTS-small.md" if small else RESULTS
    title = "# Benchmark results" + (" (smoke test, BENCH_SMALL=1: not the benchmark's sizes)" if small else "")
    lines = [title, "", f"Machine: {_machine()}.", "",
             f"Regenerate: `make bench` (about {MAKE_BENCH_MINUTES} minutes on this machine; run it when nothing else is). "
             "Each script also runs alone: see bench/NOTES.md, \"Benchmark layout\".", ""]
    lines += ["## 1. Fleet sweep", "",
              "5% of the fleet affected (half blocked, half with another account than recorded), 2 in 5 of those cleared 40 s "
              "before by someone else, so GREEN-API's leftTime (20 s) applies; `max_concurrency` 20. One emulator and one Prefect "
              "server per row; the baseline (`bench/baseline.py`: plain asyncio + httpx, the same calls and bound) and the product "
              "(`sweep_instances(handle=\"inline\")` in its own process, Prefect's own client for every write) run one after the "
              "other against a freshly seeded emulator. Each cell is **product / baseline**.", "",
              "Counts come from the emulator's call counts (`GET /_emulator/counts`), which are not capped like its call log. "
              "*Not checked (answered)*: instances the run reported as could not be checked, and in brackets those of them whose "
              "two check calls the emulator had answered. *Verified (cleared)*: affected instances the run itself reports "
              "verified empty, and in brackets those the emulator shows cleared (a clear done, queue empty). Peak memory: each "
              "process's own peak resident set (`VmHWM` in /proc/<pid>/status, printed by the process itself).", "",
              "| back-end | instances | affected | baseline wall | product wall, state | ratio (target) | calls/healthy max | calls/affected max (mean) | clears in a known window | not checked (answered) | verified (cleared) | peak memory | API calls | Prefect task runs |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += _fleet_rows(small)
    lines += ["", "Affected instances on the happy path cost 5 calls (GetStateInstance, GetSettings, ClearWebhooksQueue, "
              "GetWebhooksCount, ReceiveNotification); those inside a recent clear's window cost one more: the clear that "
              "answers leftTime (a window no client could know before asking).", ""]
    lines += ["## 2. Webhook to clear", "",
              "The documented local setup: `prefect server start` and `greenapi-migrate serve` (the deployments served by "
              "Prefect's runner, a Prefect task worker in the same process, the receiver). Ready when the receiver listens, the "
              "deployments are served and the task worker is subscribed on the Prefect server. POST on the receiver -> the receiver "
              "hands the report to the task worker (`handle_reported_change.delay`: a task run) -> the worker runs "
              "handle-account-change nested in its own process (a flow run tagged `receiver`) -> the emulator sees the clear. "
              "One event a second. Stages per event read with Prefect's client (`read_task_runs`, `read_flow_runs`).", "",
              "| back-end | events | handed over | cleared | p50 (target) | p95 (target) | min | max | POST -> task run created p50 / p95 | task run created -> flow run started p50 / p95 | flow run started -> clear p50 / p95 | serve ready / stop |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for backend in BACKENDS:
        w = _load(f"webhook-latency-{SMALL_EVENTS}-{backend}.json" if small else f"webhook-latency-{backend}.json")
        p50_target, p95_target = WEBHOOK_TARGETS[backend]
        if not w or w.get("p50_seconds") is None:
            lines.append(f"| {BACKEND_NAMES[backend]} | {'no clear seen' if w else 'not run'} | | | ≤ {p50_target:g} s | ≤ {p95_target:g} s | | | | | | |")
            continue
        lines.append(
            f"| {BACKEND_NAMES[backend]} | {w['events']} | {w['handed_over']} | {w['cleared']} | **{w['p50_seconds']:.2f} s** (≤ {p50_target:g} s) | "
            f"**{w['p95_seconds']:.2f} s** (≤ {p95_target:g} s) | {w['min_seconds']:.2f} s | {w['max_seconds']:.2f} s | "
            + " | ".join(f"{w['stages_p50_seconds'].get(k, float('nan')):.2f} / {w['stages_p95_seconds'].get(k, float('nan')):.2f} s"
                         for k in ("post_to_task_run_created", "task_run_created_to_flow_run_started", "flow_run_started_to_clear"))
            + f" | {w['serve_ready_seconds']:.0f} s / {w['serve_stop_seconds']:.1f} s |")
    lines += ["", "## 3. Single run", "",
              "`greenapi-migrate run --reason number_blocked --json` against a running local server, 12 queued notifications.", "",
              "*Floor*: GREEN-API's own minimum, max(count refresh 10 s, receiveTimeout 5 s) + the other calls' times "
              "(the peek runs during the count-refresh wait).", "",
              "| back-end | run | exit | wall | floor | API calls | waiting on GREEN-API (the floor) | Prefect and process start-up |",
              "|---|---|---|---|---|---|---|---|"]
    for backend in BACKENDS:
        s = _load(f"single-run{'-small' if small else ''}-{backend}.json")
        for index, run in enumerate(s or [], start=1):
            floor = f"{run['floor_seconds']:.2f} s" if "floor_seconds" in run else "—"
            lines.append(f"| {BACKEND_NAMES[backend]} | {index} | {run['exit_status']} | {run['wall_seconds']:.2f} s | {floor} | {run['api_calls']} | "
                         f"{run['waiting_on_greenapi_seconds']:.2f} s | {run['prefect_and_startup_seconds']:.2f} s |")
    lines += ["", "## 4. Registering instances", "",
              "`greenapi-migrate instances import --json fleet.csv` (a subprocess, Prefect's client start-up included) on a fresh "
              "local server: all created, the same file again (all unchanged: nothing written), every token changed (all updated). "
              "Targets: 1,000 created within 30 s; 10,000 created within 3 minutes on PostgreSQL "
              "(`python -m bench.import_instances --backend postgres --instances 10000`).", "",
              "*Server CPU*: what the Prefect server's process used, per block, during that import (its one process "
              "writes every block: the floor, bench/NOTES.md session 8); *busy*: that CPU over the wall time; *load*: the "
              "machine's 1-minute load average before and after.", "",
              "| back-end | instances | import | wall | blocks/s | server CPU | busy | CLI CPU | load | created | updated | unchanged |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for instances, backend in IMPORT_RUNS:
        found = _load(f"import-instances-{instances}-{backend}.json")
        for row in (found or {}).get("rows", []):
            cpu = (f"{row['server_cpu_ms_per_block']:.1f} ms | {row['server_busy']:.0%} | {row['client_cpu_ms_per_block']:.1f} ms | "
                   f"{row['load_average_before']:.1f} -> {row['load_average']:.1f}") if "server_busy" in row else "— | — | — | —"
            lines.append(f"| {BACKEND_NAMES[backend]} | {found['count']} | {row['import']} | {row['seconds']:.2f} s | "
                         f"{row['blocks_per_second']:.1f} | {cpu} | {row['created']} | {row['updated']} | {row['unchanged']} |")
    lines += ["", *_delivery_section()]
    lines += _worker_pull_section(small)
    lines.append("")
    notes = Path(__file__).parent / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text()]
    results.write_text("\n".join(lines) + "\n")
    print(results.read_text())


if __name__ == "__main__":
    main()
