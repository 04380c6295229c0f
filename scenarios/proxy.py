"""A round-robin HTTP proxy on loopback: two (or more) relays behind one address, as a load balancer puts
them. Each request goes, whole, to the next backend in turn; the backend's status and body come back. A
backend that does not answer gets the request's sender a 502 (GREEN-API then sends it again): the proxy
tries no other backend, so what each relay does is what GREEN-API sees."""

from __future__ import annotations

import itertools
import threading

import httpx

from scenarios.http import LoopbackHttpServer, LoopbackService, Request, Response

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class RoundRobinProxy(LoopbackService):
    def __init__(self, backends: list[str], *, timeout: float = 60) -> None:
        if not backends:
            raise ValueError("a proxy needs at least one backend")
        self.backends = [b.rstrip("/") for b in backends]
        self._next = itertools.cycle(range(len(self.backends)))
        self._lock = threading.Lock()
        self.sent = [0] * len(self.backends)
        self.failed = [0] * len(self.backends)
        self.timeout = timeout
        self._http: httpx.AsyncClient | None = None
        self._server = LoopbackHttpServer(self._handle, name="round-robin-proxy")

    @property
    def url(self) -> str:
        return self._server.url


    async def _handle(self, request: Request) -> Response:
        with self._lock:
            index = next(self._next)
            self.sent[index] += 1
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.timeout, limits=httpx.Limits(max_connections=200, max_keepalive_connections=200))
        headers = {k: v for k, v in request.headers.items() if k not in HOP_HEADERS}
        try:
            answer = await self._http.request(request.method, self.backends[index] + request.path, content=request.body,
                                              headers=headers)
        except httpx.HTTPError:
            with self._lock:
                self.failed[index] += 1
            return Response(502, b'{"error":"backend did not answer"}', {"content-type": "application/json"})
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS | {"content-encoding", "date", "server"}}
        return Response(answer.status_code, answer.content, kept)
