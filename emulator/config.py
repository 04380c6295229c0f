"""Configuration and seed models for the GREEN-API emulator.

Everything here is plain data (pydantic models); the rules live in the modules ``state.py`` names. The defaults
are GREEN-API's own timings (greenapi/timings.py, the one place they are written); tests and the demo shorten them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from greenapi.timings import (CLEAR_INTERVAL_SECONDS, COUNT_REFRESH_SECONDS, NOTIFICATION_TTL_SECONDS, RATE_LIMITS_PER_SECOND,
                              REDELIVERY_PAUSE_SECONDS, WEBHOOK_ANSWER_TIMEOUT_SECONDS)

#: The GREEN-API methods the emulator answers, with the HTTP verb each one expects.
METHOD_VERBS: dict[str, str] = {
    "getStateInstance": "GET",
    "getSettings": "GET",
    "getWebhooksCount": "GET",
    "clearWebhooksQueue": "DELETE",
    "getMessagesCount": "GET",
    "clearMessagesQueue": "GET",
    "receiveNotification": "GET",
    "deleteNotification": "DELETE",
    "setSettings": "POST",
}

#: GetSettings' documented fields (https://green-api.com/en/docs/api/account/GetSettings), in the order it answers
#: them, with the values an instance starts with.
DOCUMENTED_SETTINGS: dict[str, Any] = {
    "wid": "",
    "countryInstance": "",
    "typeAccount": "",
    "webhookUrl": "",
    "webhookUrlToken": "",
    "delaySendMessagesMilliseconds": 1000,
    "markIncomingMessagesReaded": "no",
    "markIncomingMessagesReadedOnReply": "no",
    "sharedSession": "no",
    "outgoingWebhook": "yes",
    "outgoingMessageWebhook": "yes",
    "outgoingAPIMessageWebhook": "yes",
    "incomingWebhook": "yes",
    "deviceWebhook": "no",
    "statusInstanceWebhook": "no",
    "stateWebhook": "yes",
    "enableMessagesHistory": "no",
    "keepOnlineStatus": "no",
    "pollMessageWebhook": "no",
    "incomingBlockWebhook": "yes",
    "incomingCallWebhook": "yes",
    "editedMessageWebhook": "no",
    "deletedMessageWebhook": "no",
}
#: What SetSettings cannot change (the account, and two deprecated read-only fields).
READ_ONLY_SETTINGS = ("wid", "typeAccount")
#: The reason clearWebhooksQueue gives with ``clear_fails_with_webhook_url`` set to true (bug #1107; the real
#: error's form is not documented, this one is a plausible stand-in).
WEBHOOK_URL_CLEAR_REASON = "queue cannot be cleared while webhookUrl is set"

DEFAULT_RATE_LIMITS: dict[str, float] = dict(RATE_LIMITS_PER_SECOND)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmulatorConfig(_Strict):
    """Server-wide behaviour knobs."""

    clear_window_seconds: float = Field(default=CLEAR_INTERVAL_SECONDS, ge=0)
    count_refresh_seconds: float = Field(default=COUNT_REFRESH_SECONDS, ge=0)
    #: Cap on the receiveNotification long-poll; None honours receiveTimeout as given.
    max_receive_wait_seconds: float | None = Field(default=None, ge=0)
    #: "No more than N calls in any 1 s window per instance". Only recorded as violations.
    rate_limits_per_second: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    #: Entries the call log keeps (the oldest go first). The call counts (``GET /_emulator/counts``) have no cap.
    call_log_limit: int = Field(default=10_000, ge=1)
    #: The partner token ``GET /partner/getInstances/{partnerToken}`` accepts; None: the partner endpoint answers
    #: every token ``{"code": 401, "description": "Unauthorized"}`` (HTTP 200, as GREEN-API does).
    partner_token: str | None = Field(default=None, min_length=1)
    #: POST queued notifications to each instance's webhookUrl (GREEN-API's Webhook Endpoint); false: they wait.
    deliver_webhooks: bool = True
    #: The next POST to an instance's webhookUrl starts no earlier than this after the previous one started
    #: (GREEN-API spends 20 ms per webhook: about 50/s per instance to a webhook server that answers fast).
    delivery_interval_seconds: float = Field(default=0.02, ge=0)
    #: After an answer other than 200 (or none) the same notification is POSTed again this much later
    #: (emulator clock); the ones behind it wait.
    redelivery_pause_seconds: float = Field(default=REDELIVERY_PAUSE_SECONDS, ge=0)
    #: How long a delivery waits for the webhook server's answer before it counts as failed ("timeout").
    delivery_timeout_seconds: float = Field(default=WEBHOOK_ANSWER_TIMEOUT_SECONDS, gt=0)
    #: Notifications older than this (emulator clock) are dropped undelivered (GREEN-API keeps them 24 h).
    notification_ttl_seconds: float = Field(default=NOTIFICATION_TTL_SECONDS, gt=0)
    #: Entries the delivery log (``GET /_emulator/deliveries``) keeps; the oldest go first.
    delivery_log_limit: int = Field(default=10_000, ge=1)

    def __repr__(self) -> str:  # keep the partner token out of reprs
        fields = ", ".join(f"{k}={v!r}" for k, v in self.model_dump(exclude={"partner_token"}).items())
        return f"EmulatorConfig({fields}, partner_token={'***' if self.partner_token else None})"

    __str__ = __repr__


class RefuseClears(_Strict):
    """Make clearWebhooksQueue answer ``isCleared: false`` with this reason."""

    reason: str
    #: How many clears to refuse; None means forever.
    times: int | None = Field(default=None, ge=1)


class InstanceSeed(_Strict):
    """One emulated instance, as written in a seed file or POSTed to the control API."""

    id_instance: int = Field(ge=1, le=9_999_999_999)
    api_token: str = Field(min_length=1)
    state: str = "authorized"
    wid: str = "79990000000@c.us"
    webhook_url: str = ""
    notifications: int = Field(default=0, ge=0)
    outgoing_messages: int = Field(default=0, ge=0)
    cleared_seconds_ago: float | None = Field(default=None, ge=0)
    #: As ``cleared_seconds_ago``, counted back from the instance's first authenticated call instead of its
    #: seeding: a run meets the same window however long after seeding it starts (the demo, a loaded machine).
    cleared_before_first_call_seconds: float | None = Field(default=None, ge=0)
    count_snapshot: int | None = Field(default=None, ge=0)
    arrival_rate_per_second: float = Field(default=0, ge=0)
    cyrillic_count: bool = False
    refuse_clears: RefuseClears | None = None
    #: ``whatsapp``, or ``v3`` (MAX): a v3 instance also answers under ``/v3/waInstance...``.
    type_instance: Literal["whatsapp", "v3"] = "whatsapp"
    #: With ``type_instance: v3``: whether the plain ``/waInstance...`` path is refused (404); GREEN-API's docs
    #: say the prefix became optional, so by default both answer.
    v3_prefix_required: bool = False
    #: Bug #1108: getWebhooksCount answers 0 while the queue holds at least this many notifications
    #: (1: whenever anything is queued). None: the count is right.
    count_zero_at: int | None = Field(default=None, ge=1)
    #: Bug #1100: the instance's webhookUrl does not answer; while a webhookUrl is set, getWebhooksCount answers 0.
    webhook_url_unreachable: bool = False
    #: Bug #1107: clearWebhooksQueue fails while a webhookUrl is set: ``{"isCleared": false, "reason": ...}``
    #: (true: WEBHOOK_URL_CLEAR_REASON; a string: that reason). The workaround works: remove the
    #: webhookUrl (PATCH, or setSettings), clear, set it back.
    clear_fails_with_webhook_url: bool | str = False
    #: receiveNotification refuses a receiveTimeout outside 5-60 (or not an integer) with 400, as GREEN-API
    #: documents; false keeps the emulator lenient (any non-negative integer, 0 included).
    strict_receive_timeout: bool = False
    #: Initial values of settings fields (e.g. ``{"stateWebhook": "no"}``); wid and webhookUrl come from
    #: ``wid`` and ``webhook_url``.
    settings: dict[str, Any] = Field(default_factory=dict)
    #: setSettings answers at once; the new values apply this many seconds later (GREEN-API: within 5
    #: minutes). 0 applies them at once.
    settings_apply_delay_seconds: float = Field(default=0, ge=0)
    #: What the partner endpoint (``/partner/getInstances``) answers for this instance: its name, and whether it
    #: was deleted or has expired (a deleted instance stays listed, as GREEN-API lists them for 3 months).
    name: str = ""
    deleted: bool = False
    is_expired: bool = False

    @field_validator("settings")
    @classmethod
    def _documented_settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(DOCUMENTED_SETTINGS))
        if unknown:
            raise ValueError(f"unknown settings fields {unknown}; use GetSettings' documented fields")
        if "wid" in value or "webhookUrl" in value:
            raise ValueError("set wid and webhookUrl with the wid and webhook_url fields")
        return value

    @field_validator("clear_fails_with_webhook_url")
    @classmethod
    def _reason_not_empty(cls, value: bool | str) -> bool | str:
        if isinstance(value, str) and not value:
            raise ValueError("a reason must not be empty (use false to turn it off)")
        return value

    def __repr__(self) -> str:  # keep the token out of reprs and tracebacks
        fields = ", ".join(f"{k}={v!r}" for k, v in self.model_dump(exclude={"api_token"}).items())
        return f"InstanceSeed({fields}, api_token='***')"

    __str__ = __repr__


class InstancePatch(_Strict):
    """Fields the control API may change on a live instance."""

    state: str | None = None
    wid: str | None = None
    webhook_url: str | None = None
    arrival_rate_per_second: float | None = Field(default=None, ge=0)
    cyrillic_count: bool | None = None
    refuse_clears: RefuseClears | None = None  # explicit null removes it
    count_zero_at: int | None = Field(default=None, ge=1)  # explicit null removes it
    webhook_url_unreachable: bool | None = None
    clear_fails_with_webhook_url: bool | str | None = None
    strict_receive_timeout: bool | None = None
    add_notifications: int = Field(default=0, ge=0)
    add_outgoing: int = Field(default=0, ge=0)


class StateChange(_Strict):
    """``POST /_emulator/instances/{id}/state``: the instance's state (and account) change, as GREEN-API would
    see it; queues a stateInstanceChanged webhook when the instance's ``stateWebhook`` setting is "yes"."""

    state: str = Field(min_length=1)
    wid: str | None = Field(default=None, min_length=1)  # the new account; None keeps the current one


