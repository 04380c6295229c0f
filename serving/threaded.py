"""uvicorn in a daemon thread (tests, the demo, ``serve``), and the foreground loop of a server command."""

from __future__ import annotations

import contextvars
import signal
import threading
import time
from typing import Any, Literal

import uvicorn


class ThreadedServer:
    """uvicorn serving ``app`` in a daemon thread named ``name``.

    ``start()`` returns once the socket is listening (and, with ``lifespan="on"``, the app's lifespan has run);
    ``url`` then holds the real address (port 0 picks a free port). The thread runs in a copy of the caller's
    context, so context-bound settings in effect at ``start()`` (e.g. Prefect's ``temporary_settings``) are the
    ones used. Usable as a context manager.
    """

    def __init__(self, app: Any, host: str, port: int, *, name: str, lifespan: Literal["on", "off"] = "off",
                 start_timeout: float = 10.0, stop_timeout: float = 5.0, keep_alive_seconds: int = 5) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._lifespan = lifespan
        self._keep_alive_seconds = keep_alive_seconds
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._bound_port: int | None = None

    @property
    def url(self) -> str:
        if self._bound_port is None:
            raise RuntimeError(f"the {self.name} is not running; call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._bound_port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "ThreadedServer":
        """Listen; returns once the socket is listening. RuntimeError when it cannot (port taken, timeout)."""
        if self.running:
            return self
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            access_log=False,  # the access log would print URLs, and GREEN-API's URLs carry the token
            log_level="warning",
            lifespan=self._lifespan,
            timeout_graceful_shutdown=2,
            timeout_keep_alive=self._keep_alive_seconds,
        )
        server = uvicorn.Server(config)
        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(server.run,), name=f"greenapi-{self.name}", daemon=True)
        thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"{self.name} failed to start on {self.host}:{self.port}")
            if time.monotonic() > deadline:
                server.should_exit = True
                raise RuntimeError(f"{self.name} did not start listening in time")
            time.sleep(0.01)
        sockets = [sock for srv in (server.servers or []) for sock in srv.sockets]
        self._bound_port = sockets[0].getsockname()[1] if sockets else self.port
        self._server, self._thread = server, thread
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Ask uvicorn to exit and wait for its thread (``stop_timeout`` by default)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(self.stop_timeout if timeout is None else timeout)
        self._server = self._thread = None
        self._bound_port = None

    def __enter__(self) -> "ThreadedServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve_until_signalled(server: ThreadedServer) -> bool:
    """Wait until SIGTERM or SIGINT (Ctrl-C), or until the server's thread ends by itself, then stop the server.
    True when a signal ended it; False when the server ended on its own (a failure)."""
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)  # also when started with SIGINT ignored (e.g. `&`)
    try:
        while not stop.is_set() and server.running:
            stop.wait(0.5)
    except KeyboardInterrupt:
        stop.set()
    finally:
        server.stop()
    return stop.is_set()
