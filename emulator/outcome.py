"""What the HTTP layer answers to one GREEN-API request, as the rules decided it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Outcome:
    """What the HTTP layer should answer to one GREEN-API request."""

    status: int = 200
    payload: Any = None  # a JSON value, used when ``text`` is None
    text: str | None = None  # a raw body (non-JSON answers)
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    fault: str | None = None
    # Set by GreenApi.dispatch() for the app to act on:
    instance: int | None = None
    method: str | None = None
    token_ok: bool | None = None
    delay_seconds: float = 0.0  # sleep, then ask answer() for the normal reply
    faults_cleared_seen: int = 0  # the instance's clear_faults() count when the delay began: a later one ends it
    disconnect: bool = False  # drop the connection without a response
    poll_until: float | None = None  # receiveNotification long-poll deadline (clock time)
    query: dict[str, str] = field(default_factory=dict)
    extra: str | None = None
    body: bytes = b""  # the request body (setSettings); never logged
    received_at: float | None = None  # clock time the request arrived (a delayed answer comes later)
