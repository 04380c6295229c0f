"""``greenapi-migrate serve``: everything one machine needs, against the Prefect server in PREFECT_API_URL.

Serves the deployments declared in prefect.yaml (schedules and event triggers included) in this
process, without a work pool, and runs the webhook receiver beside them. handle-account-change runs
start inside this process (deploy.warm_runs), at most ``--warm-limit`` at once; with ``--warm-limit 0``
they start in a new process each, as Prefect's runner does for the sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys


def serve_all(*, with_receiver: bool, limit: int | None, poll_seconds: float, warm_limit: int = 50, warm_poll_seconds: float = 0.25) -> int:
    from prefect.settings import PREFECT_API_URL

    from deploy.project import deployment_specs, load_flow, runner_deployments
    from flows.sweep_instances import HANDLE_DEPLOYMENT

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
                # The deployment is served right here, so the receiver starts its runs itself.
                settings = get_receiver_settings(dispatch="direct")
            settings.require_secret()
        except ReceiverConfigurationError as exc:  # no secret, bad port...: one line, nothing started
            print(f"greenapi-migrate serve: receiver: configuration error: {exc}", file=sys.stderr)
            return 2
        receiver = ReceiverServer(settings, port=settings.port)
        receiver.start()
        print(f"receiver listening on {receiver.url}", flush=True)
    deployments = runner_deployments()
    warm = None
    if warm_limit > 0:
        from deploy.warm_runs import WarmRunner

        spec = next(s for s in deployment_specs() if s["name"] == HANDLE_DEPLOYMENT.split("/")[1])
        warm = WarmRunner(load_flow(spec), HANDLE_DEPLOYMENT,
                          poll_seconds=warm_poll_seconds, limit=warm_limit)
    try:
        asyncio.run(_serve(deployments, warm, limit=limit, poll_seconds=poll_seconds))
    except KeyboardInterrupt:
        pass
    finally:
        if receiver is not None:
            receiver.stop()
    return 0


async def _serve(deployments: list, warm, *, limit: int | None, poll_seconds: float) -> None:
    from prefect import aserve

    served = deployments
    warm_task = None
    if warm is not None:
        # Registered (with its triggers) but left out of Prefect's runner: one executor per deployment,
        # so no run of it is ever started in a spawned process that the warm runner would have started faster.
        handle = next(d for d in deployments if d.name == warm.deployment_name.split("/")[1])
        await handle.aapply()
        served = [d for d in deployments if d is not handle]
        warm_task = asyncio.create_task(warm.run())
    try:
        # Scheduled sweeps wait for the next poll: Prefect's default of 10 s.
        await aserve(*served, limit=limit, query_seconds=poll_seconds)
    finally:
        if warm_task is not None:
            warm_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await warm_task
