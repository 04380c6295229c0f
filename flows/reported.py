"""A reported block or account change, handled by a Prefect task worker: no new process per run.

The receiver hands each report over with ``handle_reported_change.delay(...)``; any task worker serving
this task (one runs inside ``greenapi-migrate serve``, more with ``greenapi-migrate task-worker``)
picks it up within a fraction of a second and runs handle-account-change as a flow run of its own,
with its steps, artifact and events as when it starts from the UI. That run belongs to no deployment (the
deployment's Runs tab does not list it): it carries the tags ``greenapi`` and ``receiver``, and the event
``greenapi.report.handled`` on the instance links it.
"""

from __future__ import annotations

from prefect import get_run_logger, tags, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from domain import Reason
from flows.handle_account_change import handle_account_change
from flows.naming import run_name, run_url
from instances.events import instance_resource

# The tags of the runs the receiver starts: how to find them on the Runs page (they belong to no deployment).
RECEIVER_RUN_TAGS = ("greenapi", "receiver")


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
    logger = get_run_logger()
    logger.info("Report %s: instance %s, %s", report_id, id_instance, reason.value)
    with tags(*RECEIVER_RUN_TAGS):
        state = await handle_account_change(reason=reason, instance=str(id_instance), clear_outgoing=clear_outgoing,
                                            return_state=True)
    run_id = state.state_details.flow_run_id
    # Not a deployment's run (a task worker runs it in its own process), so the deployment's Runs tab does not list
    # it: the log line and the event name it, and the Runs page finds it by the tag.
    url = run_url(run_id)
    logger.info("Report %s: run %s ended %s%s", report_id, run_name(reason, id_instance), state.type.value,
                f" ({url})" if url else "")
    emit_event(event="greenapi.report.handled", resource=instance_resource(id_instance),
               related=[{"prefect.resource.id": f"prefect.flow-run.{run_id}", "prefect.resource.role": "flow-run",
                         "prefect.resource.name": run_name(reason, id_instance)}] if run_id else [],
               payload={"id_instance": id_instance, "reason": reason.value, "report_id": report_id,
                        "flow_run_id": str(run_id) if run_id else None, "final_state": state.type.value})
    return state.type.value
