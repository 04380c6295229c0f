"""Load: ``greenapi-migrate receiver`` as a subprocess, 50 concurrent clients, 550 POSTs, real Prefect.

A mix of new deliveries (queue-reset requests and blocked webhooks) and re-deliveries of them, sent
in a shuffled order so that copies of one delivery are often in flight at the same time. Every
request must get a 2xx; every distinct delivery exactly one event in Prefect's database, re-deliveries
none. The measured numbers are printed (``-s``); on 2 cores, loopback, sqlite, they were
550 requests in 2.4-2.8 s (~200-230 req/s), latency p50 80-150 ms, p95 575-670 ms, max ~1.3 s with
50 in flight (every emit waits for Prefect's acknowledgement, one at a time, so latency grows with
the queue). The bound asserted below is generous.

The helpers here (start a receiver subprocess, read events from Prefect's database, SQLite or
PostgreSQL, search that database for the secret) are shared with test_receiver_restart.py.
"""

from __future__ import annotations

import asyncio
import os
import queue
import random
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.helpers import register_instances

pytestmark = pytest.mark.e2e

CLI = str(Path(sys.executable).with_name("greenapi-migrate"))
CANARY = "CANARYload" + "10ad" * 8

REQUESTS_DISTINCT, REQUESTS_DUPLICATE, CONCURRENCY = 420, 130, 50


# ------------------------------------------------------------------------------ shared helpers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def receiver_env(prefect_server, home: Path, secret: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GREEN_API_", "PREFECT_"))}
    env.update(PREFECT_API_URL=prefect_server.api_url, PREFECT_HOME=str(home), GREEN_API_RECEIVER_SECRET=secret, **extra)
    return env


@dataclass
class Receiver:
    """A ``greenapi-migrate receiver`` subprocess; its stdout and stderr are kept whole."""

    proc: subprocess.Popen
    url: str = ""
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, env: dict[str, str], cwd: Path, *args: str, timeout: float = 45) -> "Receiver":
        proc = subprocess.Popen([CLI, "receiver", *args], env=env, cwd=cwd, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        receiver = cls(proc)
        lines: queue.Queue[str] = queue.Queue()

        def pump(stream, into: list[str], tee: queue.Queue | None) -> None:
            for line in stream:
                into.append(line)
                if tee is not None:
                    tee.put(line)

        threading.Thread(target=pump, args=(proc.stdout, receiver.stdout, lines), daemon=True).start()
        threading.Thread(target=pump, args=(proc.stderr, receiver.stderr, None), daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                match = re.fullmatch(r"receiver listening on (http://\S+)\n", lines.get(timeout=0.2))
            except queue.Empty:
                continue
            if match:
                receiver.url = match.group(1)
                return receiver
        receiver.kill()
        raise AssertionError(f"the receiver did not start: stdout={receiver.stdout!r} stderr={''.join(receiver.stderr)[-2000:]!r}")

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM and wait; the exit status (the output threads get a moment to drain)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("the receiver did not stop within 30 s of SIGTERM") from None
        time.sleep(0.2)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    @property
    def output(self) -> str:
        return "".join(self.stdout) + "".join(self.stderr)


def events_in_prefect(sqlite_path: str, resource_ids: list[str]) -> list[tuple[str, str, str]]:
    """(event id, event name, resource id) of every event on these resources in Prefect's database
    (`sqlite_path`: the SQLite file, or on the postgres back-end the database URL)."""
    rows: list[tuple[str, str, str]] = []
    if sqlite_path.startswith("postgresql"):
        import psycopg

        from tests.servers import psycopg_dsn

        with psycopg.connect(psycopg_dsn(sqlite_path), connect_timeout=10) as db:
            rows = db.execute("SELECT id, event, resource_id FROM events WHERE resource_id = ANY(%s)", (resource_ids,)).fetchall()
        return [(str(uuid.UUID(str(i))), e, r) for i, e, r in rows]
    with sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True, timeout=10) as db:
        for start in range(0, len(resource_ids), 500):
            chunk = resource_ids[start : start + 500]
            rows += db.execute(f"SELECT id, event, resource_id FROM events WHERE resource_id IN ({','.join('?' * len(chunk))})", chunk).fetchall()
    return [(str(uuid.UUID(str(i))), e, r) for i, e, r in rows]


def wait_for_events(sqlite_path: str, resource_ids: list[str], expected_ids: set[str], deadline_s: float = 40) -> list[tuple[str, str, str]]:
    """Poll Prefect's database (it persists events in batches, about every 5 s) until every expected id is there."""
    deadline = time.monotonic() + deadline_s
    while True:
        rows = events_in_prefect(sqlite_path, resource_ids)
        if {row[0] for row in rows} >= expected_ids or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def secret_in_prefect_db(sqlite_path: str, secret: str) -> list[str]:
    """Where the secret appears: any row of any table, or the raw bytes of the database, -wal and -shm files
    (on the postgres back-end, `sqlite_path` is the database URL: any row of any table)."""
    found = []
    if sqlite_path.startswith("postgresql"):
        from tests.servers import database_tables_text

        tables = database_tables_text(sqlite_path)
        assert "events" in tables, sorted(tables)
        return [table for table, text in tables.items() if secret in text]
    with sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True, timeout=10) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert "events" in tables, tables
        for table in tables:
            if any(secret in repr(row) for row in db.execute(f'SELECT * FROM "{table}"')):
                found.append(table)
    base = Path(sqlite_path)
    for path in base.parent.glob(base.name + "*"):
        if secret.encode() in path.read_bytes():
            found.append(path.name)
    return found


