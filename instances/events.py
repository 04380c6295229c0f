"""One helper so every step's event names the instance the same way."""

from __future__ import annotations

from typing import Any

from prefect.events import emit_event

EVENT_PREFIX = "greenapi"


def instance_resource(id_instance: int) -> dict[str, str]:
    return {
        "prefect.resource.id": f"greenapi.instance.{id_instance}",
        "prefect.resource.name": f"GREEN-API instance {id_instance}",
        "greenapi.id-instance": str(id_instance),
    }


def emit_step_event(id_instance: int, event: str, payload: dict[str, Any]) -> None:
    """Emit ``greenapi.<event>`` about ``greenapi.instance.<id>``; never carries credentials."""
    emit_event(event=f"{EVENT_PREFIX}.{event}", resource=instance_resource(id_instance), payload=payload)
