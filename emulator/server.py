"""Run the emulator in a background thread (tests, demo, benchmarks); ``python -m emulator`` runs it in the
foreground (cli/emulator.py)."""

from __future__ import annotations

from serving import ThreadedServer

from .app import build_app
from .config import EmulatorConfig
from .delivery import Deliverer
from .state import EmulatorState


class EmulatorServer(ThreadedServer):
    """uvicorn serving the emulator in a daemon thread, and the webhook deliverer in another.

    ``EmulatorServer(state_or_config=None, host="127.0.0.1", port=0)``; ``start()`` returns once
    the socket is listening; ``url`` then holds the real address (port 0 picks a free port).
    Usable as a context manager.
    """

    def __init__(
        self,
        state_or_config: EmulatorState | EmulatorConfig | dict | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        start_timeout: float = 10.0,
    ) -> None:
        if isinstance(state_or_config, EmulatorState):
            self.state = state_or_config
        else:
            self.state = EmulatorState(state_or_config)
        # Clients (tests, benchmarks) keep connections idle for seconds between bursts: uvicorn's 5 s default
        # closes them under a request about to be sent on them (a ReadError for the client).
        super().__init__(build_app(self.state), host, port, name="emulator", start_timeout=start_timeout,
                         keep_alive_seconds=60)
        self.deliverer = Deliverer(self.state)

    def start(self) -> "EmulatorServer":
        """Listen, and start delivering webhooks; returns once both run."""
        if self.running:
            return self
        self.app.state.stopping = False
        super().start()
        try:
            self.deliverer.start()
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop delivering (in-flight POSTs are cancelled), then serving (long-polls and delays end early)."""
        self.deliverer.stop()
        self.app.state.stopping = True
        super().stop(timeout)
