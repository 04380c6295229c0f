"""One run per instance at a time, with Prefect's global concurrency limits (strict)."""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound


def instance_limit_name(id_instance: int) -> str:
    return f"greenapi-instance-{id_instance}"


async def ensure_instance_limit(id_instance: int) -> str:
    """Create the instance's limit (1 slot) unless it exists; safe when several runs race to create it."""
    name = instance_limit_name(id_instance)
    async with get_client() as client:
        try:
            await client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            except ObjectAlreadyExists:
                pass
    return name
