"""A reported block or account change, handled by a Prefect task worker: no new process per run.

The receiver hands each report over with ``handle_reported_change.delay(...)``; any task worker serving
this task (one runs inside ``greenapi-migrate serve``, more with ``greenapi-migrate task-worker``)
picks it up within a fraction of a second and runs handle-account-change as a flow run of its own,
with its steps, artifact and events as when it starts from the UI.
"""

from __future__ import annotations

from prefect import get_run_logger, tags, task
from prefect.cache_policies import NO_CACHE

from flows.handle_account_change import handle_account_change
from domain import Reason


@task(name="handle-reported-change", task_run_name="handle-reported-change-{id_instance}", cache_policy=NO_CACHE)
async def handle_reported_change(id_instance: int, reason: Reason, report_id: str, clear_outgoing: bool | None = None) -> str:
    """Run handle-account-change for a reported instance.

    Args:
        id_instance: the instance the report names (its greenapi-instance block holds the token).
        reason: number_blocked or account_changed.
        report_id: the receiver's event id for the report, for the logs and the UI.
        clear_outgoing: also clear the outgoing message queue (empty: after a block only).

    Returns:
        The final state of the handle-account-change run (Completed, Failed, Cancelled...).
    """
    get_run_logger().info("Report %s: instance %s, %s", report_id, id_instance, reason.value)
    with tags("greenapi", "receiver"):
        state = await handle_account_change(reason=reason, instance=str(id_instance), clear_outgoing=clear_outgoing,
                                            return_state=True)
    return state.type.value
