"""One run per instance at a time, with Prefect's global concurrency limits (strict, as leases)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator, Sequence

from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging import get_logger

from tasks.quick_api import QuickPrefectAPI

logger = get_logger("greenapi.locks")


def instance_limit_name(id_instance: int) -> str:
    return f"greenapi-instance-{id_instance}"


async def ensure_instance_limit(id_instance: int, api: QuickPrefectAPI) -> str:
    """Create the instance's limit (1 slot) unless it exists; safe when several runs race to create it."""
    name = instance_limit_name(id_instance)
    await api.ensure_concurrency_limit(name, limit=1)
    return name


def _holder() -> dict | None:
    """Who holds the slot, as Prefect's UI shows it: this task run, or this flow run."""
    if (task_run := TaskRunContext.get()) and task_run.task_run:
        return {"type": "task_run", "id": str(task_run.task_run.id)}
    if (flow_run := FlowRunContext.get()) and flow_run.flow_run:
        return {"type": "flow_run", "id": str(flow_run.flow_run.id)}
    return None


@contextlib.asynccontextmanager
async def instance_lock(id_instance: int, *, timeout_seconds: float, lease_seconds: float) -> AsyncIterator[str]:
    """The instance's one slot, held under a lease that is renewed while the block runs.

    What Prefect's ``concurrency(..., strict=True)`` does, over tasks.quick_api: on a local SQLite
    server, 50 runs taking their slots at once met 503s that Prefect's client waits out 2, 4, 8 s at a
    time (up to 30 s per run, bench/NOTES.md). As with strict, a lease that cannot be renewed
    cancels the block: another run may hold the instance by then.
    """
    async with QuickPrefectAPI() as api:
        name = await ensure_instance_limit(id_instance, api)
        lease_id = await api.acquire_slot(name, lease_seconds=lease_seconds, timeout_seconds=timeout_seconds, holder=_holder())
        async with _lease_held(api, lease_id, lease_seconds, f"Instance lock {name}"):
            yield lease_id


@contextlib.asynccontextmanager
async def instances_locked_together(ids: Sequence[int], *, lease_seconds: float) -> AsyncIterator[bool]:
    """The slots of several instances under one lease, taken, renewed and released in one write each.

    For the sweep's inline hand-over: 50 affected instances locked one by one cost 100+ writes, and on
    a local SQLite server those writes queue behind each other for tens of seconds (bench/NOTES.md).
    Yields True when all were free and are now held. When any one is held by another run, nothing is
    taken and it yields False: the caller then locks each instance on its own (``instance_lock``), so
    one busy instance does not hold up the others.
    """
    if not ids:
        yield False
        return
    async with QuickPrefectAPI() as api:
        try:
            names = await asyncio.gather(*(ensure_instance_limit(id_instance, api) for id_instance in ids))
            lease_id = await api.acquire_slot(*names, lease_seconds=lease_seconds, timeout_seconds=0, holder=_holder())
        except TimeoutError:  # one of them is taken (or the server is too busy to say): each on its own, then
            lease_id = None
        except Exception as exc:  # each instance's own lock then meets (and reports) the trouble, one by one
            logger.warning("Instance locks of %d instance(s) not taken together (%s); taking each on its own", len(ids), type(exc).__name__)
            lease_id = None
        if lease_id is None:
            yield False
            return
        async with _lease_held(api, lease_id, lease_seconds, f"Instance locks of {len(ids)} instance(s)"):
            yield True


@contextlib.asynccontextmanager
async def _lease_held(api: QuickPrefectAPI, lease_id: str, lease_seconds: float, what: str) -> AsyncIterator[None]:
    """Renew the lease while the block runs, release it after."""
    renewer = asyncio.create_task(_keep_renewed(api, lease_id, lease_seconds, asyncio.current_task()))
    try:
        yield
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        try:
            await api.release_slot(lease_id)
        except Exception as exc:  # the lease runs out by itself after lease_seconds
            logger.warning("%s not released (%s); it frees itself within %g s", what, type(exc).__name__, lease_seconds)


async def _keep_renewed(api: QuickPrefectAPI, lease_id: str, lease_seconds: float, holder: asyncio.Task | None) -> None:
    while True:
        await asyncio.sleep(lease_seconds / 2)  # two chances to renew before the lease runs out
        try:
            await api.renew_lease(lease_id, lease_seconds)
        except Exception as exc:
            try:
                await asyncio.sleep(1)
                await api.renew_lease(lease_id, lease_seconds)
            except Exception:
                logger.error("Instance lock %s lost (%s): stopping, another run may hold the instance now", lease_id, type(exc).__name__)
                if holder is not None:
                    holder.cancel()
                return
