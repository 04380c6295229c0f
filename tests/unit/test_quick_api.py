"""tasks.quick_api at the transport level: which answers are retried, how fast, and when it hands back to Prefect's client."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL, temporary_settings

from tasks.quick_api import WRITES_IN_FLIGHT, QuickPrefectAPI, QuickRetriesExhausted

WAITS = (0.01, 0.02, 0.04)


def _api(answers: list[httpx.Response], seen: list[httpx.Request], settings: dict | None = None) -> QuickPrefectAPI:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    with temporary_settings(updates={PREFECT_API_URL: "http://prefect.test/api", **(settings or {})}):
        return QuickPrefectAPI(waits=WAITS, transport=httpx.MockTransport(handler))


async def test_503s_are_retried_within_milliseconds_and_the_answer_returned():
    seen: list[httpx.Request] = []
    api = _api([httpx.Response(503), httpx.Response(503), httpx.Response(201, json={"id": "r1", "name": "run"})], seen)

    started = time.monotonic()
    run = await api.create_flow_run_from_deployment("d1", parameters={"reason": "x"}, idempotency_key="k", tags=["greenapi"])

    assert run == {"id": "r1", "name": "run"}
    assert len(seen) == 3 and time.monotonic() - started < 1.0  # Prefect's client would have waited 2 s, then 4 s
    assert seen[0].url == "http://prefect.test/api/deployments/d1/create_flow_run"
    assert json.loads(seen[-1].content)["idempotency_key"] == "k"


async def test_a_server_that_stays_busy_hands_back_to_the_caller_after_the_last_wait():
    seen: list[httpx.Request] = []
    api = _api([httpx.Response(503) for _ in range(len(WAITS) + 1)], seen)

    with pytest.raises(QuickRetriesExhausted):
        await api.propose_pending("f1")
    assert len(seen) == len(WAITS) + 1


async def test_other_errors_are_not_retried():
    seen: list[httpx.Request] = []
    api = _api([httpx.Response(404, json={"detail": "not found"})], seen)

    with pytest.raises(httpx.HTTPStatusError):
        await api.create_flow_run_from_deployment("gone", parameters={}, idempotency_key="k", tags=[])
    assert len(seen) == 1


async def test_a_claim_is_ours_only_when_the_server_accepts_it():
    seen: list[httpx.Request] = []
    api = _api([httpx.Response(201, json={"status": "ACCEPT"}), httpx.Response(200, json={"status": "ABORT"})], seen)

    assert await api.propose_pending("f1") is True
    assert await api.propose_pending("f1") is False
    assert json.loads(seen[0].content) == {"state": {"type": "PENDING"}, "force": False}


async def test_a_taken_slot_is_waited_for_as_long_as_retry_after_says():
    seen: list[httpx.Request] = []
    api = _api([httpx.Response(423, headers={"Retry-After": "0.2"}), httpx.Response(200, json={"lease_id": "L1", "limits": []})], seen)

    started = time.monotonic()
    lease = await api.acquire_slot("greenapi-instance-1", lease_seconds=60, timeout_seconds=5, holder=None)

    assert lease == "L1" and len(seen) == 2
    assert time.monotonic() - started >= 0.2
    assert json.loads(seen[0].content) == {"names": ["greenapi-instance-1"], "slots": 1, "mode": "concurrency", "lease_duration": 60}


async def test_a_slot_that_stays_taken_past_the_timeout_is_an_error():
    seen: list[httpx.Request] = []
    api = _api([httpx.Response(423, headers={"Retry-After": "5"})], seen)

    with pytest.raises(TimeoutError, match="greenapi-instance-1"):
        await api.acquire_slot("greenapi-instance-1", lease_seconds=60, timeout_seconds=1, holder=None)


async def test_a_variable_that_does_not_exist_yet_is_created():
    seen: list[httpx.Request] = []
    api = _api([httpx.Response(404), httpx.Response(201, json={})], seen)

    await api.set_variable("greenapi-next-clear-1", "2026-11-25T00:00:00+00:00", ["greenapi"])

    assert [(r.method, r.url.path) for r in seen] == [("PATCH", "/api/variables/name/greenapi-next-clear-1"), ("POST", "/api/variables/")]


async def test_the_api_key_goes_along_as_prefect_s_client_would_send_it():
    seen: list[httpx.Request] = []
    api = _api([httpx.Response(201, json={"status": "ACCEPT"})], seen, {PREFECT_API_KEY: "pnu_CANARYkey"})

    await api.propose_pending("f1")

    assert seen[0].headers["Authorization"] == "Bearer pnu_CANARYkey"


async def test_an_instance_limit_is_created_once_and_only_read_afterwards():
    seen: list[httpx.Request] = []
    api = _api([httpx.Response(404), httpx.Response(201, json={}), httpx.Response(200, json={"name": "greenapi-instance-1"})], seen)

    await api.ensure_concurrency_limit("greenapi-instance-1", limit=1)
    await api.ensure_concurrency_limit("greenapi-instance-1", limit=1)

    assert [(r.method, r.url.path) for r in seen] == [
        ("GET", "/api/v2/concurrency_limits/greenapi-instance-1"), ("POST", "/api/v2/concurrency_limits/"),
        ("GET", "/api/v2/concurrency_limits/greenapi-instance-1"),
    ]
    assert json.loads(seen[1].content) == {"name": "greenapi-instance-1", "limit": 1}


async def test_an_artifact_is_attached_to_the_run_that_writes_it_after_a_busy_answer():
    seen: list[httpx.Request] = []
    api = _api([httpx.Response(503), httpx.Response(201, json={"id": "a1"})], seen)

    await api.create_artifact(key="queue-reset-1101", artifact_type="markdown", data="# report", description="d",
                              flow_run_id="f1", task_run_id=None)

    assert [r.url.path for r in seen] == ["/api/artifacts/", "/api/artifacts/"]
    body = json.loads(seen[-1].content)
    assert body == {"key": "queue-reset-1101", "type": "markdown", "data": "# report", "description": "d",
                    "flow_run_id": "f1", "task_run_id": None}


@pytest.mark.parametrize("queue_writes, most_at_once", [(True, WRITES_IN_FLIGHT), (False, 6)])
async def test_a_process_sends_its_writes_two_at_a_time_unless_told_not_to(queue_writes, most_at_once):
    in_flight, seen_at_once = 0, []

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight
        in_flight += 1
        seen_at_once.append(in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return httpx.Response(204)

    with temporary_settings(updates={PREFECT_API_URL: "http://prefect.test/api"}):
        apis = [QuickPrefectAPI(waits=WAITS, transport=httpx.MockTransport(handler), queue_writes=queue_writes) for _ in range(6)]
    await asyncio.gather(*(api.set_variable(f"v{n}", "x", []) for n, api in enumerate(apis)))

    assert max(seen_at_once) == most_at_once
