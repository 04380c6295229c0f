"""Step: who is on the instance now (state, account wid, whether a webhookUrl is set)."""

from __future__ import annotations

import asyncio
from collections import Counter

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed

from greenapi import GreenAPIClient, GreenAPIError
from instances.events import emit_step_event
from tasks.results import InstanceInfo


async def read_instance_info(client: GreenAPIClient) -> InstanceInfo:
    """GetStateInstance and GetSettings, as one typed answer."""
    state = await client.get_state_instance()
    settings = await client.get_settings()
    return InstanceInfo(
        id_instance=client.id_instance,
        state_instance=state.state_instance,
        wid=settings.wid,
        webhook_url_set=settings.webhook_url_set,
    )


def _log_and_emit(info: InstanceInfo) -> None:
    get_run_logger().info(
        "Instance %s is %s, account %s, webhookUrl %s",
        info.id_instance, info.state_instance, info.wid or "(none)", "set" if info.webhook_url_set else "empty",
    )
    emit_step_event(info.id_instance, "instance.inspected", info.model_dump(mode="json"))


@task(name="inspect-instance", task_run_name="inspect-instance-{client.id_instance}", cache_policy=NO_CACHE)
async def inspect_instance(client: GreenAPIClient) -> InstanceInfo:
    """Read GetStateInstance and GetSettings: the state, the account (wid) and the webhookUrl."""
    info = await read_instance_info(client)
    _log_and_emit(info)
    return info


@task(name="check-instances", task_run_name="check-instances-{first_id}-to-{last_id}", cache_policy=NO_CACHE)
async def check_instances(
    clients: list[GreenAPIClient], first_id: int, last_id: int, slots: asyncio.Semaphore | None = None
) -> list[InstanceInfo | str]:
    """The sweep's look at a batch of instances: state, wid and webhookUrl of each.

    One task run per batch, not per instance: on a fleet of thousands, a task run per healthy instance
    costs the Prefect server more than the check itself. Each answer is an InstanceInfo, or the reason
    the instance could not be checked. ``slots``, shared by the batches of one sweep, bounds the checks
    in progress across them. An instance's time limit is its clients' own timeouts, which count only
    while a request is on the wire: time spent queueing here, or on a busy CPU, is not the instance's.

    Args:
        clients: one client per instance, with the check's timeouts.
        first_id: the batch's first idInstance (for the task run's name).
        last_id: the batch's last idInstance.
        slots: checks in progress at once, shared across batches.

    Returns:
        An InstanceInfo per instance, or the error text of those that could not be checked, in order;
        in a Failed state (the batch shows red) when any could not be checked.
    """
    slots = slots or asyncio.Semaphore(len(clients) or 1)

    async def check(client: GreenAPIClient) -> InstanceInfo | str:
        try:
            async with slots:
                return await read_instance_info(client)
        except GreenAPIError as exc:
            return str(exc)

    results = await asyncio.gather(*(check(client) for client in clients))
    states = Counter(r.state_instance if isinstance(r, InstanceInfo) else "not checked" for r in results)
    logger = get_run_logger()
    logger.info("Checked %d instance(s), %s to %s: %s", len(results), first_id, last_id,
                ", ".join(f"{count} {state}" for state, count in sorted(states.items())))
    failures = [result for result in results if isinstance(result, str)]
    for failure in failures:
        logger.warning("%s", failure)
    if failures:
        return Failed(message=f"{len(failures)} of {len(results)} instance(s) could not be checked", data=results)
    return results
