"""``greenapi-migrate task-worker``: a Prefect task worker for the reports the receiver hands over.

Any number of them may run, on any machine that reaches the Prefect server; each report goes to one.
They need the background tasks' parameter storage in common with the receiver: on one machine that is
the local default (``PREFECT_RESULTS_LOCAL_STORAGE_PATH``); across machines, a storage block named in
``PREFECT_TASKS_SCHEDULING_DEFAULT_STORAGE_BLOCK``.
"""

from __future__ import annotations

import asyncio
import sys


async def serve_reports(*, limit: int) -> None:
    """Serve ``handle-reported-change`` until cancelled, at most ``limit`` at once."""
    from prefect.task_worker import serve

    from deploy.automations import apply_crashed_runs
    from flows.reported import handle_reported_change

    await apply_crashed_runs()  # the failure notifications are `automations apply`'s alone
    await serve(handle_reported_change, limit=limit)


def run_task_worker(*, limit: int) -> int:
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        print("greenapi-migrate: task-worker needs a running Prefect server: set PREFECT_API_URL", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve_reports(limit=limit))
    except KeyboardInterrupt:
        pass
    return 0