class NewNotifications(_Strict):
    """``POST /_emulator/instances/{id}/notifications``: queue notifications of the account now on the instance."""

    count: int = Field(default=1, ge=1, le=100_000)
    type_webhook: str = Field(default="incomingMessageReceived", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,39}$")


# ---------------------------------------------------------------- faults


class StatusFault(_Strict):
    kind: Literal["status"]
    status: int = Field(ge=100, le=599)
    #: str: sent as is with content_type; dict/list: sent as JSON; None: a small JSON error.
    body: str | dict[str, Any] | list[Any] | None = None
    content_type: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class NonJsonFault(_Strict):
    kind: Literal["non_json"]
    body: str = "<html><body>this is not JSON</body></html>"


class NullBodyFault(_Strict):
    kind: Literal["null_body"]


class JsonFault(_Strict):
    kind: Literal["json"]
    body: Any = None


class DelayFault(_Strict):
    kind: Literal["delay"]
    seconds: float = Field(ge=0, le=600)


class DisconnectFault(_Strict):
    kind: Literal["disconnect"]


Fault = Annotated[
    Union[StatusFault, NonJsonFault, NullBodyFault, JsonFault, DelayFault, DisconnectFault],
    Field(discriminator="kind"),
]


class FaultRule(_Strict):
    """Apply ``fault`` to ``times`` matching requests (None = forever), after letting the first
    ``after`` matching requests through untouched (``after=1`` faults the second call).

    A request matches when its method is ``method`` (or ``method`` is ``"*"``) and it got past
    routing and authentication; every pending rule counts the matching requests it sees, whether
    or not an earlier rule took them.
    """

    method: str
    fault: Fault
    times: int | None = Field(default=1, ge=1)
    after: int = Field(default=0, ge=0)

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        if value != "*" and value not in METHOD_VERBS:
            raise ValueError(f"unknown method {value!r}; use one of {sorted(METHOD_VERBS)} or '*'")
        return value


# ---------------------------------------------------------------- seed file


class SeedFile(_Strict):
    config: EmulatorConfig = Field(default_factory=EmulatorConfig)
    instances: list[InstanceSeed] = Field(default_factory=list)


def load_seed_file(path: str | Path) -> SeedFile:
    """Read a seed file: ``{"config": {...}, "instances": [InstanceSeed, ...]}``."""
    text = Path(path).read_text(encoding="utf-8")
    return SeedFile.model_validate(json.loads(text))
