"""Connections shared by every instance a fleet run talks to: one pool, one bound on requests in flight.

A sweep over 1,000 instances must not open 1,000 connection pools, nor send more than
``max_concurrency`` requests to GREEN-API at once, while runs that only wait (leftTime, count
refresh) hold no slot. The bound lives in the transport, so it covers every request of every
client that uses it, retries included.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from typing import AsyncIterator

import httpx

from greenapi import GreenAPIClient, GreenAPISettings, InstanceCredentials
from tasks.expected import install_expected_failure_logging

_shared: contextvars.ContextVar["BoundedTransport | None"] = contextvars.ContextVar("greenapi_shared_transport", default=None)


class BoundedTransport(httpx.AsyncBaseTransport):
    """One connection pool for many clients, at most ``max_in_flight`` requests at a time."""

    def __init__(self, max_in_flight: int) -> None:
        self._inner = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
        )
        self._slots = asyncio.Semaphore(max_in_flight)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async with self._slots:
            response = await self._inner.handle_async_request(request)
            await response.aread()  # release the slot only when the answer is in
            return response

    async def aclose(self) -> None:
        """Clients sharing the transport close it on exit: the owner closes it with :meth:`shutdown`."""

    async def shutdown(self) -> None:
        await self._inner.aclose()


@contextlib.asynccontextmanager
async def shared_connections(max_in_flight: int) -> AsyncIterator[BoundedTransport]:
    """Clients opened with :func:`open_client` inside this block (subflows included) share one bounded pool."""
    transport = BoundedTransport(max_in_flight)
    token = _shared.set(transport)
    try:
        yield transport
    finally:
        _shared.reset(token)
        await transport.shutdown()


def open_client(credentials: InstanceCredentials, settings: GreenAPISettings) -> GreenAPIClient:
    """A client on the shared pool when one is in effect, on its own connections otherwise."""
    install_expected_failure_logging()  # every run's steps get their client here: their failures log one line
    return GreenAPIClient(credentials, settings, transport=_shared.get())
