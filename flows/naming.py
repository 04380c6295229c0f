"""One name scheme for every handle-account-change run, however it starts: ``<reason>-<idInstance>``.

The name is final from the first line the run logs: :func:`name_at_start` (the flow's ``flow_run_name``, which
Prefect calls before it logs ``Beginning flow run ...``) resolves a block name to its idInstance, and the empty
``instance`` to ``GREEN_API_ID_INSTANCE``. Only when that is impossible (no such block, no setting) does it fall
back to what was typed; such a run fails on its first step, or is renamed by :func:`name_once_known`.
"""

from __future__ import annotations

import re

from prefect.runtime import flow_run

from domain import Reason


def run_name(reason: Reason | str, id_instance: int | str) -> str:
    return f"{getattr(reason, 'value', reason)}-{id_instance}"


def run_url(run_id) -> str | None:
    """Where the Prefect UI shows a flow run; None without a UI URL (or a run id)."""
    from prefect.settings import PREFECT_UI_URL

    base = PREFECT_UI_URL.value()
    return f"{base.rstrip('/')}/runs/flow-run/{run_id}" if base and run_id else None


def name_at_start() -> str:
    """The name a run gets as it starts: the one it was created with when that follows the scheme (the sweep
    names its runs), else ``<reason>-<idInstance>`` from its parameters, a block name read to its idInstance."""
    parameters = flow_run.parameters
    reason = getattr(parameters.get("reason"), "value", parameters.get("reason"))
    if re.fullmatch(rf"{re.escape(str(reason))}-\d+", flow_run.name or ""):
        return flow_run.name
    instance = str(parameters.get("instance") or "").strip()
    return run_name(reason, id_of(instance) or instance or "from-settings")


def id_of(instance: str) -> int | None:
    """The idInstance ``instance`` stands for, without reading a secret: itself when it is one, the block's
    ``id_instance`` when it names a greenapi-instance block, ``GREEN_API_ID_INSTANCE`` when empty; None when
    it cannot be known (the run's own lookup then fails with the one-line message).

    Synchronous, as Prefect calls ``flow_run_name``: one API call with Prefect's sync client."""
    if instance.isdigit():
        return int(instance)
    if not instance:
        try:
            from greenapi import get_settings

            return get_settings().id_instance
        except Exception:  # bad settings: the run says so itself
            return None
    try:
        from prefect.client.orchestration import get_client

        from instances.blocks import BLOCK_TYPE_SLUG

        with get_client(sync_client=True) as client:
            document = client.read_block_document_by_name(instance, BLOCK_TYPE_SLUG, include_secrets=False)
    except Exception:  # no such block (or no server answer): the run's lookup reports it in one line
        return None
    value = (document.data or {}).get("id_instance")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def name_once_known(reason: Reason, id_instance: int) -> None:
    """Rename the running flow run to the scheme once its idInstance is known, when :func:`name_at_start`
    could not know it (a block saved after the run started); otherwise nothing is written."""
    from prefect.client.orchestration import get_client

    wanted = run_name(reason, id_instance)
    if flow_run.id and flow_run.name != wanted:
        async with get_client() as client:
            await client.set_flow_run_name(flow_run.id, wanted)
