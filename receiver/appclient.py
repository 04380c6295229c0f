"""The relay's HTTP/1.1 client for its one destination, the operator's app: h11 on asyncio streams, one
keep-alive connection per instance.

Why not httpx here: the relay makes one POST per notification, and httpx's pool (anyio, httpcore) cost about
0.6 ms of CPU each (bench/NOTES.md), more than the rest of the relay together. The protocol itself is h11's
(the same parser httpx and uvicorn use); this module only owns the connections.
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

import h11

# Idle keep-alive connections kept per instance (GREEN-API sends an instance's notifications one at a time).
IDLE_PER_KEY = 2


class AppUnreachable(ConnectionError):
    """No answer from the app: the connection failed or closed before a whole response came."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.h11 = h11.Connection(our_role=h11.CLIENT)

    def usable(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing()

    async def exchange(self, request: h11.Request, body: bytes) -> int:
        """One request, the whole response read; its status. Raises AppUnreachable, h11.ProtocolError."""
        self.writer.write(self.h11.send(request) + self.h11.send(h11.Data(data=body)) + self.h11.send(h11.EndOfMessage()))
        await self.writer.drain()
        status = None
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(await self.reader.read(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage) and status is not None:
                return status
            elif isinstance(event, h11.ConnectionClosed):
                raise AppUnreachable("the app closed the connection before answering")

    def reusable(self) -> bool:
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
            return self.usable()
        return False

    def close(self) -> None:
        self.writer.close()


class AppClient:
    """``await post(body, headers, key)`` -> the app's status. ``key`` groups connections (the instance)."""

    def __init__(self, url: str, timeout_seconds: float) -> None:
        parts = urlsplit(url)
        self._tls = ssl.create_default_context() if parts.scheme == "https" else None
        self._host, self._port = parts.hostname or "", parts.port or (443 if self._tls else 80)
        self._host_header = parts.netloc.rpartition("@")[2].encode("idna")
        self._target = ((parts.path or "/") + (f"?{parts.query}" if parts.query else "")).encode()
        self._timeout = timeout_seconds
        self._idle: dict[object, list[_Connection]] = {}

    async def post(self, body: bytes, headers: list[tuple[bytes, bytes]], key: object = None) -> int:
        request = h11.Request(method=b"POST", target=self._target, headers=[
            (b"Host", self._host_header), (b"Content-Length", str(len(body)).encode()), *headers])
        async with asyncio.timeout(self._timeout):
            connection = self._take(key)
            if connection is not None:
                try:
                    return self._keep(key, connection, await connection.exchange(request, body))
                except (AppUnreachable, OSError, h11.ProtocolError):
                    connection.close()  # closed by the app while idle: once more, on a new connection
            connection = await self._open()
            try:
                return self._keep(key, connection, await connection.exchange(request, body))
            except h11.ProtocolError as exc:
                connection.close()
                raise AppUnreachable(f"the app's answer is not HTTP/1.1 ({type(exc).__name__})") from None
            except BaseException:
                connection.close()
                raise

    def _take(self, key: object) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if connection.usable():
                return connection
            connection.close()
        return None

    def _keep(self, key: object, connection: _Connection, status: int) -> int:
        idle = self._idle.setdefault(key, [])
        if connection.reusable() and len(idle) < IDLE_PER_KEY:
            idle.append(connection)
        else:
            connection.close()
        return status

    async def _open(self) -> _Connection:
        try:
            reader, writer = await asyncio.open_connection(self._host, self._port, ssl=self._tls)
        except OSError as exc:
            raise AppUnreachable(f"cannot connect ({type(exc).__name__})") from None
        return _Connection(reader, writer)

    async def close(self) -> None:
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()
