"""A run that stops where it runs when it is cancelled from the UI or the API.

Prefect's runners and workers stop a cancelled run by ending its process. A run executed in a process
that other work shares (a task worker serving the receiver's reports, ``greenapi-migrate run``) has no
such supervisor, so the run asks the server itself, every ``poll_seconds``, and ends Cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.states import Cancelled, State

T = TypeVar("T")


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


async def _until_cancel_requested(flow_run_id, poll_seconds: float) -> None:
    async with get_client() as client:
        while True:
            await asyncio.sleep(poll_seconds)
            try:
                state = (await client.read_flow_run(flow_run_id)).state
            except Exception:  # a busy or restarting server: ask again next time
                continue
            if state is not None and (state.is_cancelling() or state.is_cancelled()):
                return
