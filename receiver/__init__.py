"""The receiver: authenticated, validated HTTP in, Prefect events out (nothing more).

``create_app(settings)`` builds the ASGI app, ``ReceiverServer`` runs it in a thread,
``greenapi-migrate receiver`` runs it in the foreground. See docs/webhooks.md.
"""

from receiver.settings import ReceiverConfigurationError, ReceiverSettings, get_receiver_settings

__all__ = ["ReceiverConfigurationError", "ReceiverSettings", "get_receiver_settings", "create_app", "ReceiverServer"]


def __getattr__(name: str):  # keep `import receiver` light: FastAPI and uvicorn load on first use
    if name == "create_app":
        from receiver.app import create_app

        return create_app
    if name == "ReceiverServer":
        from receiver.server import ReceiverServer

        return ReceiverServer
    raise AttributeError(name)
