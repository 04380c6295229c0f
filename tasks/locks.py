"""One run per instance at a time: a global concurrency limit of one slot per instance, held under a lease.

Prefect's own ``concurrency(..., strict=True)`` takes the slot, renews the lease while the block runs and
releases it after; a lease that cannot be renewed stops the holder, since another run may hold the
instance by then. A run that dies holding the slot frees it when the lease runs out (the server's
repossessor reclaims expired leases; Prefect's temporary server does not run it).
"""

from __future__ import annotations

import contextlib
from typing import AsyncIterator

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.concurrency.asyncio import concurrency
from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound


def instance_limit_name(id_instance: int) -> str:
    return f"greenapi-instance-{id_instance}"


async def ensure_instance_limit(id_instance: int) -> str:
    """Create the instance's limit (1 slot) unless it exists: read first, so after the first run nothing is written."""
    name = instance_limit_name(id_instance)
    async with get_client() as client:
        try:
            await client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):  # another run created it meanwhile
                await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
    return name


def _holder() -> ConcurrencyLeaseHolder | None:
    """Who holds the slot, as Prefect's UI shows it: this task run, or this flow run."""
    if (task_run := TaskRunContext.get()) and task_run.task_run:
        return ConcurrencyLeaseHolder(type="task_run", id=task_run.task_run.id)
    if (flow_run := FlowRunContext.get()) and flow_run.flow_run:
        return ConcurrencyLeaseHolder(type="flow_run", id=flow_run.flow_run.id)
    return None


@contextlib.asynccontextmanager
async def instance_lock(id_instance: int, *, timeout_seconds: float, lease_seconds: float) -> AsyncIterator[None]:
    """Hold the instance's one slot while the block runs; TimeoutError when another run keeps it past ``timeout_seconds``."""
    name = await ensure_instance_limit(id_instance)
    async with concurrency(name, occupy=1, timeout_seconds=timeout_seconds, lease_duration=lease_seconds,
                           strict=True, holder=_holder()):
        yield
