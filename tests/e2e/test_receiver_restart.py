"""The receiver restarted (SIGTERM, start again on the same port) while deliveries keep arriving.

Senders post deliveries continuously; the receiver subprocess is stopped mid-stream and started
again. Whatever got a 2xx must be an event in Prefect; whatever did not got a connection error or a
non-2xx, so its sender sends it again until it is accepted, after the restart. Nothing accepted
is lost and nothing is stored twice: the restarted receiver knows what the first one accepted,
from the reports remembered on the Prefect server, and answers a re-delivery as a duplicate. The secret is in no output, response or
table. The receiver runs with Prefect's logging at DEBUG, so its logs are in the output searched.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from dataclasses import dataclass

import httpx
import pytest

from tests.e2e.conftest import on_sqlite_only
from tests.helpers import ACCEPTED, register_instances, wait_for_stored_events, wait_until, where_in_database
from bench.servers import Receiver, client_env, free_port

pytestmark = [pytest.mark.e2e, on_sqlite_only]

CANARY = "CANARYrestart" + "5e7a" * 8
SENDERS = 6
BASE_ID = 7_930_000_001


def delivery(i: int) -> tuple[str, dict, str]:
    id_instance = BASE_ID + i % 10
    if i % 4 == 0:
        body = {"typeWebhook": "stateInstanceChanged", "instanceData": {"idInstance": id_instance, "wid": f"7999{i:07d}@c.us"}, "timestamp": 1_710_000_000 + i, "stateInstance": "blocked"}
        return "/webhooks/greenapi", body, f"greenapi.instance.{id_instance}"
    return "/events/queue-reset", {"idInstance": id_instance, "reason": "number_blocked", "deliveryId": f"restart-{i}"}, f"greenapi.instance.{id_instance}"


@dataclass
class Attempt:
    index: int
    phase: str
    status: int | None  # None: a connection error or timeout
    event_id: str | None
    duplicate: bool | None
    error: str = ""
    text: str = ""


def test_restart_mid_stream_loses_nothing_accepted(prefect_server, tmp_path):
    asyncio.run(register_instances(range(BASE_ID, BASE_ID + 10)))
    port = free_port()
    env = client_env(prefect_server.api_url, tmp_path / "home", GREEN_API_RECEIVER_SECRET=CANARY, GREEN_API_RECEIVER_PORT=str(port),
                     PREFECT_LOGGING_LEVEL="DEBUG")
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {CANARY}"}
    attempts: list[Attempt] = []
    lock = threading.Lock()
    counter = itertools.count()
    phase = ["first"]
    stop = threading.Event()

    def post(http: httpx.Client, i: int, tag: str) -> Attempt:
        path, body, _ = delivery(i)
        try:
            response = http.post(path, json=body)
        except httpx.HTTPError as exc:
            return Attempt(i, tag, None, None, None, error=type(exc).__name__)
        data = response.json() if response.status_code in ACCEPTED else {}
        return Attempt(i, tag, response.status_code, data.get("eventId"), data.get("duplicate"), text=response.text + str(response.headers))

    def sender() -> None:
        i = None
        with httpx.Client(base_url=url, headers=headers, timeout=httpx.Timeout(20, connect=2)) as http:
            while not stop.is_set():
                if i is None:
                    with lock:
                        i = next(counter)
                attempt = post(http, i, phase[0])
                with lock:
                    attempts.append(attempt)
                if attempt.status is None or attempt.status >= 300:
                    time.sleep(0.1)  # the receiver is away: the same delivery again, as a webhook sender retries
                else:
                    i = None

    def accepted_in(tag: str, at_least: int = 20) -> bool:
        with lock:
            return sum(1 for a in attempts if a.phase == tag and a.status in ACCEPTED) >= at_least

    first = Receiver.start(env, tmp_path)
    threads = [threading.Thread(target=sender, daemon=True) for _ in range(SENDERS)]
    second = None
    try:
        for thread in threads:
            thread.start()
        wait_until(lambda: accepted_in("first"), timeout=30, message="the first receiver accepted fewer than 20 deliveries")
        phase[0] = "stopping"
        first_code = first.terminate()  # SIGTERM while requests are in flight
        phase[0] = "down"
        second = Receiver.start(env, tmp_path)  # same port
        assert second.url == url
        phase[0] = "second"
        wait_until(lambda: accepted_in("second"), timeout=30, message="the second receiver accepted fewer than 20 deliveries")
        stop.set()
        for thread in threads:
            thread.join(30)

        # whatever ever failed is sent once more: one still unanswered at the stop is accepted now, and
        # one accepted by a retry is a duplicate with the same event id
        failed = sorted({a.index for a in attempts if a.status is None or not 200 <= a.status < 300})
        resent: list[Attempt] = []
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            for i in failed:
                resent.append(post(http, i, "resent"))
            # and a re-delivery of something the first receiver accepted: a duplicate, same id, stored once
            again = [a.index for a in attempts if a.phase == "first" and a.status in ACCEPTED][:20]
            redelivered = [post(http, i, "redelivered") for i in again]
    finally:
        stop.set()
        first.kill()
        second_code = second.terminate() if second is not None else None

    by_phase = {p: sum(1 for a in attempts if a.phase == p) for p in ("first", "stopping", "down", "second")}
    print(f"\nreceiver restart: attempts by phase {by_phase}, failed and re-sent {len(failed)}, redelivered {len(redelivered)}")
    assert sum(1 for a in attempts if a.phase == "first" and a.status in ACCEPTED) > 0, "nothing reached the first receiver"
    assert sum(1 for a in attempts if a.phase == "second" and a.status in ACCEPTED) > 0, "nothing reached the second receiver"
    assert failed, "no delivery failed: the restart happened while nothing was sent"
    # a failure is a connection error, or a non-2xx the sender knows to re-send (503 + Retry-After)
    assert all(a.status is None or a.status == 503 for a in attempts if a.status is None or a.status >= 300), {a.status for a in attempts}
    assert [(a.index, a.status, a.error) for a in resent if a.status not in ACCEPTED] == []
    assert all(a.status in ACCEPTED and a.duplicate is True for a in redelivered), [(a.status, a.duplicate) for a in redelivered]

    accepted: dict[int, str] = {}
    for a in attempts + resent + redelivered:
        if a.status in ACCEPTED:
            assert accepted.setdefault(a.index, a.event_id) == a.event_id, f"delivery {a.index} got two event ids"
    assert set(accepted) == {a.index for a in attempts}, "a delivery was never accepted"

    resources = sorted({delivery(i)[2] for i in accepted})
    rows = wait_for_stored_events(prefect_server, resources, set(accepted.values()))
    found = [row[0] for row in rows]
    missing = set(accepted.values()) - set(found)
    assert not missing, f"{len(missing)} accepted deliveries are not in Prefect, e.g. {[i for i, e in accepted.items() if e in missing][:10]}"
    assert set(found) == set(accepted.values()), "Prefect holds events nobody was told were accepted"
    assert len(found) == len(set(found)), "an event was stored twice"

    assert first_code == 0 and second_code == 0, (first_code, second_code, first.output[-1500:], second.output[-1500:] if second else "")
    for receiver in (first, second):
        assert receiver.stdout[0].startswith("receiver listening on") and receiver.stdout[-1] == "receiver stopped\n", receiver.stdout[-3:]
        assert CANARY not in receiver.output
    assert len(first.output) + len(second.output) > 1000, "DEBUG logging produced no output to search"
    assert not [a for a in attempts + resent + redelivered if CANARY in a.text]
    assert where_in_database(prefect_server, CANARY) == []
