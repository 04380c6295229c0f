"""Helpers the e2e modules share."""

from __future__ import annotations

import asyncio
import http.server
import secrets
import threading
import time

from tasks import GreenApiInstance

# The receiver's answers to a report it took: 200 to GREEN-API's webhooks, 202 to other systems' requests.
ACCEPTED = (200, 202)


async def register_instances(ids, *, api_url: str = "http://127.0.0.1:9", name_prefix: str = "e2e") -> None:
    """A greenapi-instance block for each idInstance (the receiver acts only on registered instances).
    The default apiUrl answers nothing: for tests that never reach GREEN-API."""
    # The block type first, once: concurrent first saves on a fresh server race to create it (409).
    await GreenApiInstance.aregister_type_and_schema()
    await asyncio.gather(*(
        GreenApiInstance(api_url=api_url, id_instance=i, api_token_instance=secrets.token_hex(25)).asave(f"{name_prefix}-{i}", overwrite=True)
        for i in ids
    ))


class HttpCatcher:
    """A loopback HTTP endpoint (port 0, in a thread) that answers 200 to everything and keeps each request's
    method, path and body as text; ``wait_for`` polls them until one matches, within a deadline."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        catcher = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _keep(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", errors="replace")
                with catcher._lock:
                    catcher.requests.append({"method": self.command, "path": self.path, "body": body})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT = do_PATCH = do_GET = _keep

            def log_message(self, *args) -> None:  # quiet: pytest shows what the test asserts
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/notify"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def bodies(self) -> list[str]:
        with self._lock:
            return [request["body"] for request in self.requests]

    async def wait_for(self, predicate, *, timeout: float, what: str) -> str:
        """The first body for which ``predicate(body)`` is true, polling until ``timeout`` seconds have passed."""
        deadline = time.monotonic() + timeout
        while True:
            for body in self.bodies():
                if predicate(body):
                    return body
            if time.monotonic() > deadline:
                raise AssertionError(f"no request with {what} within {timeout} s; received: {self.bodies()!r}")
            await asyncio.sleep(0.25)

    def __enter__(self) -> "HttpCatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
