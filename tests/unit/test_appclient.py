"""The relay's HTTP/1.1 client (receiver/appclient.py) against a raw asyncio server on loopback: what it sends,
keep-alive, an app that closes connections, chunked answers, a timeout, an answer that is not HTTP."""

from __future__ import annotations

import asyncio

import pytest

from receiver.appclient import AppClient, AppUnreachable
from tests.helpers import await_until

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class RawApp:
    """A loopback server that answers each request it reads with ``answer`` (after ``delay`` seconds), and
    keeps what it read; ``close_after`` closes the connection after answering; ``ended`` counts the connections
    it is done with."""

    def __init__(self, answer: bytes = OK, *, close_after: bool = False, delay: float = 0.0) -> None:
        self.answer, self.close_after, self.delay = answer, close_after, delay
        self.connections, self.ended, self.requests = 0, 0, []
        self.writers: list[asyncio.StreamWriter] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
                self.requests.append(head + await reader.readexactly(length))
                await asyncio.sleep(self.delay)
                writer.write(self.answer)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self.ended += 1

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/hook?x=1"

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        for writer in self.writers:
            writer.close()


async def test_it_sends_the_body_unchanged_and_keeps_one_connection_per_key():
    app = RawApp()
    async with app as url:
        client = AppClient(url, 5)
        statuses = [await client.post(b'{"a": 1}', [(b"Authorization", b"Bearer t")], key=7) for _ in range(3)]
        await client.post(b"{}", [], key=8)
        await client.close()
    assert statuses == [200, 200, 200] and app.connections == 2
    first = app.requests[0]
    assert first.startswith(b"POST /hook?x=1 HTTP/1.1\r\n") and b"\r\nAuthorization: Bearer t\r\n" in first
    assert first.endswith(b'\r\n\r\n{"a": 1}') and b"Host: 127.0.0.1:" in first


async def test_an_app_that_closes_connections_is_still_reached():
    app = RawApp(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", close_after=True)
    async with app as url:
        client = AppClient(url, 5)
        statuses = [await client.post(b"{}", [], key=1) for _ in range(3)]
    assert statuses == [503] * 3 and app.connections == 3


async def test_a_keep_alive_connection_the_app_dropped_while_idle_is_replaced():
    app = RawApp()
    async with app as url:
        client = AppClient(url, 5)
        await client.post(b"{}", [], key=1)
        for writer in app.writers:  # the app drops the idle connection without a word
            writer.transport.abort()
        await await_until(lambda: app.ended == 1, timeout=5, interval=0.01, message="the app never finished with the dropped connection")
        status = await client.post(b"{}", [], key=1)
    assert status == 200 and app.connections == 2 and len(app.requests) == 2


async def test_a_chunked_answer_is_read_whole_and_the_connection_reused():
    chunked = b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    app = RawApp(chunked)
    async with app as url:
        client = AppClient(url, 5)
        statuses = [await client.post(b"{}", [], key=1) for _ in range(2)]
    assert statuses == [202, 202] and app.connections == 1


async def test_a_slow_app_times_out_and_an_answer_that_is_not_http_is_unreachable():
    async with RawApp(delay=1.0) as url:
        with pytest.raises(TimeoutError):
            await AppClient(url, 0.2).post(b"{}", [], key=1)
    async with RawApp(b"SSH-2.0-OpenSSH\r\n\r\n", close_after=True) as url:
        with pytest.raises(AppUnreachable):
            await AppClient(url, 2).post(b"{}", [], key=1)
