"""Request and response bodies of the receiver (they are also its OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import Ge
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from domain import Reason
from greenapi.credentials import ID_INSTANCE_MAX, ID_INSTANCE_MIN

# The one webhook type the receiver acts on, and the relay learns an account from.
STATE_INSTANCE_CHANGED = "stateInstanceChanged"


def _json_integer(value: Any) -> Any:
    """An integer as JSON Schema counts them (``5`` and ``5.0``), never ``true`` or ``"5"``.

    Pydantic's lax mode would take ``true`` as 1 and ``"5"`` as 5, so a body the schema calls invalid
    would start a run; its strict mode would refuse ``5.0``, which the schema calls valid.
    """
    if isinstance(value, (bool, str, bytes)):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


JsonInt = Annotated[int, BeforeValidator(_json_integer)]


class InstanceData(BaseModel):
    """``instanceData`` of every GREEN-API webhook: which instance, and which account is on it."""

    model_config = ConfigDict(extra="allow")

    idInstance: JsonInt = Field(ge=ID_INSTANCE_MIN, le=ID_INSTANCE_MAX, description="The instance the webhook is about.")
    wid: str | None = Field(default="", max_length=200, description="The account (WhatsApp id, e.g. `71231234567@c.us`) on the instance; empty or null when none.")
    typeInstance: str | None = Field(default=None, max_length=100, description="Messenger type, e.g. `whatsapp`, `v3` (MAX).")

    @field_validator("wid", mode="after")
    @classmethod
    def _null_wid_is_no_wid(cls, value: str | None) -> str:
        return value or ""


class GreenApiWebhook(BaseModel):
    """A GREEN-API webhook body, forwarded as GREEN-API sends it.

    Only `stateInstanceChanged` webhooks can lead to an event; other types (GREEN-API sends many,
    and adds more) are accepted and ignored, so other fields are allowed. Only what the decision
    needs is required: `typeWebhook` and `instanceData.idInstance`. A missing `timestamp` (GREEN-API's
    quotaExceeded example has none) or a null `wid` is not an error.
    """

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "typeWebhook": "stateInstanceChanged",
                    "instanceData": {"idInstance": 1101000001, "wid": "71231234567@c.us", "typeInstance": "whatsapp"},
                    "timestamp": 1705902314,
                    "stateInstance": "blocked",
                }
            ]
        },
    )

    typeWebhook: str = Field(min_length=1, max_length=100, description="Webhook type; only `stateInstanceChanged` is acted on.")
    instanceData: InstanceData
    timestamp: Annotated[int, Ge(0), BeforeValidator(_json_integer)] | None = Field(default=None, description="When GREEN-API produced the webhook (Unix seconds); not every type carries one.")
    stateInstance: str | None = Field(
        default=None, max_length=100,
        description="New instance state (`stateInstanceChanged` only): `blocked` and `authorized` matter, others are ignored.",
    )


class QueueResetRequest(BaseModel):
    """What another system sends to ask for an instance's queue to be reset."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"idInstance": 1101000001, "reason": "number_blocked", "source": "crm", "note": "reported by support", "deliveryId": "crm-4711"}
            ]
        },
    )

    idInstance: JsonInt = Field(ge=ID_INSTANCE_MIN, le=ID_INSTANCE_MAX, description="The GREEN-API instance (1 to 10 digits).")
    reason: Reason = Field(description="Why the queue is reset.")
    source: str | None = Field(default=None, max_length=100, description="Who is asking (free text, shown in the event).")
    note: str | None = Field(default=None, max_length=500, description="Free-text note carried in the event.")
    deliveryId: str | None = Field(
        default=None, min_length=1, max_length=200,
        description="Your id for this request. A repeat with the same deliveryId (for the same instance) is a duplicate and is not "
        "emitted again; without it, an identical body is the duplicate.",
    )


class Accepted(BaseModel):
    """The event was handed to Prefect (or had been already: `duplicate`)."""

    eventId: str = Field(description="The Prefect event id; the same for every delivery of the same request or webhook.")
    event: str = Field(
        description="Event name: `greenapi.instance.number-blocked` or `greenapi.instance.account-changed`, "
        "with `.dispatched` appended when the receiver handed the report to a task worker itself (`background` dispatch).")
    idInstance: int
    reason: Reason
    duplicate: bool = Field(description="True when this delivery was seen before; nothing was emitted this time.")
    taskRunId: str | None = Field(default=None, description="The background task run that handles it (it starts the handle-account-change run); present with `background` dispatch only.")


class Ignored(BaseModel):
    """The webhook was understood and needs no action; answered 200 so GREEN-API does not re-send it."""

    status: Literal["ignored"] = "ignored"
    why: str


class ErrorBody(BaseModel):
    """An error; never echoes the request's values."""

    detail: str | list[dict]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    prefect_events: Literal["connected", "disconnected"] = Field(description="Whether the receiver's Prefect events connection is open.")
    relay: dict[str, int] | None = Field(
        default=None, description="As a relay, what it did since it started: forwarded, held_back, app_refused, not_json, "
        "account_checks, account_check_failures, prefect_calls. Null when nothing is forwarded.")
