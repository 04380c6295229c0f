"""Hands events to Prefect over one long-lived events client, and says for sure when that failed.

Prefect's ``PrefectEventsClient.emit`` returns once the event is written to its websocket; the
server confirms receipt only at a "checkpoint" (a ping answered with a pong), by default every
700 events or 30 s. Until then it keeps the event and re-sends it after a reconnect. The receiver
answers 202 only when the event has reached the server, so it opens the client with
``checkpoint_every=1``: every ``emit`` waits for the pong (one round trip on loopback, fine at
webhook rates).

When an emit fails (the server is down, restarting, unreachable) the client is closed and
dropped: its only unconfirmed event is the one that failed, which the caller answers with 503 so
the sender re-sends it. The next emit opens a fresh client. Few reconnection attempts and a
timeout keep that 503 quick instead of Prefect's default of 10 attempts with 1 s sleeps.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from prefect.events import Event
from prefect.events.clients import EventsClient, get_events_client
from prefect.settings import PREFECT_API_URL

logger = logging.getLogger("greenapi.receiver")


class EmitError(RuntimeError):
    """The event did not reach Prefect; nothing may be reported as accepted."""


class Emitter(Protocol):
    @property
    def connected(self) -> bool: ...

    async def start(self) -> None: ...

    async def emit(self, event: Event) -> None: ...

    async def close(self) -> None: ...


class PrefectEventEmitter:
    """One Prefect events client for the app's lifetime, re-opened after a failure.

    Uses the ``PREFECT_API_URL`` in effect where ``start``/``emit`` run. Refuses to start
    Prefect's ephemeral server when no URL is set: its events would reach no automation.
    Emits are serialised (one websocket, and a reconnect must not race a send).
    """

    def __init__(self, *, reconnection_attempts: int = 2, emit_timeout_seconds: float = 15.0, open_timeout_seconds: float = 15.0) -> None:
        self.reconnection_attempts = reconnection_attempts
        self.emit_timeout_seconds = emit_timeout_seconds
        self.open_timeout_seconds = open_timeout_seconds
        self._client: EventsClient | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def _open(self) -> EventsClient:
        if not PREFECT_API_URL.value():
            raise EmitError("PREFECT_API_URL is not set")
        client = get_events_client(reconnection_attempts=self.reconnection_attempts, checkpoint_every=1)
        try:
            await asyncio.wait_for(client.__aenter__(), self.open_timeout_seconds)
        except Exception as exc:
            await _close_quietly(client)
            raise EmitError(f"cannot connect to the Prefect events API: {type(exc).__name__}") from exc
        return client

    async def start(self) -> None:
        """Open the client now; when Prefect is unreachable, start anyway and retry on the first emit."""
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await self._open()
                except EmitError as exc:
                    logger.warning("receiver: %s; will retry when an event arrives", exc)

    async def emit(self, event: Event) -> None:
        async with self._lock:
            if self._client is None:
                self._client = await self._open()
            client = self._client
            try:
                await asyncio.wait_for(client.emit(event), self.emit_timeout_seconds)
            except Exception as exc:
                self._client = None
                await _close_quietly(client)
                raise EmitError(f"Prefect did not take the event: {type(exc).__name__}") from exc

    async def close(self) -> None:
        async with self._lock:
            client, self._client = self._client, None
        if client is not None:
            await _close_quietly(client)


async def _close_quietly(client: EventsClient) -> None:
    try:
        await asyncio.wait_for(client.__aexit__(None, None, None), 5)
    except Exception as exc:  # a dead connection may fail to close; nothing left to do
        logger.debug("receiver: closing the events client failed: %s", type(exc).__name__)
