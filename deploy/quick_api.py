"""The few Prefect API writes on the webhook-to-clear path, retried in milliseconds instead of seconds.

Why: a local Prefect server on SQLite answers 503 when two writes overlap (SQLITE_BUSY_SNAPSHOT on
a transaction that read before it wrote; creating a run from a deployment is one). Prefect's
client then waits 2 s, then 4 s. The overlap is gone milliseconds later, and under a burst of
reports those 2 s waits were most of the latency (bench/NOTES.md). These calls go over plain httpx
with short waits between attempts; after the last one the caller falls back to Prefect's client
and its own retries. Both calls are safe to repeat: run creation carries an idempotency key, and
a second Pending proposal for a claimed run is refused by the server.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any, Sequence
from uuid import UUID

import httpx
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_KEY, PREFECT_API_URL

QUICK_RETRY_WAITS_SECONDS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8)


class QuickRetriesExhausted(Exception):
    """Every quick attempt got 503 (or could not connect); the caller should fall back to Prefect's client."""


def _auth_headers() -> dict[str, str]:
    if api_key := PREFECT_API_KEY.value():
        return {"Authorization": f"Bearer {api_key}"}
    if auth := PREFECT_API_AUTH_STRING.value():
        return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
    return {}


class QuickPrefectAPI:
    """A plain httpx client on PREFECT_API_URL (with the same credentials Prefect's client would send)."""

    def __init__(self, *, timeout_seconds: float = 10.0, waits: Sequence[float] = QUICK_RETRY_WAITS_SECONDS) -> None:
        api_url = PREFECT_API_URL.value()
        if not api_url:
            raise RuntimeError("PREFECT_API_URL is not set")
        self.waits = tuple(waits)
        self._http = httpx.AsyncClient(base_url=api_url.rstrip("/") + "/", headers=_auth_headers(), timeout=timeout_seconds)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        for attempt, wait in enumerate((*self.waits, None)):
            try:
                response = await self._http.post(path, json=body)
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code != 503:
                response.raise_for_status()
                return response.json()
            if wait is None:
                break
            await asyncio.sleep(wait)
        raise QuickRetriesExhausted(path)

    async def create_flow_run_from_deployment(
        self, deployment_id: UUID, *, parameters: dict[str, Any], idempotency_key: str, tags: list[str]
    ) -> dict[str, Any]:
        """POST /deployments/{id}/create_flow_run; the run as JSON (the existing one for a known idempotency key)."""
        return await self._post(
            f"deployments/{deployment_id}/create_flow_run",
            {"parameters": parameters, "idempotency_key": idempotency_key, "tags": tags},
        )

    async def propose_pending(self, flow_run_id: UUID) -> bool:
        """Claim a scheduled run, as workers do: True when the server moved it to Pending for us."""
        answer = await self._post(f"flow_runs/{flow_run_id}/set_state", {"state": {"type": "PENDING"}, "force": False})
        return answer.get("status") == "ACCEPT"
