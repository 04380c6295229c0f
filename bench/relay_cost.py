"""Benchmark: what the relay costs, side by side with GREEN-API (the emulator) delivering straight to the app, in
one run (issue 20, item 6). The emulator in its own process, `prefect server start` (SQLite, or BENCH_BACKEND),
the relay a `greenapi-migrate receiver --forward-to` subprocess; the two app stubs in this process.

    python -m bench.relay_cost [--backend sqlite|postgres] [--instances 50] [--rate 10] [--seconds 20]

Phases, each mode on its own ``--instances`` instances of the one emulator:
1. **latency**: both modes at once, 2 notifications/s per instance, in the steady state (from 3 s after the
   traffic began: the first notification after a quiet spell waits for a GetSettings). Per delivery, the emulator's own round trip
   (delivery log: ``finished_at - started_at`` of each attempt answered 200): direct, the app's answer; relayed,
   the relay's, which comes after the app's. Added latency = relayed percentile - direct percentile.
2. **sustained**: one mode at a time, ``--rate`` per instance across all instances (500/s with the defaults)
   for ``--seconds``; the delivered rate from the first enqueue to the last receipt, and every notification
   accounted for. The relay's Prefect calls and GetSettings calls per instance per second in this steady state,
   from its ``/health`` counters and the emulator's ``/_emulator/counts``.
3. **backlog**: one mode at a time, deliveries paused (webhookUrl empty), ``--backlog`` per instance queued,
   webhookUrl set: the drain rate until the app has them all. Target: relayed >= 0.9x direct. Twice: on every
   instance (this machine's CPU is the bound, shared by the emulator, the app stubs and the relay) and on 5
   (GREEN-API's 20 ms per webhook per instance is the bound, as in production).
4. **two relays behind one address** (scenarios.proxy round robin; a task worker for account changes):
   scenarios (ii) and (iv) of bench/delivery.py through them: nothing lost, nothing stale.

Writes bench/out/relay-cost-<backend>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import tempfile
import time
from pathlib import Path

import httpx

from bench.infra import backend, emulator, percentile
from bench.servers import ROOT, free_port
from scenarios.app_stub import AppStub
from scenarios.runner import (EMULATOR_WINDOWS, GREEN_API_ENV, WEBHOOK_PATH, PrefectHandle, Stack, Timing, cell_row,
                              run_scenario)

# The steady state starts once traffic has flowed this long: after a quiet spell the relay's knowledge of each
# account is too old to decide on, so an instance's first notification waits for one GetSettings (bench/NOTES.md).
STEADY_AFTER_SECONDS = 3.0
# Few enough instances that the emulator delivers at GREEN-API's own pace (50 a second each), not at this machine's.
BACKLOG_PACED_INSTANCES = 5
TARGETS = {"added_p50_ms": 5.0, "added_p99_ms": 20.0, "backlog_ratio": 0.9, "sustained_per_second": 500}


class Mode:
    def __init__(self, name: str, ids: list[int], app: AppStub, url: str, token: str) -> None:
        self.name, self.ids, self.app, self.url, self.token = name, ids, app, url, token
        self.enqueued: set[str] = set()

    def got(self) -> set[str]:
        return {r.id_message for r in self.app.receipts() if r.accepted and not r.is_state and r.id_instance in set(self.ids)}


async def _enqueue(http: httpx.AsyncClient, mode: Mode, count: int) -> None:
    answers = await asyncio.gather(*(http.post(f"/instances/{i}/notifications", json={"count": count}) for i in mode.ids))
    for answer in answers:
        answer.raise_for_status()
        mode.enqueued.update(item["idMessage"] for item in answer.json()["queued"])


async def _traffic(http: httpx.AsyncClient, modes: list[Mode], rate: float, seconds: float) -> float:
    """``rate`` per instance per second, each instance on its own schedule, the instances' spread evenly over a
    period (a burst to every instance at once would stall this process's app stubs and the emulator, and the
    latency measured would be the burst's); returns when it started."""
    began = time.time()
    period = 0.2 if rate * 0.2 >= 1 else 1 / rate
    per_period = max(1, round(rate * period))
    start = time.monotonic()
    every = [(mode, id_instance) for mode in modes for id_instance in mode.ids]

    async def one(index: int, mode: Mode, id_instance: int) -> None:
        at = start + period * index / len(every)
        while at < start + seconds:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            answer = await http.post(f"/instances/{id_instance}/notifications", json={"count": per_period})
            answer.raise_for_status()
            mode.enqueued.update(item["idMessage"] for item in answer.json()["queued"])
            at += period

    await asyncio.gather(*(one(index, mode, id_instance) for index, (mode, id_instance) in enumerate(every)))
    return began


async def _backlog(http: httpx.AsyncClient, modes: list[Mode], backlog: int, instances: int | None) -> dict:
    """Deliveries paused (webhookUrl empty), ``backlog`` queued on each of the first ``instances`` instances (all:
    None), webhookUrl set again: the drain rate until the app has them all, per mode, and relayed / direct."""
    out: dict = {}
    for whole in modes:
        mode = Mode(whole.name, whole.ids[:instances], whole.app, whole.url, whole.token)
        await asyncio.gather(*(http.patch(f"/instances/{i}", json={"webhook_url": ""}) for i in mode.ids))
        await _enqueue(http, mode, backlog)
        began = time.time()
        await asyncio.gather(*(http.patch(f"/instances/{i}", json={"webhook_url": mode.url}) for i in mode.ids))
        last = await _all_received([mode], 300)
        out[mode.name] = {"instances": len(mode.ids), "notifications": len(mode.enqueued), "lost": len(mode.enqueued - mode.got()),
                          "seconds": round(last - began, 2) if last else None,
                          "per_second": round(len(mode.enqueued) / (last - began), 1) if last else None}
    d, r = out["direct"]["per_second"], out["relayed"]["per_second"]
    out["ratio"] = round(r / d, 3) if d and r else None
    return out


async def _all_received(modes: list[Mode], timeout: float) -> float | None:
    """The time the last of them arrived, or None at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(m.enqueued <= m.got() for m in modes):
            return max((r.at for m in modes for r in m.app.receipts() if r.id_instance in set(m.ids)), default=time.time())
        await asyncio.sleep(0.1)
    return None


async def _deliveries(http: httpx.AsyncClient, after_seq: int) -> list[dict]:
    answer = await http.get("/deliveries", params={"after_seq": after_seq})
    answer.raise_for_status()
    return answer.json()


def _ms(values: list[float], share: float) -> float | None:
    return round(1000 * percentile(values, share), 2) if values else None


async def measure(emulator_url: str, prefect: PrefectHandle, workdir: Path, *, instances: int, rate: float, seconds: float,
                  backlog: int) -> dict:
    from bench.servers import register_instance
    from bench.servers import Receiver

    http = httpx.AsyncClient(base_url=emulator_url + "/_emulator", timeout=60,
                             limits=httpx.Limits(max_connections=100, max_keepalive_connections=100))
    (await http.put("/config", json={**EMULATOR_WINDOWS, "delivery_log_limit": 1_000_000, "redelivery_pause_seconds": 5})).raise_for_status()
    secret = secrets.token_hex(24)
    result: dict = {"backend": backend(), "instances_per_mode": instances, "targets": TARGETS}
    with AppStub(secrets.token_hex(16), name="direct") as direct_app, AppStub(secrets.token_hex(16), name="relayed") as relay_app:
        port = free_port()
        env = {**prefect.env, **GREEN_API_ENV, "GREEN_API_RECEIVER_SECRET": secret,
               "GREEN_API_RECEIVER_FORWARD_URL": relay_app.url, "GREEN_API_RECEIVER_FORWARD_TOKEN": relay_app.token,
               "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(workdir / "task-storage")}
        relay = Receiver.start(env, workdir, "--port", str(port), "--dispatch", "background", timeout=90)
        relay_url = f"http://127.0.0.1:{port}"
        try:
            base = 3_400_000_001 + secrets.randbelow(1000) * 1000
            direct = Mode("direct", [base + i for i in range(instances)], direct_app, direct_app.url, direct_app.token)
            relayed = Mode("relayed", [base + 500 + i for i in range(instances)], relay_app, relay_url + WEBHOOK_PATH, secret)
            modes = [direct, relayed]
            seeds = [{"id_instance": i, "api_token": secrets.token_hex(25), "wid": f"7900{i}@c.us", "webhook_url": m.url,
                      "settings": {"webhookUrlToken": m.token}} for m in modes for i in m.ids]
            (await http.post("/instances", json=seeds)).raise_for_status()
            tokens = {s["id_instance"]: s["api_token"] for s in seeds}
            from instances import GreenApiInstance

            await GreenApiInstance.aregister_type_and_schema()
            await asyncio.gather(*(register_instance(i, tokens[i], api_url=emulator_url, name=f"cost-{i}") for i in relayed.ids))
            # Warm up: one notification each, every relay cache filled.
            await _enqueue(http, direct, 1)
            await _enqueue(http, relayed, 1)
            if await _all_received(modes, 60) is None:
                raise RuntimeError(f"warm-up not delivered:\n{relay.output[-3000:]}")

            # 1. latency, side by side
            seq = max((d["seq"] for d in await _deliveries(http, 0)), default=0)
            began = await _traffic(http, modes, 2, seconds + STEADY_AFTER_SECONDS)
            await _all_received(modes, 60)
            attempts = [d for d in await _deliveries(http, seq) if d["started_at"] >= began + STEADY_AFTER_SECONDS]
            round_trips = {m.name: [d["finished_at"] - d["started_at"] for d in attempts
                                    if d["status"] == 200 and d["instance"] in set(m.ids)] for m in modes}
            lat = {name: {"count": len(v), "p50_ms": _ms(v, 0.5), "p99_ms": _ms(v, 0.99), "max_ms": _ms(v, 1.0)}
                   for name, v in round_trips.items()}
            lat["added_p50_ms"] = round(lat["relayed"]["p50_ms"] - lat["direct"]["p50_ms"], 2)
            lat["added_p99_ms"] = round(lat["relayed"]["p99_ms"] - lat["direct"]["p99_ms"], 2)
            result["latency"] = lat

            # 2. sustained, one mode at a time
            result["sustained"] = {}
            for mode in modes:
                before_health = httpx.get(relay_url + "/health", timeout=10).json().get("relay") or {}
                before_counts = (await http.get("/counts")).json()
                mode.enqueued.clear()
                began = await _traffic(http, [mode], rate, seconds)
                last = await _all_received([mode], 120)
                after_health = httpx.get(relay_url + "/health", timeout=10).json().get("relay") or {}
                after_counts = (await http.get("/counts")).json()
                got = mode.got()
                row = {"enqueued": len(mode.enqueued), "lost": len(mode.enqueued - got),
                       "delivered_per_second": round(len(mode.enqueued) / (last - began), 1) if last else None,
                       "seconds": round(last - began, 2) if last else None}
                if mode is relayed:
                    span = (last or time.time()) - began
                    gets = sum(after_counts["answered_by_instance_method"].get(str(i), {}).get("getSettings", 0)
                               - before_counts["answered_by_instance_method"].get(str(i), {}).get("getSettings", 0) for i in mode.ids)
                    row["get_settings_per_instance_per_second"] = round(gets / len(mode.ids) / span, 4)
                    row["prefect_calls_per_instance_per_second"] = round(
                        (after_health.get("prefect_calls", 0) - before_health.get("prefect_calls", 0)) / len(mode.ids) / span, 4)
                    row["relay_counters_delta"] = {k: after_health.get(k, 0) - before_health.get(k, 0) for k in after_health}
                result["sustained"][mode.name] = row

            # 3. backlog drain, one mode at a time: on every instance (this machine's two cores are the bound), and on
            # BACKLOG_PACED_INSTANCES (GREEN-API's 20 ms per webhook per instance is the bound, as it is in production)
            result["backlog"] = await _backlog(http, modes, backlog, None)
            result["backlog_paced"] = await _backlog(http, modes, backlog, BACKLOG_PACED_INSTANCES)
            result["relay_health"] = httpx.get(relay_url + "/health", timeout=10).json()
            result["relay_output_tail"] = [line for line in relay.output.splitlines() if "WARNING" in line or "ERROR" in line][-10:]
        finally:
            with contextlib.suppress(AssertionError):
                relay.terminate(timeout=20)
            await http.aclose()

    # 4. two relays behind one round-robin address
    timing = Timing(scale=0.1, rate_per_second=5.0)
    (httpx.put(f"{emulator_url}/_emulator/config", json={"redelivery_pause_seconds": timing.redelivery_pause}, timeout=10)).raise_for_status()
    result["two_relays"] = {"cells": []}
    with Stack(emulator_url=emulator_url, prefect=prefect, workdir=workdir / "two-relays", wirings=("W3",), timing=timing,
               relays=2) as stack:
        await stack.task_worker_ready()
        for scenario in ("ii", "iv"):
            cells, notes = await run_scenario(stack, scenario)
            result["two_relays"]["cells"].append({**cell_row(cells["W3"]), "notes": notes})
        result["two_relays"]["proxy_sent"] = stack.proxy.sent
        result["two_relays"]["relay_health"] = stack.relay_health()
    return result


def table(result: dict) -> str:
    """The RESULTS.md table of one run (bench/report.py, section 5)."""
    lat, sus, back, paced = result["latency"], result["sustained"], result["backlog"], result["backlog_paced"]

    def trip(mode: str) -> str:
        return f"{lat[mode]['p50_ms']} / {lat[mode]['p99_ms']} ms"

    def drain(row: dict, mode: str) -> str:
        return f"{row[mode]['per_second']}/s ({row[mode]['instances']} instances, {row[mode]['lost']} lost)"

    relayed = sus["relayed"]
    lines = ["| measure | direct | through the relay | target |", "|---|---|---|---|",
             f"| delivery round trip p50 / p99 (steady state) | {trip('direct')} | {trip('relayed')} | added "
             f"**{lat['added_p50_ms']} / {lat['added_p99_ms']} ms** (≤ 5 / 20 ms) |",
             f"| sustained, {result['instances_per_mode']} instances | {sus['direct']['delivered_per_second']}/s, "
             f"{sus['direct']['lost']} lost | **{relayed['delivered_per_second']}/s**, {relayed['lost']} lost | ≥ 500/s, none lost |",
             f"| backlog drained, every instance (this machine's CPU the bound) | {drain(back, 'direct')} | "
             f"{drain(back, 'relayed')} | **{back['ratio']}x** (≥ 0.9x) |",
             f"| backlog drained, GREEN-API's pace the bound | {drain(paced, 'direct')} | {drain(paced, 'relayed')} | "
             f"**{paced['ratio']}x** (≥ 0.9x) |",
             f"| relay's Prefect calls / GetSettings calls per instance per second, sustained | — | "
             f"{relayed['prefect_calls_per_instance_per_second']} / {relayed['get_settings_per_instance_per_second']} | 0 / ≤ 1 |"]
    for cell in result.get("two_relays", {}).get("cells", []):
        lines.append(f"| two relays behind one round-robin address, scenario ({cell['scenario']}) | — | stale "
                     f"{cell['stale_got']}, fresh {cell['fresh_got']}/{cell['fresh_enqueued']}, lost {cell['fresh_lost']}, order "
                     f"{'kept' if cell['order_kept'] else 'NOT kept'}, held back {cell['old_never_got']} | nothing lost, nothing stale |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.relay_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"])
    parser.add_argument("--instances", type=int, default=50)
    parser.add_argument("--rate", type=float, default=10.0, help="per instance per second in the sustained phase")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--backlog", type=int, default=100, help="queued per instance in the backlog phase")
    args = parser.parse_args(argv)
    if args.backend:
        os.environ["BENCH_BACKEND"] = args.backend
    os.environ.update(GREEN_API_ENV)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from bench.delivery import prefect_handle

    with emulator(clear_window=3, count_refresh=1) as emulator_url, prefect_handle() as prefect, \
            tempfile.TemporaryDirectory(prefix="relay-cost-") as workdir, \
            temporary_settings(updates={PREFECT_API_URL: prefect.api_url}):
        result = asyncio.run(measure(emulator_url, prefect, Path(workdir), instances=args.instances, rate=args.rate,
                                     seconds=args.seconds, backlog=args.backlog))
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / f"relay-cost-{backend()}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
