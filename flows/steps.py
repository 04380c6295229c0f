"""Times each step of a run and keeps the row the report shows for it."""

from __future__ import annotations

import time
from typing import Awaitable, Callable, TypeVar

from flows.models import QueueResetReport, StepRecord
from tasks.results import utc_now

T = TypeVar("T")


async def record_step(
    report: QueueResetReport, step: str, call: Awaitable[T], describe: Callable[[T], str]
) -> T:
    """Await ``call``; add a row with ``describe(result)``, or with the error, then re-raise it."""
    started_at, started = utc_now(), time.perf_counter()
    try:
        result = await call
    except Exception as exc:
        report.steps.append(StepRecord(step=step, result=f"failed: {exc}", failed=True, started_at=started_at, seconds=time.perf_counter() - started))
        raise
    report.steps.append(StepRecord(step=step, result=describe(result), started_at=started_at, seconds=time.perf_counter() - started))
    return result
