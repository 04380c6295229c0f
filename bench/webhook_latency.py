"""Benchmark 2: from a POST on the receiver to the emulator seeing the clear, with the documented local setup:
`prefect server start` (BENCH_BACKEND or --backend: sqlite or postgres) + `greenapi-migrate serve` (the
deployments served by Prefect's runner, a Prefect task worker, the receiver handing each report to it).

    python -m bench.webhook_latency [--backend sqlite|postgres] [--events N]

24 events, one a second (BENCH_SMALL=1: 4). Ready when the receiver listens, the deployments are served and
the task worker is registered on the Prefect server. Per event, where the time went, read through Prefect's
client: POST -> task run created (the receiver's hand-over) -> flow run started (handle-account-change,
nested in the task worker) -> the emulator's first clear of that instance. Writes
bench/out/webhook-latency-<backend>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import time
from pathlib import Path

import httpx

from bench.infra import backend, emulator, percentile, prefect_server
from bench.servers import BIN, ROOT, free_port

EVENTS = 24
SMALL_EVENTS = 4
SPACING_SECONDS = 1.0
TARGETS = {"postgres": {"p50": 1.0, "p95": 2.0}, "sqlite": {"p50": 2.0, "p95": 5.0}}
STAGES = ("post_to_task_run_created", "task_run_created_to_flow_run_started", "flow_run_started_to_clear")


def run(events: int, dispatch: str = "background") -> dict:
    from bench.fleet import register

    secret = secrets.token_hex(32)
    instances = [{"id_instance": 3_200_000_000 + i, "api_token": secrets.token_hex(25), "notifications": 3} for i in range(events)]
    with emulator() as emulator_url, prefect_server() as env:
        httpx.post(f"{emulator_url}/_emulator/instances", json=instances, timeout=30).raise_for_status()
        register(env, emulator_url, instances, {i["id_instance"]: "" for i in instances})
        port = free_port()
        serve_env = {**env, "GREEN_API_RECEIVER_SECRET": secret, "GREEN_API_RECEIVER_PORT": str(port)}
        log = open(Path(env["PREFECT_HOME"]) / "serve.log", "w")
        launched = time.monotonic()
        served = subprocess.Popen([str(BIN / "greenapi-migrate"), "serve", "--dispatch", dispatch], env=serve_env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            _wait_ready(env, Path(log.name), served)
            ready_seconds = time.monotonic() - launched
            sent: dict[int, float] = {}
            task_run_ids: dict[int, str] = {}
            for instance in instances:
                started = time.time()
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/events/queue-reset",
                    json={"idInstance": instance["id_instance"], "reason": "number_blocked", "deliveryId": f"bench-{instance['id_instance']}"},
                    headers={"Authorization": f"Bearer {secret}"}, timeout=30,
                )
                answer.raise_for_status()
                sent[instance["id_instance"]] = started
                if answer.json().get("taskRunId"):
                    task_run_ids[instance["id_instance"]] = answer.json()["taskRunId"]
                time.sleep(SPACING_SECONDS)
            first_clear = _first_clears(emulator_url, sent, deadline=time.monotonic() + 120)
            stages = _run_with_prefect(env, _stages(sent, task_run_ids, first_clear))
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
    latencies = [first_clear[i] - sent[i] for i in sent if i in first_clear]
    return {
        "backend": backend(), "dispatch": dispatch, "targets_seconds": TARGETS.get(backend()),
        "events": len(sent), "handed_over": len(task_run_ids), "cleared": len(latencies),
        "p50_seconds": round(percentile(latencies, 0.5), 3) if latencies else None,
        "p95_seconds": round(percentile(latencies, 0.95), 3) if latencies else None,
        "max_seconds": round(max(latencies), 3) if latencies else None,
        "min_seconds": round(min(latencies), 3) if latencies else None,
        "serve_ready_seconds": round(ready_seconds, 1), "serve_stop_seconds": round(stop_seconds, 1),
        "stages_counted": {name: len(values) for name, values in stages.items()},
        "stages_p50_seconds": {name: round(percentile(values, 0.5), 3) for name, values in stages.items() if values},
        "stages_p95_seconds": {name: round(percentile(values, 0.95), 3) for name, values in stages.items() if values},
    }


def _run_with_prefect(env: dict, coroutine):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
        return asyncio.run(coroutine)


async def _task_worker_up() -> bool:
    """A task worker serving the receiver's hand-over task is subscribed on the Prefect server."""
    from prefect.client.orchestration import get_client

    from flows.reported import handle_reported_change

    async with get_client() as client:
        response = await client.request("POST", "/task_workers/filter",
                                        json={"task_worker_filter": {"task_keys": [handle_reported_change.task_key]}})
        return bool(response.json())


