"""The Prefect API writes on a run's critical path, retried in milliseconds instead of seconds.

Why: a local Prefect server on SQLite answers 503 when two writes overlap (SQLITE_BUSY_SNAPSHOT on
a transaction that read before it wrote; creating a run from a deployment is one). Prefect's
client then waits 2 s, then 4 s. The overlap is gone milliseconds later, and under a burst of
reports, or 50 instances handled at once by a sweep, those waits were most of the latency
(bench/NOTES.md). These calls go over plain httpx with short waits between attempts; after the
last one the caller falls back to Prefect's client and its own retries. Every call here is safe to
repeat: run creation carries an idempotency key, a second Pending proposal for a claimed run is
refused by the server, a variable write sets the same value again, and a 503 means the server rolled
the write back (only a connection lost after a commit can leave an artifact's version twice).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import time
import weakref
from typing import Any, Sequence
from uuid import UUID

import httpx
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_KEY, PREFECT_API_URL

# About 4 s of quick attempts before Prefect's client takes over; each wait is jittered (x0.5-1.5) so
# 50 runs that collided once do not collide again on the same beat.
QUICK_RETRY_WAITS_SECONDS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0)
# Writes this process sends at once. SQLite takes one writer at a time anyway, so 50 runs that write
# together only make each other fail (and retry); queued here, each waits milliseconds instead.
WRITES_IN_FLIGHT = 2

_write_gates: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = weakref.WeakKeyDictionary()


def _write_gate() -> asyncio.Semaphore:
    """One gate per event loop: a semaphore must not be shared across loops."""
    loop = asyncio.get_running_loop()
    gate = _write_gates.get(loop)
    if gate is None:
        gate = _write_gates[loop] = asyncio.Semaphore(WRITES_IN_FLIGHT)
    return gate


def _seconds(value: str | None, default: float) -> float:
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:
        return default


class QuickRetriesExhausted(Exception):
    """Every quick attempt got 503 (or could not connect); the caller should fall back to Prefect's client."""


def _auth_headers() -> dict[str, str]:
    if api_key := PREFECT_API_KEY.value():
        return {"Authorization": f"Bearer {api_key}"}
    if auth := PREFECT_API_AUTH_STRING.value():
        return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
    return {}


