"""``greenapi-migrate serve``: everything one machine needs, against the Prefect server in PREFECT_API_URL.

Serves the deployments declared in prefect.yaml (schedules and event triggers included) in this
process, without a work pool, and runs the webhook receiver beside them.
"""

from __future__ import annotations

import sys


def serve_all(*, with_receiver: bool, limit: int | None, poll_seconds: float) -> int:
    from prefect import serve
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
        receiver = ReceiverServer(settings, port=settings.port)
        receiver.start()
        print(f"receiver listening on {receiver.url}", flush=True)
    try:
        # Runs started by events wait for the next poll: Prefect's default of 10 s is most of the latency.
        serve(*runner_deployments(), limit=limit, query_seconds=poll_seconds)
    finally:
        if receiver is not None:
            receiver.stop()
    return 0
