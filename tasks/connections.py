"""One connection pool for every instance a fleet run talks to, and one bound on requests in flight.

A sweep over 1,000 instances must not open 1,000 connection pools, nor send more than
``max_concurrency`` requests to GREEN-API at once, while runs that only wait (leftTime, count
refresh) hold no slot. The bound lives in the transport, so it covers every request of every
client that uses it, retries included. The sweep passes the one ``httpx.AsyncClient`` to each
instance's client (``http_client=``); a single run's client opens its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

import httpx

from greenapi import ClientConfig, GreenAPIClient, InstanceCredentials
from tasks.expected import install_expected_failure_logging


class BoundedTransport(httpx.AsyncBaseTransport):
    """One connection pool, at most ``max_in_flight`` requests at a time."""

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
        await self._inner.aclose()


@contextlib.asynccontextmanager
async def fleet_http(max_in_flight: int) -> AsyncIterator[httpx.AsyncClient]:
    """The one HTTP client a fleet run shares between its instances' clients, closed at the end."""
    async with httpx.AsyncClient(transport=BoundedTransport(max_in_flight), follow_redirects=False) as http:
        yield http


def open_client(credentials: InstanceCredentials, config: ClientConfig,
                http_client: httpx.AsyncClient | None = None) -> GreenAPIClient:
    """A client for one instance: on ``http_client`` (a fleet run's pool) when given, on its own connections otherwise."""
    install_expected_failure_logging()  # every run's steps get their client here: their failures log one line
    return GreenAPIClient(credentials, config, http_client=http_client)
