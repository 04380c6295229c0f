"""Hands a report to a Prefect task worker (``--dispatch background``).

Why: with ``--dispatch trigger`` the run is created by the deployment's event trigger and started by
Prefect's runner in a new process (about 2 s here). A background task is picked up by a task worker
that is already running, within a fraction of a second (bench/NOTES.md).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID

from domain import Reason

logger = logging.getLogger("greenapi.receiver")


class DispatchError(RuntimeError):
    """The report could not be handed over; nothing may be reported as accepted."""


class BackgroundDispatcher:
    """Submits the background task that handles a report (``flows.reported.handle_reported_change``, handed in
    by the command that starts the receiver) for a task worker to run."""

    def __init__(self, task: Any, *, timeout_seconds: float = 15.0) -> None:
        self.task, self.timeout_seconds = task, timeout_seconds

    async def dispatch(self, *, event_id: UUID, id_instance: int, reason: Reason) -> UUID:
        """The task run's id; DispatchError when Prefect did not take it."""
        try:
            # .delay() is synchronous: in a thread, so the receiver's event loop keeps serving meanwhile.
            future = await asyncio.wait_for(
                asyncio.to_thread(self.task.delay, id_instance, reason, str(event_id)), self.timeout_seconds
            )
        except Exception as exc:
            raise DispatchError(f"Prefect did not take the report: {type(exc).__name__}") from None
        return future.task_run_id
