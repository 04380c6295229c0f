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


class Senders:
    """``SENDERS`` threads posting deliveries to the receiver at ``url`` without pause, each tagged with the
    current ``phase``; a delivery not accepted is sent again after a short pause (as a webhook sender retries)
    until it is. ``attempts`` keeps every try."""

    def __init__(self, url: str) -> None:
        self.url, self.phase = url, "first"
        self.attempts: list[Attempt] = []
        self._lock, self._counter, self._stop = threading.Lock(), itertools.count(), threading.Event()
        self._threads = [threading.Thread(target=self._send, daemon=True) for _ in range(SENDERS)]

    def client(self, timeout: httpx.Timeout | float) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {CANARY}"}, timeout=timeout)

    def post(self, http: httpx.Client, i: int, phase: str) -> Attempt:
        path, body, _ = delivery(i)
        try:
            response = http.post(path, json=body)
        except httpx.HTTPError as exc:
            return Attempt(i, phase, None, None, None, error=type(exc).__name__)
        data = response.json() if response.status_code in ACCEPTED else {}
        return Attempt(i, phase, response.status_code, data.get("eventId"), data.get("duplicate"), text=response.text + str(response.headers))

    def _send(self) -> None:
        i = None
        with self.client(httpx.Timeout(20, connect=2)) as http:
            while not self._stop.is_set():
                if i is None:
                    with self._lock:
                        i = next(self._counter)
                attempt = self.post(http, i, self.phase)
                with self._lock:
                    self.attempts.append(attempt)
                if attempt.status is None or attempt.status >= 300:
                    self._stop.wait(0.1)  # the receiver is away: the same delivery again, as a webhook sender retries
                else:
                    i = None

    def accepted_in(self, phase: str, at_least: int = 1) -> bool:
        with self._lock:
            return sum(1 for a in self.attempts if a.phase == phase and a.status in ACCEPTED) >= at_least

    def __enter__(self) -> "Senders":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def send_again(senders: Senders) -> tuple[list[Attempt], list[Attempt]]:
    """Whatever ever failed is sent once more (one still unanswered at the stop is accepted now; one accepted
    by a retry is a duplicate with the same event id), and 20 that the first receiver accepted are delivered
    again (duplicates, same ids, stored once). Returns (resent, redelivered)."""
    failed = sorted({a.index for a in senders.attempts if a.status is None or not 200 <= a.status < 300})
    again = [a.index for a in senders.attempts if a.phase == "first" and a.status in ACCEPTED][:20]
    with senders.client(30) as http:
        return [senders.post(http, i, "resent") for i in failed], [senders.post(http, i, "redelivered") for i in again]


def event_ids_accepted(attempts: list[Attempt]) -> dict[int, str]:
    """Each delivery accepted, with its one event id (two ids for one delivery fail)."""
    accepted: dict[int, str] = {}
    for a in attempts:
        if a.status in ACCEPTED:
            assert accepted.setdefault(a.index, a.event_id) == a.event_id, f"delivery {a.index} got two event ids"
    return accepted


def test_restart_mid_stream_loses_nothing_accepted(prefect_server, tmp_path):
    asyncio.run(register_instances(range(BASE_ID, BASE_ID + 10)))
    port = free_port()
    env = client_env(prefect_server.api_url, tmp_path / "home", GREEN_API_RECEIVER_SECRET=CANARY, GREEN_API_RECEIVER_PORT=str(port),
                     PREFECT_LOGGING_LEVEL="DEBUG")
    first, second = Receiver.start(env, tmp_path), None
    try:
        with Senders(f"http://127.0.0.1:{port}") as senders:
            wait_until(lambda: senders.accepted_in("first", 20), timeout=30, message="the first receiver accepted fewer than 20 deliveries")
            senders.phase = "stopping"
            first_code = first.terminate()  # SIGTERM while requests are in flight
            senders.phase = "down"
            second = Receiver.start(env, tmp_path)  # same port
            assert second.url == senders.url
            senders.phase = "second"
            wait_until(lambda: senders.accepted_in("second", 20), timeout=30, message="the second receiver accepted fewer than 20 deliveries")
        resent, redelivered = send_again(senders)
    finally:
        first.kill()
        second_code = second.terminate() if second is not None else None

    attempts = senders.attempts
    by_phase = {p: sum(1 for a in attempts if a.phase == p) for p in ("first", "stopping", "down", "second")}
    print(f"\nreceiver restart: attempts by phase {by_phase}, failed and re-sent {len(resent)}, redelivered {len(redelivered)}")
    assert senders.accepted_in("first"), "nothing reached the first receiver"
    assert senders.accepted_in("second"), "nothing reached the second receiver"
    assert resent, "no delivery failed: the restart happened while nothing was sent"
    # a failure is a connection error, or a non-2xx the sender knows to re-send (503 + Retry-After)
    assert all(a.status is None or a.status == 503 for a in attempts if a.status is None or a.status >= 300), {a.status for a in attempts}
    assert [(a.index, a.status, a.error) for a in resent if a.status not in ACCEPTED] == []
    assert all(a.status in ACCEPTED and a.duplicate is True for a in redelivered), [(a.status, a.duplicate) for a in redelivered]

    accepted = event_ids_accepted(attempts + resent + redelivered)
    assert set(accepted) == {a.index for a in attempts}, "a delivery was never accepted"
    rows = wait_for_stored_events(prefect_server, sorted({delivery(i)[2] for i in accepted}), set(accepted.values()))
    found = [row[0] for row in rows]
    missing = set(accepted.values()) - set(found)
    assert not missing, f"{len(missing)} accepted deliveries are not in Prefect, e.g. {[i for i, e in accepted.items() if e in missing][:10]}"
    assert set(found) == set(accepted.values()), "Prefect holds events nobody was told were accepted"
    assert len(found) == len(set(found)), "an event was stored twice"

    assert first_code == 0 and second_code == 0, (first_code, second_code, first.output[-1500:], second.output[-1500:] if second else "")
    for receiver in (first, second):
        assert receiver.stdout[0].startswith("receiver listening on") and receiver.stdout[-1] == "receiver stopped\n", receiver.stdout[-3:]
        assert CANARY not in receiver.output
    assert len(first.output) + len(second.output) > 1000, f"DEBUG logging produced no output to search: {first.output[-500:]!r}"
    assert not [a for a in attempts + resent + redelivered if CANARY in a.text]
    assert where_in_database(prefect_server, CANARY) == []