# ------------------------------------------------------------------------------ the load test


@dataclass
class Delivery:
    index: int
    path: str
    body: dict
    resource: str


def _deliveries(base_id: int, n: int) -> list[Delivery]:
    out = []
    for i in range(n):
        id_instance = base_id + i % 20
        if i % 3 == 0:
            body = {"typeWebhook": "stateInstanceChanged", "instanceData": {"idInstance": id_instance, "wid": f"7123{i:07d}@c.us", "typeInstance": "whatsapp"}, "timestamp": 1_700_000_000 + i, "stateInstance": "blocked"}
            out.append(Delivery(i, "/webhooks/greenapi", body, f"greenapi.instance.{id_instance}"))
        else:
            body = {"idInstance": id_instance, "reason": ("number_blocked", "account_changed")[i % 2], "source": "load", "deliveryId": f"load-{i}"}
            out.append(Delivery(i, "/events/queue-reset", body, f"greenapi.instance.{id_instance}"))
    return out


@dataclass
class Result:
    delivery: Delivery
    status: int
    body: dict
    seconds: float
    text: str


async def _blast(url: str, work: list[Delivery], concurrency: int) -> tuple[list[Result], list[str], float]:
    pending: asyncio.Queue[Delivery] = asyncio.Queue()
    for item in work:
        pending.put_nowait(item)
    results: list[Result] = []
    errors: list[str] = []
    headers = {"Authorization": f"Bearer {CANARY}"}

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=httpx.Limits(max_connections=1)) as http:
            while True:
                try:
                    item = pending.get_nowait()
                except asyncio.QueueEmpty:
                    return
                started = time.perf_counter()
                try:
                    response = await http.post(item.path, json=item.body)
                except httpx.HTTPError as exc:
                    errors.append(f"{item.index}: {type(exc).__name__}")
                    continue
                body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
                results.append(Result(item, response.status_code, body, time.perf_counter() - started, response.text + str(response.headers)))

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return results, errors, time.perf_counter() - started


def test_550_posts_from_50_clients_every_one_2xx_and_one_event_per_delivery(prefect_server, tmp_path):
    distinct = _deliveries(7_920_000_001, REQUESTS_DISTINCT)
    rng = random.Random(20240611)
    work = distinct + [rng.choice(distinct) for _ in range(REQUESTS_DUPLICATE)]
    rng.shuffle(work)
    resources = sorted({d.resource for d in distinct})

    asyncio.run(register_instances(sorted({int(d.resource.rsplit(".", 1)[1]) for d in distinct})))
    receiver = Receiver.start(receiver_env(prefect_server, tmp_path / "home", CANARY), tmp_path, "--port", "0")
    try:
        results, errors, wall = asyncio.run(_blast(receiver.url, work, CONCURRENCY))
    finally:
        code = receiver.terminate()

    latencies = sorted(r.seconds for r in results)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    print(
        f"\nreceiver load: {len(work)} POSTs ({REQUESTS_DISTINCT} distinct, {REQUESTS_DUPLICATE} re-deliveries), {CONCURRENCY} concurrent clients, "
        f"wall {wall:.2f} s, {len(work) / wall:.0f} req/s, latency p50 {q[49] * 1000:.0f} ms, p95 {q[94] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms"
    )

    assert errors == [], errors[:10]
    assert len(results) == len(work)
    bad = [(r.delivery.index, r.status, r.text[:200]) for r in results if not 200 <= r.status < 300]
    assert bad == [], bad[:10]

    by_delivery: dict[int, list[Result]] = {}
    for r in results:
        by_delivery.setdefault(r.delivery.index, []).append(r)
    assert set(by_delivery) == {d.index for d in distinct}
    accepted_ids: dict[str, Delivery] = {}
    for index, copies in by_delivery.items():
        assert all(r.status == (200 if r.delivery.path == "/webhooks/greenapi" else 202) for r in copies), [(r.status, r.body) for r in copies]
        ids = {r.body["eventId"] for r in copies}
        assert len(ids) == 1, (index, ids)
        assert sorted(r.body["duplicate"] for r in copies) == [False] + [True] * (len(copies) - 1), (index, [r.body for r in copies])
        accepted_ids[ids.pop()] = copies[0].delivery
    assert len(accepted_ids) == REQUESTS_DISTINCT

    rows = wait_for_events(prefect_server.sqlite_path, resources, set(accepted_ids))
    found = [row[0] for row in rows]
    assert len(found) == len(set(found)), "an event was stored twice"
    assert set(found) == set(accepted_ids), f"missing {len(set(accepted_ids) - set(found))}, unexpected {len(set(found) - set(accepted_ids))}"
    for event_id, name, resource in rows:
        delivery = accepted_ids[event_id]
        assert resource == delivery.resource
        expected = "greenapi.instance.account-changed" if delivery.body.get("reason") == "account_changed" else "greenapi.instance.number-blocked"
        assert name == expected

    assert code == 0, receiver.output[-2000:]
    assert receiver.stdout[-1] == "receiver stopped\n", receiver.stdout[-3:]
    assert CANARY not in receiver.output
    assert not [r for r in results if CANARY in r.text]
    assert secret_in_prefect_db(prefect_server.sqlite_path, CANARY) == []
