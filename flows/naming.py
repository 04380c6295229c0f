"""One name scheme for every handle-account-change run, however it starts: ``<reason>-<idInstance>``."""

from __future__ import annotations

import re

from prefect.runtime import flow_run

from domain import Reason


def run_name(reason: Reason | str, id_instance: int | str) -> str:
    return f"{getattr(reason, 'value', reason)}-{id_instance}"


def name_at_start() -> str:
    """The name a run gets as it starts: the one it was created with when that follows the scheme (the sweep
    names its runs), else from its parameters. A block name, or none, is replaced by the idInstance once the
    run has read its credentials (:func:`name_once_known`)."""
    parameters = flow_run.parameters
    reason = getattr(parameters.get("reason"), "value", parameters.get("reason"))
    if re.fullmatch(rf"{re.escape(str(reason))}-\d+", flow_run.name or ""):
        return flow_run.name
    return run_name(reason, parameters.get("instance") or "from-settings")


async def name_once_known(reason: Reason, id_instance: int) -> None:
    """Rename the running flow run to the scheme once its idInstance is known (started with a block name)."""
    from prefect.client.orchestration import get_client

    wanted = run_name(reason, id_instance)
    if flow_run.id and flow_run.name != wanted:
        async with get_client() as client:
            await client.set_flow_run_name(flow_run.id, wanted)
