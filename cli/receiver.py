"""``greenapi-migrate receiver``: the webhook/event receiver in the foreground (see docs/webhooks.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from receiver.settings import ReceiverConfigurationError, ReceiverSettings, get_receiver_settings
from cli.prefect_logging import set_up_prefect_logging
from cli.serve import add_dispatch_argument, dispatcher_for
from serving import serve_until_signalled

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def relay_line(settings: ReceiverSettings) -> str:
    """What the receiver does with GREEN-API's notifications, in one line (the app's host only, never its path)."""
    if settings.forward_url is None:
        return ("receiver: not relaying (no GREEN_API_RECEIVER_FORWARD_URL): do not make it the webhookUrl of an "
                "instance whose notifications an app needs")
    import httpx

    return f"receiver: relaying GREEN-API notifications to the app at {httpx.URL(settings.forward_url).netloc.decode()}"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="greenapi-migrate receiver",
        description="Turn authenticated HTTP (GREEN-API webhooks, other systems) into Prefect events. "
        "Settings: GREEN_API_RECEIVER_* (env or .env); GREEN_API_RECEIVER_SECRET is required. Events go to PREFECT_API_URL.",
    )
    p.add_argument("--host", help="interface to listen on (default: GREEN_API_RECEIVER_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: GREEN_API_RECEIVER_PORT or 8787; 0 picks a free port)")
    add_dispatch_argument(p, default="trigger")
    p.add_argument("--forward-to", metavar="URL", dest="forward_url",
                   help="relay: the app's webhook URL (default: GREEN_API_RECEIVER_FORWARD_URL). Every GREEN-API body goes on "
                        "to it unchanged; GREEN-API hears 200 only once the app answered 2xx; notifications of an account no "
                        "longer on the instance are held back. GREEN_API_RECEIVER_FORWARD_TOKEN goes to the app as a bearer token")
    return p


def _settings(args: argparse.Namespace) -> ReceiverSettings:
    """The receiver's settings with the flags over them; ReceiverConfigurationError when it cannot run."""
    overrides = {key: value for key, value in (("host", args.host), ("port", args.port), ("forward_url", args.forward_url))
                 if value is not None}
    settings = get_receiver_settings(**overrides)
    settings.require_secret()
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise ReceiverConfigurationError("PREFECT_API_URL is not set (the receiver emits events to a running Prefect server)")
    return settings


def run_receiver(argv: Sequence[str] | None = None) -> int:
    """Run in the foreground until Ctrl-C / SIGTERM. Prints its URL, never the secret. Exit 2 on a configuration
    error, 1 when it cannot listen or stops by itself."""
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ReceiverConfigurationError as exc:
        print(f"greenapi-migrate receiver: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from receiver.server import ReceiverServer

    set_up_prefect_logging()
    server = ReceiverServer(settings, port=settings.port, dispatcher=dispatcher_for(args.dispatch))
    try:
        server.start()
    except RuntimeError as exc:
        print(f"greenapi-migrate receiver: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"receiver listening on {server.url}", flush=True)
    print(relay_line(settings), flush=True)
    signalled = serve_until_signalled(server)
    print("receiver stopped", flush=True)
    return EXIT_OK if signalled else EXIT_FAILED  # the server thread ending by itself is a failure