class QuickPrefectAPI:
    """A plain httpx client on PREFECT_API_URL (with the same credentials Prefect's client would send).

    ``queue_writes=False`` skips the process's write queue (``WRITES_IN_FLIGHT``): for a lone writer whose
    latency is the point, such as the receiver starting a run, which must not wait behind runs' bookkeeping.
    """

    def __init__(
        self, *, timeout_seconds: float = 10.0, waits: Sequence[float] = QUICK_RETRY_WAITS_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None, queue_writes: bool = True,
    ) -> None:
        api_url = PREFECT_API_URL.value()
        if not api_url:
            raise RuntimeError("PREFECT_API_URL is not set")
        self.waits, self.queue_writes = tuple(waits), queue_writes
        self._http = httpx.AsyncClient(base_url=api_url.rstrip("/") + "/", headers=_auth_headers(), timeout=timeout_seconds,
                                       transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "QuickPrefectAPI":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _send(self, verb: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
        gate = _write_gate() if verb != "GET" and self.queue_writes else contextlib.nullcontext()
        for wait in (*self.waits, None):
            try:
                async with gate:
                    response = await self._http.request(verb, path, json=body)
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code != 503:
                return response
            if wait is None:
                break
            await asyncio.sleep(wait * random.uniform(0.5, 1.5))
        raise QuickRetriesExhausted(path)

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._send("POST", path, body)
        response.raise_for_status()
        return response.json()

    async def ensure_concurrency_limit(self, name: str, *, limit: int) -> None:
        """Create a global concurrency limit unless it exists (read first: after the first run, no write at all)."""
        found = await self._send("GET", f"v2/concurrency_limits/{name}", None)
        if found.status_code == 200:
            return
        if found.status_code != 404:
            found.raise_for_status()
        created = await self._send("POST", "v2/concurrency_limits/", {"name": name, "limit": limit})
        if created.status_code != 409:  # 409: another run created it meanwhile
            created.raise_for_status()

    async def acquire_slot(self, *limit_names: str, lease_seconds: float, timeout_seconds: float, holder: dict | None) -> str:
        """One slot of each named global concurrency limit, all under one lease (all or none); waits (as the
        server's Retry-After says) while one is taken. Returns the lease id; TimeoutError after ``timeout_seconds``
        (0: a single try)."""
        limit_name = ", ".join(limit_names)
        deadline = time.monotonic() + timeout_seconds
        body: dict[str, Any] = {"names": list(limit_names), "slots": 1, "mode": "concurrency", "lease_duration": lease_seconds}
        if holder:
            body["holder"] = holder
        while True:
            try:
                response = await self._send("POST", "v2/concurrency_limits/increment-with-lease", body)
            except QuickRetriesExhausted:  # a busy server: keep trying within the same deadline
                if time.monotonic() + 1.0 > deadline:
                    raise TimeoutError(f"{limit_name}: the Prefect server did not answer within {timeout_seconds:g} s") from None
                await asyncio.sleep(1.0)
                continue
            if response.status_code != 423:
                response.raise_for_status()
                return response.json()["lease_id"]
            retry_after = _seconds(response.headers.get("Retry-After"), default=1.0)
            if time.monotonic() + retry_after > deadline:
                raise TimeoutError(f"{limit_name}: no free slot within {timeout_seconds:g} s")
            await asyncio.sleep(retry_after)

    async def renew_lease(self, lease_id: str, lease_seconds: float) -> None:
        response = await self._send("POST", f"v2/concurrency_limits/leases/{lease_id}/renew", {"lease_duration": lease_seconds})
        response.raise_for_status()

    async def release_slot(self, lease_id: str) -> None:
        response = await self._send("POST", "v2/concurrency_limits/decrement-with-lease", {"lease_id": lease_id})
        if response.status_code != 410:  # the lease ran out already: nothing is held
            response.raise_for_status()

    async def set_variable(self, name: str, value: str, tags: list[str]) -> None:
        """Create or overwrite a Prefect Variable."""
        for _ in range(3):  # a create racing another writer's create turns into an update
            response = await self._send("PATCH", f"variables/name/{name}", {"value": value, "tags": tags})
            if response.status_code != 404:
                response.raise_for_status()
                return
            response = await self._send("POST", "variables/", {"name": name, "value": value, "tags": tags})
            if response.status_code != 409:
                response.raise_for_status()
                return
        response.raise_for_status()

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

    async def create_artifact(
        self, *, key: str, artifact_type: str, data: str, description: str, flow_run_id: UUID | None, task_run_id: UUID | None
    ) -> None:
        """POST /artifacts/: a new version of the keyed artifact, attached to the run (as Prefect's artifact helpers do)."""
        await self._post("artifacts/", {
            "key": key, "type": artifact_type, "data": data, "description": description,
            "flow_run_id": str(flow_run_id) if flow_run_id else None, "task_run_id": str(task_run_id) if task_run_id else None,
        })


async def publish_markdown_artifact(key: str, markdown: str, description: str) -> None:
    """A markdown artifact on the current flow or task run, with quick retries and Prefect's client as the fallback.

    Reports are a run's last write before it ends: a 503 must not hold it (or a sweep handling 50
    instances) for Prefect's 2 s back-off.
    """
    from prefect.artifacts import acreate_markdown_artifact
    from prefect.utilities.context import get_task_and_flow_run_ids

    task_run_id, flow_run_id = get_task_and_flow_run_ids()
    try:
        async with QuickPrefectAPI() as api:
            await api.create_artifact(key=key, artifact_type="markdown", data=markdown, description=description,
                                      flow_run_id=flow_run_id, task_run_id=task_run_id)
    except QuickRetriesExhausted:
        await acreate_markdown_artifact(key=key, markdown=markdown, description=description)
