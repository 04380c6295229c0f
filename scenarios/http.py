"""A small asyncio HTTP/1.1 server on loopback, in its own thread and event loop: the app stub and the
proxy are built on it. Much cheaper per request than uvicorn with h11 (no httptools here), keep-alive,
Content-Length bodies only (what httpx sends). It can stop listening and drop its connections (a process
going down) and listen again on the same port (coming back)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Awaitable, Callable

if TYPE_CHECKING:
    import httpx

REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
           404: "Not Found", 411: "Length Required", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout"}
MAX_HEAD_BYTES = 64 * 1024


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Response]]


class LoopbackHttpServer:
    """``LoopbackHttpServer(handler).start()``; ``url``; ``stop_listening()`` / ``listen()`` to go down and up
    on the same port; ``close()``. ``call(coro)`` runs a coroutine on the server's loop."""

    def __init__(self, handler: Handler, *, host: str = "127.0.0.1", port: int = 0, name: str = "http") -> None:
        self.handler, self.host, self.port, self.name = handler, host, port, name
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def listening(self) -> bool:
        return self._server is not None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coroutine, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def start(self) -> "LoopbackHttpServer":
        self._thread.start()
        self.listen()
        return self

    def listen(self) -> None:
        """Listen (again) on ``port`` (a free one the first time when 0)."""
        self.call(self._listen())

    async def _listen(self) -> None:
        if self._server is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._serve, sock=sock, backlog=1024)

    def stop_listening(self) -> None:
        """Down: refuse new connections and drop the open ones (requests in progress get no answer)."""
        self.call(self._stop_listening())

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._connections):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._connections.clear()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            self.stop_listening()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def __enter__(self) -> "LoopbackHttpServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                try:
                    method, path, _version = lines[0].split(" ", 2)
                except ValueError:
                    return
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    await self._write(writer, Response(411), close=True)
                    return
                length = int(headers.get("content-length") or 0)
                try:
                    body = await reader.readexactly(length) if length else b""
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                try:
                    response = await self.handler(Request(method, path, headers, body))
                except Exception:  # noqa: BLE001  a stub's bug is a 500, not a dead connection
                    response = Response(500, b"stub error")
                if response is None or writer.transport.is_closing():
                    return  # the handler dropped the connection (down mid-request)
                close = headers.get("connection", "").lower() == "close"
                await self._write(writer, response, close=close)
                if close:
                    return
        finally:
            self._connections.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, response: Response, *, close: bool) -> None:
        headers = {"content-length": str(len(response.body)), **response.headers}
        if close:
            headers["connection"] = "close"
        head = f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Status')}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(head.encode("latin-1") + response.body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()


class LoopbackService:
    """What the app stub and the proxy share: a LoopbackHttpServer running ``self._handle``, and an outgoing
    httpx client (``self._http``, opened on the server's loop when first needed) closed with it."""

    _server: LoopbackHttpServer
    _http: "httpx.AsyncClient | None" = None

    def start(self):
        self._server.start()
        return self

    def close(self) -> None:
        if self._http is not None:
            try:
                self._server.call(self._http.aclose(), timeout=5)
            except Exception:  # noqa: BLE001  (closing after the loop stopped: nothing left to close)
                pass
        self._server.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
