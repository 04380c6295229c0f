"""Benchmark 2: from a POST on the receiver to the emulator seeing the clear, with the documented local setup:
`prefect server start` + `greenapi-migrate serve` (deployments, triggers, receiver)."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.infra import BIN, ROOT, emulator, free_port, percentile, prefect_server

EVENTS = 24
SPACING_SECONDS = 1.0


def main() -> None:
    secret = secrets.token_hex(32)
    instances = [{"id_instance": 3_200_000_000 + i, "api_token": secrets.token_hex(25), "notifications": 3} for i in range(EVENTS)]
    with emulator() as emulator_url, prefect_server() as env:
        httpx.post(f"{emulator_url}/_emulator/instances", json=instances, timeout=30).raise_for_status()
        from bench.fleet import register

        register(env, emulator_url, instances, {i["id_instance"]: "" for i in instances})
        port = free_port()
        serve_env = {**env, "GREEN_API_RECEIVER_SECRET": secret, "GREEN_API_RECEIVER_PORT": str(port)}
        log = open(Path(env["PREFECT_HOME"]) / "serve.log", "w")
        served = subprocess.Popen([str(BIN / "greenapi-migrate"), "serve"], env=serve_env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            _wait_ready(Path(log.name))
            sent = {}
            for instance in instances:
                started = time.time()
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/events/queue-reset",
                    json={"idInstance": instance["id_instance"], "reason": "number_blocked", "deliveryId": f"bench-{instance['id_instance']}"},
                    headers={"Authorization": f"Bearer {secret}"}, timeout=30,
                )
                answer.raise_for_status()
                sent[instance["id_instance"]] = started
                time.sleep(SPACING_SECONDS)
            latencies = _clear_latencies(emulator_url, sent, deadline=time.monotonic() + 120)
            stages = _stages(env["PREFECT_API_URL"], emulator_url, sent)
        finally:
            # Runs still verifying are cancelled, and release their locks, on the way out; timed, not assumed.
            stopping = time.monotonic()
            served.terminate()
            try:
                served.wait(timeout=120)
            except subprocess.TimeoutExpired:
                served.kill()
                served.wait()
            stop_seconds = time.monotonic() - stopping
            log.close()
    result = {
        "events": len(sent), "cleared": len(latencies),
        "p50_seconds": round(percentile(latencies, 0.5), 3), "p95_seconds": round(percentile(latencies, 0.95), 3),
        "max_seconds": round(max(latencies), 3), "min_seconds": round(min(latencies), 3),
        "serve_stop_seconds": round(stop_seconds, 1),
        "stages_p50_seconds": {name: round(percentile(values, 0.5), 3) for name, values in stages.items() if values},
        "stages_p95_seconds": {name: round(percentile(values, 0.95), 3) for name, values in stages.items() if values},
    }
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "webhook-latency.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


def _wait_ready(log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text()
        if "receiver listening on" in text and "Your deployments are being served" in text:
            time.sleep(2)  # the triggers' automations are created right after the deployments
            return
        time.sleep(0.5)
    raise RuntimeError(f"serve did not come up:\n{log.read_text()[-3000:]}")


def _stages(api_url: str, emulator_url: str, sent: dict[int, float]) -> dict[str, list[float]]:
    """Where each event's time went: POST -> run created -> run started -> clear."""
    from datetime import datetime

    runs = httpx.post(f"{api_url}/flow_runs/filter", json={"limit": 200}, timeout=30).json()
    calls = httpx.get(f"{emulator_url}/_emulator/calls", params={"method": "clearWebhooksQueue"}, timeout=30).json()
    first_clear: dict[int, float] = {}
    for call in calls:
        first_clear.setdefault(call["instance"], call["started_at"])
    stages: dict[str, list[float]] = {"post_to_run_created": [], "run_created_to_started": [], "run_started_to_clear": []}
    for run in runs:
        instance = run.get("parameters", {}).get("instance")
        if not (instance and instance.isdigit() and int(instance) in sent and run.get("start_time")):
            continue
        iid = int(instance)
        created = datetime.fromisoformat(run["created"]).timestamp()
        started = datetime.fromisoformat(run["start_time"]).timestamp()
        stages["post_to_run_created"].append(created - sent[iid])
        stages["run_created_to_started"].append(started - created)
        if iid in first_clear:
            stages["run_started_to_clear"].append(first_clear[iid] - started)
    return stages


def _clear_latencies(emulator_url: str, sent: dict[int, float], deadline: float) -> list[float]:
    while True:
        calls = httpx.get(f"{emulator_url}/_emulator/calls", params={"method": "clearWebhooksQueue"}, timeout=30).json()
        first_clear = {}
        for call in calls:
            first_clear.setdefault(call["instance"], call["started_at"])
        if len(first_clear) >= len(sent) or time.monotonic() > deadline:
            return [first_clear[i] - sent[i] for i in sent if i in first_clear]
        time.sleep(1)


if __name__ == "__main__":
    main()
