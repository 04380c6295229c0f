"""Step: a wait the server asked for, as its own task so the UI shows how long and why."""

from __future__ import annotations

import asyncio
from typing import Literal

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from instances.events import emit_step_event
from tasks.results import WaitResult

WaitKind = Literal["left-time", "count-refresh", "clear-window", "refused"]

WAIT_REASONS: dict[str, str] = {
    "left-time": "GREEN-API answered leftTime: the next clear is not allowed before then",
    "count-refresh": "GetWebhooksCount is a snapshot: waiting until it was taken after the clear",
    "clear-window": "one clear per window: waiting for the window the last clear opened",
    "refused": "GREEN-API could not process the clear: trying again shortly",
}


@task(name="wait", task_run_name="wait-{kind}-{id_instance}", cache_policy=NO_CACHE)
async def wait_seconds(id_instance: int, seconds: float, kind: WaitKind) -> WaitResult:
    """Sleep ``seconds`` for a reason GREEN-API gave (leftTime, count staleness, clear window)."""
    why = WAIT_REASONS[kind]
    get_run_logger().info("Instance %s: waiting %.1f s (%s): %s", id_instance, seconds, kind, why)
    await asyncio.sleep(seconds)
    result = WaitResult(seconds=seconds, kind=kind, why=why)
    emit_step_event(id_instance, "queue.waited", result.model_dump(mode="json"))
    return result
