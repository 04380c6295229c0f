"""Running our ASGI apps (the emulator, the receiver) with uvicorn in a background thread, or in the foreground
until a signal. Depends on nothing else of ours."""

from serving.threaded import ThreadedServer, serve_until_signalled

__all__ = ["ThreadedServer", "serve_until_signalled"]
