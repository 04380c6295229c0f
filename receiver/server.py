"""Run the receiver: in a background thread (tests) or in the foreground (``greenapi-migrate receiver``)."""

from __future__ import annotations

import argparse
import contextvars
import signal
import sys
import threading
import time
from typing import Any, Sequence

import uvicorn

from receiver.settings import ReceiverConfigurationError, ReceiverSettings, get_receiver_settings

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


class ReceiverServer:
    """uvicorn serving :func:`receiver.app.create_app` in a daemon thread.

    ``ReceiverServer(settings, port=0, host=None, **create_app_kwargs)``: ``port`` overrides
    ``settings.port`` (0 picks a free port), ``host`` overrides ``settings.host``. ``start()``
    returns once the socket is listening and the lifespan (the Prefect events client) has run;
    ``url`` then holds the real address. The thread runs in a copy of the caller's context, so the
    Prefect settings in effect at ``start()`` (e.g. ``temporary_settings``) are the ones used.
    Usable as a context manager.
    """

    def __init__(
        self,
        settings: ReceiverSettings,
        port: int | None = 0,
        host: str | None = None,
        *,
        start_timeout: float = 30.0,
        **app_kwargs: Any,
    ) -> None:
        from receiver.app import create_app

        self.settings = settings
        self.host = host or settings.host
        self.port = settings.port if port is None else port
        self.start_timeout = start_timeout
        self.app = create_app(settings, **app_kwargs)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._bound_port: int | None = None

    @property
    def url(self) -> str:
        if self._bound_port is None:
            raise RuntimeError("the receiver is not running; call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._bound_port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "ReceiverServer":
        if self.running:
            return self
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            access_log=False,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(server.run,), name="greenapi-receiver", daemon=True)
        thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"receiver failed to start on {self.host}:{self.port}")
            if time.monotonic() > deadline:
                server.should_exit = True
                raise RuntimeError("receiver did not start listening in time")
            time.sleep(0.01)
        sockets = [sock for srv in (server.servers or []) for sock in srv.sockets]
        self._bound_port = sockets[0].getsockname()[1] if sockets else self.port
        self._server, self._thread = server, thread
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = self._thread = None
        self._bound_port = None

    def __enter__(self) -> "ReceiverServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


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
    p.add_argument("--forward-to", metavar="URL", dest="forward_url",
                   help="relay: the app's webhook URL (default: GREEN_API_RECEIVER_FORWARD_URL). Every GREEN-API body goes on "
                        "to it unchanged; GREEN-API hears 200 only once the app answered 2xx; notifications of an account no "
                        "longer on the instance are held back. GREEN_API_RECEIVER_FORWARD_TOKEN goes to the app as a bearer token")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run in the foreground until Ctrl-C / SIGTERM. Prints its URL, never the secret."""
    args = _parser().parse_args(argv)
    overrides = {key: value for key, value in (("host", args.host), ("port", args.port), ("forward_url", args.forward_url))
                 if value is not None}
    try:
        settings = get_receiver_settings(**overrides)
        settings.require_secret()
        from prefect.settings import PREFECT_API_URL

        if not PREFECT_API_URL.value():
            raise ReceiverConfigurationError("PREFECT_API_URL is not set (the receiver emits events to a running Prefect server)")
    except ReceiverConfigurationError as exc:
        print(f"greenapi-migrate receiver: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    server = ReceiverServer(settings, port=settings.port)
    try:
        server.start()
    except RuntimeError as exc:
        print(f"greenapi-migrate receiver: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"receiver listening on {server.url}", flush=True)
    print(relay_line(settings), flush=True)

    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
    try:
        while not stop.is_set() and server.running:
            stop.wait(0.5)
    except KeyboardInterrupt:
        stop.set()
    finally:
        server.stop()
        print("receiver stopped", flush=True)
    return EXIT_OK if stop.is_set() else EXIT_FAILED  # the server thread ending by itself is a failure
