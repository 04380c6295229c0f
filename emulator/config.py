"""Configuration and seed models for the GREEN-API emulator.

Everything here is plain data (pydantic models); the rules live in ``state.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

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
}

DEFAULT_RATE_LIMITS: dict[str, float] = {
    "getStateInstance": 1,
    "getSettings": 1,
    "receiveNotification": 100,
    "deleteNotification": 100,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmulatorConfig(_Strict):
    """Server-wide behaviour knobs."""

    clear_window_seconds: float = Field(default=60, ge=0)
    count_refresh_seconds: float = Field(default=10, ge=0)
    #: Cap on the receiveNotification long-poll; None honours receiveTimeout as given.
    max_receive_wait_seconds: float | None = Field(default=None, ge=0)
    #: "No more than N calls in any 1 s window per instance". Only recorded as violations.
    rate_limits_per_second: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    #: Entries the call log keeps (the oldest go first). The call counts (``GET /_emulator/counts``) have no cap.
    call_log_limit: int = Field(default=10_000, ge=1)


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
    count_snapshot: int | None = Field(default=None, ge=0)
    arrival_rate_per_second: float = Field(default=0, ge=0)
    cyrillic_count: bool = False
    refuse_clears: RefuseClears | None = None

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
    add_notifications: int = Field(default=0, ge=0)
    add_outgoing: int = Field(default=0, ge=0)


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
