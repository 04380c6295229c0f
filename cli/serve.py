"""``greenapi-migrate serve``: everything one machine needs, against the Prefect server in PREFECT_API_URL.

Serves the deployments declared in prefect.yaml (schedules and event triggers included) with Prefect's
runner, without a work pool; runs a Prefect task worker for the reports the receiver hands over
(``flows.reported.handle_reported_change``); and runs the webhook receiver beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

# How often Prefect's runner looks for scheduled runs of the deployments (its own default is 10 s).
DEFAULT_POLL_SECONDS = 1.0


def add_dispatch_argument(parser: argparse.ArgumentParser, default: str) -> None:
    """``--dispatch``, how the receiver's reports become runs (``receiver`` and ``serve``, each its own default)."""
    parser.add_argument("--dispatch", choices=("trigger", "background"), default=default,
                        help="how a report becomes a run: trigger (the deployment's event trigger starts it, on a runner "
                             "or a worker) or background (a task worker runs it: serve's own or a `greenapi-migrate "
                             f"task-worker`) (default: {default})")


def dispatcher_for(dispatch: str) -> Any:
    """The receiver's ``dispatcher`` for ``--dispatch``: a BackgroundDispatcher, or None when the trigger starts runs."""
    if dispatch != "background":
        return None
    from flows.reported import handle_reported_change
    from receiver.dispatch import BackgroundDispatcher

    return BackgroundDispatcher(handle_reported_change)


def serve_all(*, with_receiver: bool, limit: int | None, poll_seconds: float, task_limit: int = 50,
              dispatch: str = "background") -> int:
    from prefect.settings import PREFECT_API_URL

    from deploy.project import runner_deployments

    if not PREFECT_API_URL.value():
        print(
            "greenapi-migrate: serve needs a running Prefect server: start one with `prefect server start` "
            "and set PREFECT_API_URL=http://127.0.0.1:4200/api",
            file=sys.stderr,
        )
        return 2
    receiver = None
    if with_receiver:
        from receiver.server import ReceiverServer
        from receiver.settings import ReceiverConfigurationError, get_receiver_settings

        try:
            settings = get_receiver_settings()
            settings.require_secret()
        except ReceiverConfigurationError as exc:  # no secret, bad port...: one line, nothing started
            print(f"greenapi-migrate serve: receiver: configuration error: {exc}", file=sys.stderr)
            return 2
        from cli.receiver import relay_line

        receiver = ReceiverServer(settings, port=settings.port, dispatcher=dispatcher_for(dispatch))
        receiver.start()
        print(f"receiver listening on {receiver.url}", flush=True)
        print(relay_line(settings), flush=True)
    try:
        asyncio.run(_serve(runner_deployments(), limit=limit, poll_seconds=poll_seconds, task_limit=task_limit))
    except KeyboardInterrupt:
        pass
    finally:
        if receiver is not None:
            receiver.stop()
    return 0


async def _serve(deployments: list, *, limit: int | None, poll_seconds: float, task_limit: int) -> None:
    from prefect import aserve

    from cli.task_worker import serve_reports

    worker = asyncio.create_task(serve_reports(limit=task_limit))
    try:
        await aserve(*deployments, limit=limit, query_seconds=poll_seconds)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