def _wait_ready(env: dict, log: Path, served: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served.poll() is not None:
            raise RuntimeError(f"serve exited with {served.returncode}:\n{log.read_text()[-3000:]}")
        text = log.read_text()
        if ("receiver listening on" in text and "Your deployments are being served" in text
                and _run_with_prefect(env, _task_worker_up())):
            return
        time.sleep(0.5)
    raise RuntimeError(f"serve did not come up (receiver, deployments, task worker):\n{log.read_text()[-3000:]}")


async def _stages(sent: dict[int, float], task_run_ids: dict[int, str], first_clear: dict[int, float]) -> dict[str, list[float]]:
    """Where each event's time went, from the task runs the receiver named and the handle-account-change flow
    runs tagged receiver (Prefect's client), and the emulator's first clear."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterTags, TaskRunFilter, TaskRunFilterId

    async with get_client() as client:
        task_runs = await client.read_task_runs(
            task_run_filter=TaskRunFilter(id=TaskRunFilterId(any_=[UUID(t) for t in task_run_ids.values()])), limit=len(task_run_ids) or 1)
        flow_runs = []
        while True:
            page = await client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["handle-account-change"])),
                                               flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["receiver"])),
                                               limit=200, offset=len(flow_runs))
            flow_runs += page
            if len(page) < 200:
                break
    task_created = {tr.id: tr.created.timestamp() for tr in task_runs if tr.created}
    flow_started: dict[int, float] = {}
    for fr in flow_runs:
        instance = str(fr.parameters.get("instance", ""))
        if instance.isdigit() and int(instance) in sent and fr.start_time:
            flow_started[int(instance)] = min(flow_started.get(int(instance), float("inf")), fr.start_time.timestamp())
    stages: dict[str, list[float]] = {name: [] for name in STAGES}
    for iid, posted in sent.items():
        created = task_created.get(UUID(task_run_ids[iid])) if iid in task_run_ids else None
        if created is not None:
            stages["post_to_task_run_created"].append(created - posted)
        if created is not None and iid in flow_started:
            stages["task_run_created_to_flow_run_started"].append(flow_started[iid] - created)
        if iid in flow_started and iid in first_clear:
            stages["flow_run_started_to_clear"].append(first_clear[iid] - flow_started[iid])
    return stages


def _first_clears(emulator_url: str, sent: dict[int, float], deadline: float) -> dict[int, float]:
    """Each instance's first clearWebhooksQueue (the call log keeps the last 10,000 calls: a few hundred here)."""
    while True:
        calls = httpx.get(f"{emulator_url}/_emulator/calls", params={"method": "clearWebhooksQueue"}, timeout=30).json()
        first_clear: dict[int, float] = {}
        for call in calls:
            if call["instance"] in sent:
                first_clear.setdefault(call["instance"], call["started_at"])
        if len(first_clear) >= len(sent) or time.monotonic() > deadline:
            return first_clear
        time.sleep(1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook_latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=sorted(TARGETS), help="the Prefect server's database (default: BENCH_BACKEND or sqlite)")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--dispatch", choices=["background", "trigger"], default="background",
                        help="the receiver's hand-over: a task worker (serve's default), or the deployment trigger and Prefect's runner")
    args = parser.parse_args(argv)
    if args.backend:
        os.environ["BENCH_BACKEND"] = args.backend
    events = args.events or (SMALL_EVENTS if os.environ.get("BENCH_SMALL") else EVENTS)
    result = run(events, args.dispatch)
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    name = f"webhook-latency-{backend()}.json" if events == EVENTS else f"webhook-latency-{events}-{backend()}.json"
    if args.dispatch != "background":
        name = name.replace(".json", f"-{args.dispatch}.json")
    (out / name).write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
