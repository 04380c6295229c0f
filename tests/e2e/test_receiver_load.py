"""Load: ``greenapi-migrate receiver`` as a subprocess, 50 concurrent clients, 200 POSTs, real Prefect.

A mix of new deliveries (queue-reset requests and blocked webhooks) and re-deliveries of them, sent
in a shuffled order so that copies of one delivery are often in flight at the same time. Every
request must get a 2xx; every distinct delivery exactly one event in Prefect's database, re-deliveries
none. The throughput and latency printed (``-s``) are for a look only: they are measured in
bench/webhook_latency.py.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from dataclasses import dataclass

import httpx
import pytest

from tests.helpers import register_instances, wait_for_stored_events, where_in_database
from bench.servers import Receiver, client_env

pytestmark = pytest.mark.e2e

CANARY = "CANARYload" + "10ad" * 8

REQUESTS_DISTINCT, REQUESTS_DUPLICATE, CONCURRENCY = 150, 50, 50


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


def test_200_posts_from_50_clients_every_one_2xx_and_one_event_per_delivery(prefect_server, tmp_path):
    distinct = _deliveries(7_920_000_001, REQUESTS_DISTINCT)
    rng = random.Random(20240611)
    work = distinct + [rng.choice(distinct) for _ in range(REQUESTS_DUPLICATE)]
    rng.shuffle(work)
    resources = sorted({d.resource for d in distinct})

    asyncio.run(register_instances(sorted({int(d.resource.rsplit(".", 1)[1]) for d in distinct})))
    receiver = Receiver.start(client_env(prefect_server.api_url, tmp_path / "home", GREEN_API_RECEIVER_SECRET=CANARY), tmp_path, "--port", "0")
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

    rows = wait_for_stored_events(prefect_server, resources, set(accepted_ids))
    found = [row[0] for row in rows]
    assert len(found) == len(set(found)), "an event was stored twice"
    assert set(found) == set(accepted_ids), f"missing {len(set(accepted_ids) - set(found))}, unexpected {len(set(found) - set(accepted_ids))}"
    for event_id, name, resource, _payload in rows:
        delivery = accepted_ids[event_id]
        assert resource == delivery.resource
        expected = "greenapi.instance.account-changed" if delivery.body.get("reason") == "account_changed" else "greenapi.instance.number-blocked"
        assert name == expected

    assert code == 0, receiver.output[-2000:]
    assert receiver.stdout[-1] == "receiver stopped\n", receiver.stdout[-3:]
    assert CANARY not in receiver.output
    assert not [r for r in results if CANARY in r.text]
    assert where_in_database(prefect_server, CANARY) == []
