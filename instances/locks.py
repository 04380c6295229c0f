"""One run per instance at a time: a global concurrency limit of one slot per instance, held under a lease.

Prefect's own ``concurrency(..., strict=True)`` takes the slot, renews the lease while the block runs and
releases it after; a lease that cannot be renewed stops the holder, since another run may hold the
instance by then. A run that dies holding the slot frees it when the lease runs out (the server's
repossessor reclaims expired leases; Prefect's temporary server does not run it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import AsyncIterator, Sequence

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.concurrency.asyncio import concurrency
from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound


def instance_limit_name(id_instance: int) -> str:
    return f"greenapi-instance-{id_instance}"


async def ensure_instance_limit(id_instance: int) -> tuple[str, bool]:
    """The instance's limit (1 slot), created unless it exists: read first, so after the first run nothing is written.

    Returns:
        The limit's name, and whether its slot was taken when read (by another run, or a dead run's lease)."""
    name = instance_limit_name(id_instance)
    async with get_client() as client:
        try:
            limit = await client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):  # another run created it meanwhile
                await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            return name, False
    return name, limit.active_slots >= limit.limit


def _holder() -> ConcurrencyLeaseHolder | None:
    """Who holds the slot, as Prefect's UI shows it: this task run, or this flow run."""
    if (task_run := TaskRunContext.get()) and task_run.task_run:
        return ConcurrencyLeaseHolder(type="task_run", id=task_run.task_run.id)
    if (flow_run := FlowRunContext.get()) and flow_run.flow_run:
        return ConcurrencyLeaseHolder(type="flow_run", id=flow_run.flow_run.id)
    return None


@contextlib.asynccontextmanager
async def instance_lock(id_instance: int, *, timeout_seconds: float, lease_seconds: float) -> AsyncIterator[None]:
    """Hold the instance's one slot while the block runs; TimeoutError when another run keeps it past ``timeout_seconds``.

    When another run holds it, the log says which run (as far as Prefect's runs show it) and how long this
    one waits at most. (Read before taking it: a take that times out is an ERROR line of Prefect's own.)"""
    name, taken = await ensure_instance_limit(id_instance)
    if taken:
        _logger().info("Instance %s is held by %s: waiting for it %.0f s at most",
                       id_instance, await describe_holder(id_instance), timeout_seconds)
    async with concurrency(name, occupy=1, timeout_seconds=timeout_seconds, lease_duration=lease_seconds,
                           strict=True, holder=_holder()):
        yield


def _logger():
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:  # called outside a run (tests, scripts)
        return logging.getLogger("greenapi.locks")


async def describe_holder(id_instance: int) -> str:
    """The other running handle-account-change run(s) on the instance, found by their name (``<reason>-<idInstance>``)."""
    from prefect.client.schemas.filters import (
        FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterName, FlowRunFilterState, FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    context = FlowRunContext.get()
    own = context.flow_run.id if context and context.flow_run else None
    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["handle-account-change"])),
            flow_run_filter=FlowRunFilter(
                name=FlowRunFilterName(like_=f"-{id_instance}"),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])),
            ),
            limit=5,
        )
    others = [run for run in runs if run.id != own and run.name.endswith(f"-{id_instance}")]
    if not others:
        return "another run (no running handle-account-change run names it: a sweep handling it inline, or a run just ending)"
    return ", ".join(f"run {run.name} ({run.id})" for run in others)


# How long a batch whose slots were all free when read waits for them (another run may take one in between)
# before each instance takes its own lock instead. Not 1 s: a busy server (SQLite answers racing writes 503, and
# Prefect's client backs off 2, 4, 8 s) made free slots time out, and an acquisition given up while its request
# was in flight could still be granted, holding the slots until the lease ran out (bench/NOTES.md, session 8).
BATCH_LOCK_WAIT_SECONDS = 15.0


@contextlib.asynccontextmanager
async def instances_locked_together(ids: Sequence[int], *, lease_seconds: float) -> AsyncIterator[bool]:
    """The slots of several instances under one lease: one write to take them, one to release them.

    Yields True when all were free and are now held. When any one is held by another run, nothing is
    taken and it yields False: each instance then takes its own lock, so one busy instance does not
    hold up the others.
    """
    if not ids:
        yield False
        return
    limits = await asyncio.gather(*(ensure_instance_limit(id_instance) for id_instance in ids))
    if any(taken for _, taken in limits):
        yield False
        return
    names = [name for name, _ in limits]
    async with contextlib.AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(concurrency(
                names, occupy=1, timeout_seconds=BATCH_LOCK_WAIT_SECONDS, lease_duration=lease_seconds,
                strict=True, holder=_holder()))
        except TimeoutError:  # one of them is taken: each on its own, then
            yield False
            return
        yield True
