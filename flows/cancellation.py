"""A run that stops where it runs when it is cancelled, and that is marked Crashed when its process dies.

Prefect's runners and workers stop a cancelled run by ending its process, and report a process that
died. A run executed in a process that other work shares (a task worker serving the receiver's
reports, ``greenapi-migrate run``) has no such supervisor, so the run looks after itself:
- every ``poll_seconds`` it asks the server whether it was cancelled, and if so stops and ends Cancelled;
- every ``HEARTBEAT_SECONDS`` it emits ``prefect-greenapi.flow-run.heartbeat`` about itself (outside the
  ``greenapi.*`` events an operator watches: machinery, not news). The automation
  ``greenapi-crashed-runs`` (``deploy/automations.py``, applied by ``serve`` and ``task-worker``) marks a
  run Crashed when its heartbeats stop before it ends, as when its task worker was killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from typing import Any, TypeVar
from uuid import UUID

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.events import emit_event
from prefect.states import Cancelled, State

T = TypeVar("T")

# Not under greenapi.*: one every 10 s per run would flood the operator's feed of what the runs found and did.
HEARTBEAT_EVENT = "prefect-greenapi.flow-run.heartbeat"
HEARTBEAT_SECONDS = 10.0


async def stop_when_cancelled(work: Coroutine[Any, Any, T], *, poll_seconds: float) -> T | State:
    """Run ``work``; if this flow run is cancelled meanwhile, stop it and return a Cancelled state (the run's final state)."""
    context = FlowRunContext.get()
    job = asyncio.ensure_future(work)
    if context is None or context.flow_run is None:
        return await job
    watcher = asyncio.ensure_future(_until_cancel_requested(context.flow_run.id, poll_seconds))
    try:
        await asyncio.wait({job, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not job.done():
            job.cancel()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    if job.cancelled() or not job.done():
        with contextlib.suppress(asyncio.CancelledError):
            await job
        get_run_logger().warning("Cancelled while it ran: stopped; the instance's lock is released")
        return Cancelled(message="Cancelled from the UI or the API; stopped where it ran")
    return job.result()


def _heartbeat(flow_run_id: UUID) -> None:
    emit_event(event=HEARTBEAT_EVENT, resource={"prefect.resource.id": f"prefect.flow-run.{flow_run_id}"})


async def _until_cancel_requested(flow_run_id: UUID, poll_seconds: float) -> None:
    _heartbeat(flow_run_id)
    beat_at = time.monotonic()
    async with get_client() as client:
        while True:
            await asyncio.sleep(min(poll_seconds, HEARTBEAT_SECONDS))
            if time.monotonic() - beat_at >= HEARTBEAT_SECONDS:
                _heartbeat(flow_run_id)
                beat_at = time.monotonic()
            try:
                state = (await client.read_flow_run(flow_run_id)).state
            except Exception:  # a busy or restarting server: ask again next time
                continue
            if state is not None and (state.is_cancelling() or state.is_cancelled()):
                return
