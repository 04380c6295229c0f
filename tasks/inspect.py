"""Step: who is on the instance now (state, account wid, whether a webhookUrl is set)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from greenapi import GreenAPIClient
from tasks.events import emit_step_event
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
