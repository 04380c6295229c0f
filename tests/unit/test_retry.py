"""RetryPolicy.delay and parse_retry_after on their own."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from greenapi.retry import RetryPolicy, parse_retry_after


class FixedRng:
    """uniform() returns the top of its range (u=1) or the bottom (u=0)."""

    def __init__(self, at_top: bool):
        self.at_top = at_top
        self.calls: list[tuple[float, float]] = []

    def uniform(self, a, b):
        self.calls.append((a, b))
        return b if self.at_top else a


def policy_of(*, initial_seconds: float = 0.5, max_seconds: float = 8.0, jitter_ratio: float = 0.25) -> RetryPolicy:
    """A policy with the given backoff; the retry count plays no part in a delay."""
    return RetryPolicy(max_retries=3, initial_seconds=initial_seconds, max_seconds=max_seconds, jitter_ratio=jitter_ratio)


def test_backoff_doubles_then_caps_without_jitter():
    policy = policy_of(initial_seconds=0.5, max_seconds=3.0, jitter_ratio=0.0)
    assert [policy.delay(n) for n in range(1, 7)] == pytest.approx([0.5, 1.0, 2.0, 3.0, 3.0, 3.0])


def test_jitter_bounds_with_fixed_rng():
    policy = policy_of(initial_seconds=1.0, max_seconds=8.0, jitter_ratio=0.25)
    top, bottom = FixedRng(True), FixedRng(False)
    assert [policy.delay(n, rng=top) for n in (1, 2, 3, 4, 5)] == pytest.approx([0.75, 1.5, 3.0, 6.0, 6.0])
    assert [policy.delay(n, rng=bottom) for n in (1, 2, 3, 4, 5)] == pytest.approx([1.0, 2.0, 4.0, 8.0, 8.0])
    assert all(call == (0, 0.25) for call in top.calls)


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.5, 1.0])
def test_jitter_stays_within_ratio_with_seeded_rng(ratio):
    policy = policy_of(initial_seconds=0.2, max_seconds=5.0, jitter_ratio=ratio)
    rng = random.Random(1234)
    values = []
    for n in range(1, 12):
        base = min(0.2 * 2 ** (n - 1), 5.0)
        delay = policy.delay(n, rng=rng)
        values.append(delay)
        assert base * (1 - ratio) - 1e-12 <= delay <= base + 1e-12
    if ratio:
        assert len(set(values[-5:])) > 1  # the capped delays are jittered, not identical


def test_same_seed_same_delays():
    policy = policy_of()
    a = [policy.delay(n, rng=random.Random(7)) for n in range(1, 5)]
    b = [policy.delay(n, rng=random.Random(7)) for n in range(1, 5)]
    assert a == b


def test_retry_after_wins_over_backoff_and_is_capped():
    policy = policy_of(initial_seconds=0.5, max_seconds=8.0, jitter_ratio=0.25)
    rng = FixedRng(True)
    assert policy.delay(1, "5", rng=rng) == 5.0
    assert policy.delay(4, "2", rng=rng) == 2.0
    assert policy.delay(1, "600", rng=rng) == 8.0
    assert rng.calls == []  # no jitter on a server-given delay


def test_garbage_retry_after_falls_back_to_backoff():
    policy = policy_of(initial_seconds=0.5, max_seconds=8.0, jitter_ratio=0.0)
    assert policy.delay(3, "later please") == pytest.approx(2.0)
    assert policy.delay(2, "") == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("7", 7.0), (" 2.5 ", 2.5), ("0", 0.0), ("-5", 0.0), ("abc", None), ("Mon, 99 Foo 2024", None)],
)
def test_parse_retry_after_values(value, expected):
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date_future_and_past():
    future = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=90), usegmt=True)
    past = format_datetime(datetime.now(timezone.utc) - timedelta(hours=1), usegmt=True)
    assert 85 <= parse_retry_after(future) <= 90
    assert parse_retry_after(past) == 0.0


def test_parse_retry_after_http_date_without_zone_is_utc():
    when = (datetime.now(timezone.utc) + timedelta(seconds=60)).strftime("%a, %d %b %Y %H:%M:%S")
    assert 55 <= parse_retry_after(when) <= 60


def test_http_date_is_capped_by_policy():
    future = format_datetime(datetime.now(timezone.utc) + timedelta(hours=2), usegmt=True)
    assert policy_of(max_seconds=12.0).delay(1, future) == 12.0
