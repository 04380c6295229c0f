"""Starts a handle-account-change run straight from the receiver (``dispatch = "direct"``).

Why: with ``dispatch = "trigger"`` the run is created by the deployment's event trigger, inside the
Prefect server's trigger and action services. Those work through every event the server receives
(each task run's state changes, logs, the flows' own events), so under load a report waits seconds
behind them (bench/NOTES.md). Here the receiver creates the run with one API call before it answers.

The run's idempotency key is the receiver's deterministic event id: a re-delivered webhook or
request, even after a receiver restart, gets the run it started the first time and starts no other.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from prefect.client.orchestration import PrefectClient, get_client
from prefect.settings import PREFECT_API_URL

from tasks.quick_api import QuickPrefectAPI, QuickRetriesExhausted
from tasks.accounts import Reason

logger = logging.getLogger("greenapi.receiver")


class DispatchError(RuntimeError):
    """The run could not be started; nothing may be reported as accepted."""


@dataclass(frozen=True)
class StartedRun:
    id: UUID
    name: str


class RunStarter(Protocol):
    async def start(self) -> None: ...

    async def start_run(self, *, event_id: UUID, id_instance: int, reason: Reason) -> StartedRun: ...

    async def close(self) -> None: ...


def idempotency_key(event_id: UUID) -> str:
    return f"greenapi-receiver-{event_id}"


class DeploymentRunStarter:
    """Creates runs of one deployment over a long-lived Prefect client (the PREFECT_API_URL in effect)."""

    def __init__(self, deployment_name: str, *, timeout_seconds: float = 15.0) -> None:
        self.deployment_name = deployment_name
        self.timeout_seconds = timeout_seconds
        self._client: PrefectClient | None = None
        self._quick: QuickPrefectAPI | None = None
        self._deployment_id: UUID | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        if PREFECT_API_URL.value():
            self._client = get_client()
            await self._client.__aenter__()
            self._quick = QuickPrefectAPI(queue_writes=False)

    async def start_run(self, *, event_id: UUID, id_instance: int, reason: Reason) -> StartedRun:
        try:
            return await asyncio.wait_for(self._start_run(event_id, id_instance, reason), self.timeout_seconds)
        except DispatchError:
            raise
        except Exception as exc:
            raise DispatchError(f"Prefect did not start the run: {type(exc).__name__}") from None

    async def _start_run(self, event_id: UUID, id_instance: int, reason: Reason) -> StartedRun:
        client = self._client
        if client is None:
            raise DispatchError("PREFECT_API_URL is not set")
        async with self._lock:
            if self._deployment_id is None:
                try:
                    self._deployment_id = (await client.read_deployment_by_name(self.deployment_name)).id
                except Exception as exc:
                    raise DispatchError(f"deployment {self.deployment_name} not found: {type(exc).__name__}") from None
        request = dict(
            parameters={"reason": reason.value, "instance": str(id_instance), "clear_outgoing": False},
            idempotency_key=idempotency_key(event_id),
            tags=["greenapi", "receiver"],
        )
        try:
            try:
                run = await self._quick.create_flow_run_from_deployment(self._deployment_id, **request)
                return StartedRun(id=UUID(run["id"]), name=run["name"])
            except QuickRetriesExhausted:  # the server stays busy: Prefect's client, with its longer retries
                created = await client.create_flow_run_from_deployment(self._deployment_id, **request)
                return StartedRun(id=created.id, name=created.name)
        except Exception:
            self._deployment_id = None  # re-read next time: the deployment may have been re-created
            raise

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await self._quick.aclose()
            await client.__aexit__(None, None, None)
