"""GreenAPIClient pacing: never one method twice within its GREEN-API interval, retries included.
A fake clock that only the fake sleep (and simulated latency) moves; httpx.MockTransport."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest

from greenapi import ClientConfig, GreenAPIClient, InstanceCredentials
from greenapi.pacing import Pacer
from tests.helpers import TOKEN_CANARY, mock_client


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


ANSWERS = {
    "getStateInstance": {"stateInstance": "authorized"},
    "getSettings": {"wid": "11001234567@c.us", "webhookUrl": ""},
    "getWebhooksCount": {"count": 0},
    "receiveNotification": None,
}


class Server:
    """Answers each method, after ``latency`` fake seconds; ``faults`` are statuses played first.
    Records (method, started, finished) in fake time, and the most requests ever in flight."""

    def __init__(self, time: FakeTime, latency: float = 0.0, faults: list[int] | None = None) -> None:
        self.time = time
        self.latency = latency
        self.faults = list(faults or [])
        self.seen: list[tuple[str, float, float]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        method = request.url.path.split("/")[2]
        started = self.time.now
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await asyncio.sleep(0)
        self.time.now += self.latency
        self.in_flight -= 1
        self.seen.append((method, started, self.time.now))
        if self.faults:
            return httpx.Response(self.faults.pop(0))
        return httpx.Response(200, content=json.dumps(ANSWERS[method]).encode(),
                              headers={"content-type": "application/json"})

    def starts(self, method: str) -> list[float]:
        return [s for m, s, _ in self.seen if m == method]

    def gaps_end_to_start(self, method: str) -> list[float]:
        mine = [(s, f) for m, s, f in self.seen if m == method]
        return [nxt[0] - prev[1] for prev, nxt in zip(mine, mine[1:])]


def paced_client(server: Server, time: FakeTime, **settings):
    """The mock client on the fake time, without jitter and with a 0.05 s first backoff unless told."""
    return mock_client(server, sleep=time.sleep, clock=time.clock,
                       **{"retry_jitter_ratio": 0.0, "retry_backoff_initial_seconds": 0.05, **settings})


@pytest.mark.parametrize(("method", "interval"), [
    ("getStateInstance", 1.0), ("getSettings", 1.0), ("receiveNotification", 0.01), ("getWebhooksCount", 0.0)])
async def test_back_to_back_calls_of_a_method_are_spaced_by_green_apis_rate_limit(method, interval):
    time = FakeTime()
    server = Server(time)
    call = {"getStateInstance": "get_state_instance", "getSettings": "get_settings",
            "receiveNotification": "receive_notification", "getWebhooksCount": "get_webhooks_count"}[method]
    async with paced_client(server, time) as client:
        await getattr(client, call)()
        await getattr(client, call)()
    assert server.gaps_end_to_start(method) == pytest.approx([interval])


async def test_the_same_method_waits_its_interval_since_the_previous_one_finished():
    time = FakeTime()
    server = Server(time, latency=0.3)
    async with paced_client(server, time) as client:
        await client.get_state_instance()
        await client.get_state_instance()
        time.now += 0.4  # the caller did something else for a while
        await client.get_state_instance()
    assert server.starts("getStateInstance") == pytest.approx([1000.0, 1001.3, 1002.6])
    assert server.gaps_end_to_start("getStateInstance") == pytest.approx([1.0, 1.0])
    assert time.slept == pytest.approx([1.0, 0.6])


async def test_no_wait_once_the_interval_has_passed():
    time = FakeTime()
    server = Server(time)
    async with paced_client(server, time) as client:
        await client.get_settings()
        time.now += 1.0
        await client.get_settings()
        time.now += 5
        await client.get_settings()
    assert time.slept == []


async def test_different_and_unpaced_methods_do_not_wait_for_each_other():
    time = FakeTime()
    server = Server(time, latency=0.1)
    async with paced_client(server, time) as client:
        await client.get_state_instance()
        await client.get_settings()  # another method: its own interval
        for _ in range(3):
            await client.get_webhooks_count()  # no documented limit: not paced
    assert time.slept == []
    assert [m for m, _, _ in server.seen] == ["getStateInstance", "getSettings"] + ["getWebhooksCount"] * 3


async def test_receive_notification_is_paced_at_100_per_second():
    time = FakeTime()
    server = Server(time)
    async with paced_client(server, time) as client:
        assert await client.receive_notification() is None
        assert await client.receive_notification() is None
    assert time.slept == pytest.approx([0.01])


async def test_a_retry_after_429_waits_a_full_interval_not_just_its_backoff():
    time = FakeTime()
    server = Server(time, latency=0.2, faults=[429, 429])
    async with paced_client(server, time, max_retries=3, retry_backoff_initial_seconds=0.05) as client:
        state = await client.get_state_instance()
    assert state.state_instance == "authorized"
    assert len(server.seen) == 3
    assert server.gaps_end_to_start("getStateInstance") == pytest.approx([1.0, 1.0])
    assert time.slept == pytest.approx([1.0, 1.0])  # backoff 0.05 and 0.1: pacing decides


async def test_a_backoff_longer_than_the_interval_is_not_lengthened():
    time = FakeTime()
    server = Server(time, faults=[503])
    async with paced_client(server, time, max_retries=1, retry_backoff_initial_seconds=2.5) as client:
        await client.get_settings()
    assert time.slept == pytest.approx([2.5])  # one wait: the backoff, which already covers the interval


async def test_retry_after_zero_on_an_unpaced_method_still_sleeps_zero():
    time = FakeTime()

    def handler(request):
        handler.calls += 1
        if handler.calls == 1:
            return httpx.Response(429, headers={"Retry-After": "0"})
        return httpx.Response(200, json={"count": 4})

    handler.calls = 0
    client = mock_client(handler, sleep=time.sleep, clock=time.clock, max_retries=1)
    async with client:
        assert (await client.get_webhooks_count()).count == 4
    assert time.slept == [0.0]


async def test_concurrent_calls_of_one_method_take_turns():
    time = FakeTime()
    server = Server(time, latency=0.25)
    async with paced_client(server, time) as client:
        results = await asyncio.gather(*(client.get_state_instance() for _ in range(3)), client.get_settings())
    assert len(results) == 4
    starts = server.starts("getStateInstance")
    assert len(starts) == 3
    assert all(gap >= 1.0 - 1e-9 for gap in server.gaps_end_to_start("getStateInstance"))
    assert starts[-1] - starts[0] >= 2.5 - 1e-9


async def test_waits_are_logged_at_debug_with_method_and_seconds(caplog):
    caplog.set_level(logging.DEBUG, logger="greenapi.pacing")
    time = FakeTime()
    server = Server(time, faults=[429])  # one 429, then answers
    async with paced_client(server, time, max_retries=1) as client:
        await client.get_settings()  # 429, retried
        await client.get_webhooks_count()
    lines = [r for r in caplog.records if r.name == "greenapi.pacing"]
    assert [r.levelno for r in lines] == [logging.DEBUG]
    text = lines[0].getMessage()
    assert "getSettings" in text and "1.000 s" in text and "backoff alone was 0.050 s" in text
    assert TOKEN_CANARY not in caplog.text


async def test_a_failed_or_timed_out_attempt_also_starts_the_interval():
    time = FakeTime()
    calls = []

    def handler(request):
        calls.append(time.now)
        if len(calls) == 1:
            time.now += 2.0
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, json={"stateInstance": "authorized"})

    client = mock_client(handler, sleep=time.sleep, clock=time.clock, max_retries=1, retry_backoff_initial_seconds=0.1,
                         retry_jitter_ratio=0)
    async with client:
        await client.get_state_instance()
    assert calls == pytest.approx([1000.0, 1003.0])  # the interval counts from when the timeout ended
    assert time.slept == pytest.approx([1.0])


def test_pacer_remaining_and_done():
    time = FakeTime()
    pacer = Pacer({"a": 1.0}, clock=time.clock, sleep=time.sleep)
    assert pacer.remaining("a") == 0 and pacer.interval("b") == 0
    pacer.done("a")
    pacer.done("b")  # unpaced: nothing recorded
    time.now += 0.25
    assert pacer.remaining("a") == pytest.approx(0.75) and pacer.remaining("b") == 0
    asyncio.run(pacer.wait("a"))
    assert time.slept == pytest.approx([0.75]) and pacer.remaining("a") == 0


async def test_against_the_emulator_no_rate_limit_violation(emulator, seed_instance, monkeypatch):
    """Real time, real loopback HTTP: back-to-back reads and a 429 retry leave the emulator's
    per-second counters clean (the session check also asserts it)."""
    instance = seed_instance()
    emulator.state.add_faults(instance.id_instance, [
        {"method": "getStateInstance", "fault": {"kind": "status", "status": 429}, "after": 1}])
    client = GreenAPIClient(
        InstanceCredentials(id_instance=instance.id_instance, api_token_instance=instance.token, api_url=emulator.url),
        ClientConfig(max_retries=2, retry_backoff_initial_seconds=0.01, retry_jitter_ratio=0),
    )
    async with client:
        await client.get_state_instance()
        await client.get_settings()
        await client.get_state_instance()  # 429, then retried
        await client.get_settings()
    calls = emulator.state.calls(instance=instance.id_instance, method="getStateInstance")
    assert [c["status"] for c in calls] == [200, 429, 200]
    assert emulator.state.violations() == []
