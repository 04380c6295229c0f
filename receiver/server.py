"""Run the receiver in a background thread (tests, ``serve``); ``greenapi-migrate receiver`` runs it in the
foreground (cli/receiver.py)."""

from __future__ import annotations

from typing import Any

from receiver.settings import ReceiverSettings
from serving import ThreadedServer


class ReceiverServer(ThreadedServer):
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
        super().__init__(create_app(settings, **app_kwargs), host or settings.host,
                         settings.port if port is None else port, name="receiver", lifespan="on",
                         start_timeout=start_timeout, stop_timeout=10.0)
