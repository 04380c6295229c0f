"""``greenapi-migrate serve``: everything one machine needs, against the Prefect server in PREFECT_API_URL.

Serves the deployments declared in prefect.yaml (schedules and event triggers included) with Prefect's
runner, without a work pool; runs a Prefect task worker for the reports the receiver hands over
(``flows.reported.handle_reported_change``); and runs the webhook receiver beside them.
"""

from __future__ import annotations

import asyncio
import sys

# How often Prefect's runner looks for scheduled runs of the deployments (its own default is 10 s).
DEFAULT_POLL_SECONDS = 1.0


def serve_all(*, with_receiver: bool, limit: int | None, poll_seconds: float, task_limit: int = 50) -> int:
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
            if "dispatch" not in settings.model_fields_set:
                # A task worker runs right here, so the receiver hands its reports to it.
                settings = get_receiver_settings(dispatch="background")
            settings.require_secret()
        except ReceiverConfigurationError as exc:  # no secret, bad port...: one line, nothing started
            print(f"greenapi-migrate serve: receiver: configuration error: {exc}", file=sys.stderr)
            return 2
        receiver = ReceiverServer(settings, port=settings.port)
        receiver.start()
        print(f"receiver listening on {receiver.url}", flush=True)
        from cli.receiver import relay_line

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
