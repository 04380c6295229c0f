"""The operator's app, as GREEN-API (or the relay) sees it: an HTTP server on loopback that records every
POST it gets and answers 200, unless told to fail, be slow or be down.

What it records per POST (a :class:`Receipt`): when it arrived (``time.time()``), the instance, typeWebhook,
``instanceData.wid``, idMessage, timestamp, stateInstance, whether the ``Authorization`` header carried the
expected bearer token, and what it answered. Never the message content, and nothing is logged.

Wiring (b): with ``forward_state_to`` it forwards each ``stateInstanceChanged`` body, unchanged, to the
receiver with the receiver's bearer **before** answering; when the receiver does not answer 2xx it answers
502, so GREEN-API keeps the notification and sends it again.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
import time
from dataclasses import dataclass

import httpx

from scenarios.http import LoopbackHttpServer, LoopbackService, Request, Response

STATE_WEBHOOK = "stateInstanceChanged"


@dataclass(frozen=True)
class Receipt:
    at: float  # time.time() when the request was read
    id_instance: int | None
    type_webhook: str | None
    wid: str | None
    id_message: str | None
    timestamp: int | None
    state_instance: str | None
    authorized: bool
    status: int  # what the app answered

    @property
    def accepted(self) -> bool:
        """The app took it (answered 2xx): what "the app got it" means."""
        return 200 <= self.status < 300

    @property
    def is_state(self) -> bool:
        return self.type_webhook == STATE_WEBHOOK


class AppStub(LoopbackService):
    """``AppStub(token).start()``; ``url`` is its webhook URL. Behaviour, changeable while it runs:
    ``fail_for(seconds, status=503)``, ``slow(seconds)``, ``go_down()`` / ``come_up()``, ``forward_state_to``."""

    path = "/webhook"

    def __init__(self, token: str | None, *, name: str = "app", forward_state_to: tuple[str, str] | None = None,
                 forward_timeout: float = 30) -> None:
        self.token = token
        self.name = name
        self.forward_state_to = forward_state_to  # (receiver webhook URL, receiver bearer)
        self.forward_timeout = forward_timeout
        self._receipts: list[Receipt] = []
        self._lock = threading.Lock()
        self._fail_until = 0.0
        self._fail_status = 503
        self._delay = 0.0
        self.forward_failures = 0
        self._server = LoopbackHttpServer(self._handle, name=f"app-stub-{name}")
        self._http: httpx.AsyncClient | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return self._server.url + self.path

    # ------------------------------------------------------------------ behaviour
    def fail_for(self, seconds: float, status: int = 503) -> None:
        """Answer ``status`` to every POST for the next ``seconds``."""
        self._fail_status, self._fail_until = status, time.monotonic() + seconds

    def heal(self) -> None:
        self._fail_until = 0.0

    def slow(self, seconds: float) -> None:
        """Wait ``seconds`` before each answer (0: fast again)."""
        self._delay = seconds

    def go_down(self) -> None:
        """Stop listening and drop open connections: a stopped process."""
        self._server.stop_listening()

    def come_up(self) -> None:
        self._server.listen()

    @property
    def up(self) -> bool:
        return self._server.listening

    # ------------------------------------------------------------------ what it got
    def receipts(self, id_instance: int | None = None) -> list[Receipt]:
        with self._lock:
            return [r for r in self._receipts if id_instance is None or r.id_instance == id_instance]

    def clear(self) -> None:
        with self._lock:
            self._receipts.clear()
        self.forward_failures = 0

    def count(self) -> int:
        with self._lock:
            return len(self._receipts)

    # ------------------------------------------------------------------ the handler
    def _authorized(self, request: Request) -> bool:
        if self.token is None:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode())

    async def _handle(self, request: Request) -> Response:
        arrived = time.time()
        if request.method != "POST":
            return Response(200 if request.method == "GET" else 404, b"{}")
        authorized = self._authorized(request)
        try:
            body = json.loads(request.body)
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            self._keep(Receipt(arrived, None, None, None, None, None, None, authorized, 400))
            return Response(400)
        data = body.get("instanceData") if isinstance(body.get("instanceData"), dict) else {}
        status = 200
        if not authorized:
            status = 401
        elif time.monotonic() < self._fail_until:
            status = self._fail_status
        else:
            if self._delay:
                await asyncio.sleep(self._delay)
            if body.get("typeWebhook") == STATE_WEBHOOK and self.forward_state_to:
                status = 200 if await self._forward(request.body) else 502
        timestamp = body.get("timestamp")
        self._keep(Receipt(
            at=arrived, id_instance=data.get("idInstance"), type_webhook=body.get("typeWebhook"), wid=data.get("wid"),
            id_message=body.get("idMessage"), timestamp=timestamp if isinstance(timestamp, int) else None,
            state_instance=body.get("stateInstance"), authorized=authorized, status=status,
        ))
        return Response(status, b'{"ok":true}' if status == 200 else b"{}", {"content-type": "application/json"})

    def _keep(self, receipt: Receipt) -> None:
        with self._lock:
            self._receipts.append(receipt)

    async def _forward(self, raw: bytes) -> bool:
        """Wiring (b): the state webhook, unchanged, to the receiver; True when it answered 2xx."""
        url, bearer = self.forward_state_to
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.forward_timeout)
        try:
            answer = await self._http.post(url, content=raw, headers={"Authorization": f"Bearer {bearer}",
                                                                      "Content-Type": "application/json"})
            ok = 200 <= answer.status_code < 300
        except httpx.HTTPError:
            ok = False
        if not ok:
            self.forward_failures += 1
        return ok
