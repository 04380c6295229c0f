"""What the receiver emits: event names, payloads and deterministic event ids."""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

from prefect.events import Event

from receiver.models import GreenApiWebhook, QueueResetRequest
from domain import Reason
from instances.events import instance_resource

EVENT_NAMES: dict[Reason, str] = {
    Reason.number_blocked: "greenapi.instance.number-blocked",
    Reason.account_changed: "greenapi.instance.account-changed",
}

# With background dispatch the receiver hands the report to a task worker itself, so its event must not
# also fire the deployment's triggers, which expect exactly the names above.
DISPATCHED_SUFFIX = ".dispatched"

# Fixed namespace for uuid5: the same key gives the same event id in every process, forever.
EVENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:greenapi-queue-reset:receiver:event")

Delivery = Literal["greenapi-webhook", "api", "relay-check"]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def webhook_key(webhook: GreenApiWebhook) -> str:
    """Identifies one GREEN-API notification: every re-delivery of it has the same key."""
    data = webhook.instanceData
    return "greenapi-webhook|" + _canonical(
        [data.idInstance, webhook.typeWebhook, webhook.timestamp, webhook.stateInstance, data.wid]
    )


def account_check_key(id_instance: int, wid: str) -> str:
    """The relay found ``wid`` on the instance (GetSettings): every relay that finds it gives the same key."""
    return "relay-check|" + _canonical([id_instance, wid])


def request_key(request: QueueResetRequest) -> str:
    """``deliveryId`` when given (scoped to the instance), else the canonical JSON of the validated body."""
    if request.deliveryId is not None:
        return "api|delivery|" + _canonical([request.idInstance, request.deliveryId])
    return "api|body|" + _canonical(request.model_dump(mode="json"))


def event_id_for(key: str) -> uuid.UUID:
    return uuid.uuid5(EVENT_ID_NAMESPACE, key)


def build_event(
    *,
    event_id: uuid.UUID,
    id_instance: int,
    reason: Reason,
    delivery: Delivery,
    source: str | None = None,
    note: str | None = None,
    wid: str | None = None,
    state_instance: str | None = None,
    task_run_id: uuid.UUID | None = None,
) -> Event:
    """The event on ``greenapi.instance.<id>``; ``occurred`` is when the receiver accepted it.

    With ``task_run_id``, the background task the receiver handed the report to: the name gets
    DISPATCHED_SUFFIX and the task run is a related resource, so the UI links the report to its run.
    """
    related = []
    if task_run_id is not None:
        related.append({"prefect.resource.id": f"prefect.task-run.{task_run_id}", "prefect.resource.role": "task-run"})
    return Event(
        id=event_id,
        event=EVENT_NAMES[reason] + (DISPATCHED_SUFFIX if task_run_id is not None else ""),
        resource=instance_resource(id_instance),
        related=related,
        payload={
            "id_instance": id_instance,
            "reason": reason.value,
            "source": source,
            "note": note,
            "wid": wid or None,
            "state_instance": state_instance,
            "delivery": delivery,
            **({"task_run_id": str(task_run_id)} if task_run_id is not None else {}),
        },
    )
