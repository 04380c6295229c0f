"""Writes bench/RESULTS.md from bench/out/*.json, with the machine described."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).parent / "out"
RESULTS = Path(__file__).parent / "RESULTS.md"


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    mem_kb = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")), 0)
    prefect = subprocess.run([sys.executable, "-c", "import prefect; print(prefect.__version__)"], capture_output=True, text=True).stdout.strip()
    return (f"{os.cpu_count()} CPU ({cpu}), {mem_kb / 1024 / 1024:.0f} GiB RAM, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, Prefect {prefect or '?'}; Prefect server: `prefect server start` on SQLite; "
            "emulator: its own process on loopback, GREEN-API's timing (60 s clear window, 10 s count refresh, 5 s receiveTimeout long-poll)")


def _load(name: str):
    path = OUT / name
    return json.loads(path.read_text()) if path.exists() else None


def main() -> None:
    lines = ["# Benchmark results", "", f"Machine: {_machine()}.", "", "Regenerate: `make bench` (about 15 minutes).", ""]
    lines += ["## 1. Fleet sweep (5% affected, 2 in 5 of them cleared 40 s before, so leftTime 20 s applies)", "",
              "| instances | affected | concurrency | baseline wall | product wall | ratio (target ≤ 1.5) | calls/healthy (≤ 2) | calls/affected max (mean) | clears in a known window | peak memory baseline / product (≤ 600 MB) | Prefect task runs | verified |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for size in (100, 1000):
        r = _load(f"fleet-{size}.json")
        if not r:
            continue
        b, p = r["baseline"], r["product"]
        lines.append(
            f"| {r['size']} | {r['affected']} | {r['max_concurrency']} | {b['wall_seconds']:.1f} s | {p['wall_seconds']:.1f} s | {r['wall_ratio']:.2f} | "
            f"{p['calls_per_healthy_max']} (baseline {b['calls_per_healthy_max']}) | {p['calls_per_affected_max']} ({p['calls_per_affected_mean']}) | "
            f"{p['clear_inside_known_window']} | {b['peak_rss_mb']:.0f} / {p['peak_rss_mb']:.0f} MB | {p['task_runs_created']} | {p['verified']}/{p['affected']} |"
        )
    lines += ["", "Affected instances on the happy path cost 5 calls (GetStateInstance, GetSettings, ClearWebhooksQueue, "
              "GetWebhooksCount, ReceiveNotification); those inside a recent clear's window cost one more: the clear that "
              "answers leftTime (a window no client could know before asking).", ""]
    w = _load("webhook-latency.json")
    if w:
        lines += ["## 2. Webhook to clear", "",
                  "The documented local setup: `prefect server start` (SQLite) and `greenapi-migrate serve`. POST on the receiver "
                  "-> the receiver starts the handle-account-change run (`direct` dispatch, the default in `serve`) and emits its event "
                  "-> serve's warm runner claims the run within 0.25 s and runs it in its own process -> clear seen by the emulator. "
                  "One event a second.", "",
                  "| events | cleared | p50 (target ≤ 2 s) | p95 (target ≤ 5 s) | min | max | POST -> run created p50 / p95 | created -> started p50 / p95 | started -> clear p50 / p95 |",
                  "|---|---|---|---|---|---|---|---|---|",
                  f"| {w['events']} | {w['cleared']} | {w['p50_seconds']:.2f} s | {w['p95_seconds']:.2f} s | {w['min_seconds']:.2f} s | {w['max_seconds']:.2f} s | "
                  + " | ".join(f"{w['stages_p50_seconds'].get(k, 0):.2f} / {w['stages_p95_seconds'].get(k, 0):.2f} s"
                               for k in ("post_to_run_created", "run_created_to_started", "run_started_to_clear")) + " |", ""]
    s = _load("single-run.json")
    if s:
        lines += ["## 3. Single run", "", "`greenapi-migrate run --reason number_blocked --json` against a running local server, 12 queued notifications.", "",
                  "| run | exit | wall | API calls | waiting on GREEN-API (waits + calls) | Prefect and process start-up |", "|---|---|---|---|---|---|"]
        for index, run in enumerate(s, start=1):
            lines.append(f"| {index} | {run['exit_status']} | {run['wall_seconds']:.2f} s | {run['api_calls']} | {run['waiting_on_greenapi_seconds']:.2f} s | {run['prefect_and_startup_seconds']:.2f} s |")
        lines.append("")
    notes = Path(__file__).parent / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text()]
    RESULTS.write_text("\n".join(lines) + "\n")
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
