"""GreenAPIClient retry rules, with a fake sleep that records the delays instead of sleeping."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from greenapi import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    GreenAPIError,
    InternalServerError,
    RateLimitError,
)
from tests.helpers import TOKEN_CANARY, mock_client


class Script:
    """A handler that plays a list of faults/answers in order, then repeats the last one."""

    def __init__(self, *steps):
        self.steps = list(steps)
        self.calls = 0

    def __call__(self, request):
        step = self.steps[min(self.calls, len(self.steps) - 1)]
        self.calls += 1
        if isinstance(step, type) and issubclass(step, Exception):
            raise step(f"boom {request.url}", request=request)
        if isinstance(step, tuple):
            status, headers = step
            return httpx.Response(status, headers=headers)
        if isinstance(step, int):
            return httpx.Response(step)
        return httpx.Response(200, json=step)


def client_and_backoffs(handler, **settings):
    """The mock client, without jitter (the backoffs are exact), and the backoffs it would have slept."""
    slept: list[float] = []
    return mock_client(handler, slept=slept, **{"retry_jitter_ratio": 0.0, **settings}), slept


TRANSIENT = [429, 500, 502, 503, 504, httpx.ConnectError, httpx.ReadTimeout, httpx.ConnectTimeout, httpx.RemoteProtocolError]
PERMANENT = [400, 401, 403, 404, 466, 418, 501]


async def test_by_default_a_transient_fault_is_tried_four_times_backing_off_from_half_a_second():
    script, slept = Script(503), []
    async with mock_client(script, slept=slept) as client:
        with pytest.raises(InternalServerError):
            await client.get_webhooks_count()
    assert script.calls == 4 and len(slept) == 3
    for delay, backoff in zip(slept, [0.5, 1.0, 2.0]):
        assert backoff * 0.75 <= delay <= backoff  # less a random quarter at most


@pytest.mark.parametrize("max_retries", [0, 1, 3, 5])
@pytest.mark.parametrize("fault", TRANSIENT, ids=str)
async def test_transient_faults_are_retried_up_to_max_retries(fault, max_retries):
    script = Script(fault)
    client, delays = client_and_backoffs(script, max_retries=max_retries)
    async with client:
        with pytest.raises(GreenAPIError) as info:
            await client.get_webhooks_count()
    assert script.calls == max_retries + 1
    assert len(delays) == max_retries
    if isinstance(fault, int):
        assert info.value.status_code == fault
    else:
        assert isinstance(info.value, APIConnectionError)
    if max_retries:
        assert f"gave up after {max_retries + 1} attempts" in str(info.value)
    else:
        assert "gave up" not in str(info.value)


@pytest.mark.parametrize("status", PERMANENT)
async def test_permanent_statuses_are_never_retried(status):
    script = Script(status)
    client, delays = client_and_backoffs(script, max_retries=5)
    async with client:
        with pytest.raises(APIStatusError) as info:
            await client.clear_webhooks_queue()
    assert script.calls == 1
    assert delays == []
    assert info.value.status_code == status
    assert "gave up" not in str(info.value)


async def test_a_500_that_passes_is_retried_and_recovers():
    script = Script(500, {"count": 1})
    client, delays = client_and_backoffs(script, max_retries=3)
    async with client:
        assert (await client.get_webhooks_count()).count == 1
    assert script.calls == 2 and len(delays) == 1


@pytest.mark.parametrize("fault", TRANSIENT, ids=str)
@pytest.mark.parametrize("failures", [1, 2])
async def test_success_after_transient_failures(fault, failures):
    script = Script(*([fault] * failures), {"count": 7})
    client, delays = client_and_backoffs(script, max_retries=3)
    async with client:
        result = await client.get_webhooks_count()
    assert result.count == 7
    assert script.calls == failures + 1
    assert len(delays) == failures


async def test_mixed_transient_failures_then_success():
    script = Script(httpx.ConnectError, 502, httpx.ReadTimeout, {"isCleared": True})
    client, delays = client_and_backoffs(script, max_retries=3)
    async with client:
        outcome = await client.clear_webhooks_queue()
    assert outcome.kind == "cleared"
    assert script.calls == 4 and len(delays) == 3


async def test_last_error_is_raised_after_mixed_failures():
    script = Script(502, httpx.ConnectError, httpx.ReadTimeout)
    client, _ = client_and_backoffs(script, max_retries=2)
    async with client:
        with pytest.raises(APITimeoutError):
            await client.get_settings()
    assert script.calls == 3


async def test_exponential_backoff_grows_and_is_capped_without_jitter():
    script = Script(503)
    client, delays = client_and_backoffs(
        script, max_retries=6, retry_backoff_initial_seconds=0.5, retry_backoff_max_seconds=4.0, retry_jitter_ratio=0.0
    )
    async with client:
        with pytest.raises(InternalServerError):
            await client.get_messages_count()
    assert delays == pytest.approx([0.5, 1.0, 2.0, 4.0, 4.0, 4.0])


async def test_jitter_only_shortens_delays_within_the_ratio():
    script = Script(httpx.ConnectError)
    client, delays = client_and_backoffs(
        script, max_retries=10, retry_backoff_initial_seconds=1.0, retry_backoff_max_seconds=8.0, retry_jitter_ratio=0.5
    )
    async with client:
        with pytest.raises(APIConnectionError):
            await client.get_state_instance()
    bases = [min(1.0 * 2**i, 8.0) for i in range(10)]
    assert len(delays) == 10
    for delay, base in zip(delays, bases):
        assert base * 0.5 - 1e-9 <= delay <= base + 1e-9


@pytest.mark.parametrize(("header", "expected"), [("3", 3.0), ("0", 0.0), ("1.5", 1.5), ("120", 5.0), ("-2", 0.0)])
async def test_retry_after_seconds_is_honoured_and_capped(header, expected):
    script = Script((429, {"Retry-After": header}), {"count": 1})
    client, delays = client_and_backoffs(script, max_retries=2, retry_backoff_initial_seconds=0.25, retry_backoff_max_seconds=5.0)
    async with client:
        assert (await client.get_webhooks_count()).count == 1
    assert delays == pytest.approx([expected])


@pytest.mark.parametrize(("ahead", "cap", "low", "high"), [(30, 60.0, 25.0, 30.0), (300, 10.0, 10.0, 10.0), (-60, 10.0, 0.0, 0.0)])
async def test_retry_after_http_date_is_honoured_and_capped(ahead, cap, low, high):
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=ahead), usegmt=True)
    script = Script((503, {"Retry-After": when}), {"count": 2})
    client, delays = client_and_backoffs(script, max_retries=1, retry_backoff_initial_seconds=0.1, retry_backoff_max_seconds=cap)
    async with client:
        assert (await client.get_webhooks_count()).count == 2
    assert len(delays) == 1
    assert low <= delays[0] <= high


async def test_garbage_retry_after_falls_back_to_backoff():
    script = Script((429, {"Retry-After": "soon-ish"}), {"count": 1})
    client, delays = client_and_backoffs(script, max_retries=1, retry_backoff_initial_seconds=0.75, retry_backoff_max_seconds=8.0)
    async with client:
        await client.get_webhooks_count()
    assert delays == pytest.approx([0.75])


async def test_retry_after_on_a_permanent_status_does_not_cause_a_retry():
    script = Script((400, {"Retry-After": "1"}), {"count": 1})
    client, delays = client_and_backoffs(script, max_retries=3)
    async with client:
        with pytest.raises(APIStatusError):
            await client.get_webhooks_count()
    assert script.calls == 1 and delays == []


async def test_each_retry_is_a_fresh_request_to_the_same_url():
    seen = []

    def handler(request):
        seen.append((request.method, str(request.url)))
        return httpx.Response(502) if len(seen) < 3 else httpx.Response(200, json={"receiptId": 3, "body": {}})

    client, _ = client_and_backoffs(handler, max_retries=3)
    async with client:
        notification = await client.receive_notification(receive_timeout=9)
    assert notification.receipt_id == 3
    assert len(seen) == 3 and len(set(seen)) == 1
    assert seen[0][0] == "GET" and seen[0][1].endswith(f"/receiveNotification/{TOKEN_CANARY}?receiveTimeout=9")


async def test_rate_limit_error_after_retries_keeps_its_type():
    client, delays = client_and_backoffs(Script(429), max_retries=2)
    async with client:
        with pytest.raises(RateLimitError) as info:
            await client.get_state_instance()
    assert info.value.status_code == 429 and len(delays) == 2
