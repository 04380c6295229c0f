"""The receiver with ``dispatch = "direct"`` against the session's Prefect server: it starts the run itself,
once per delivery even across a restart, emits `<event>.dispatched` (which no trigger expects), and
answers 503 with nothing emitted when the deployment is missing."""

from __future__ import annotations

import itertools
import time
import uuid

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId

from flows import handle_account_change
from receiver.dispatch import idempotency_key
from receiver.server import ReceiverServer
from receiver.settings import get_receiver_settings

SECRET = "CANARYdirect" + "5a" * 12
_ids = itertools.count(7_800_000_001)


@pytest.fixture
async def deployment(prefect_server):
    """A deployment nothing serves: its runs stay Scheduled, which is all these tests look at."""
    applied = await handle_account_change.ato_deployment(name="receiver-direct")
    deployment_id = await applied.aapply()
    return "handle-account-change/receiver-direct", deployment_id


def _receiver(deployment_name: str) -> ReceiverServer:
    return ReceiverServer(get_receiver_settings(secret=SECRET, dispatch="direct", deployment=deployment_name), port=0)


def _post(url: str, body: dict) -> httpx.Response:
    return httpx.post(f"{url}/events/queue-reset", json=body, headers={"Authorization": f"Bearer {SECRET}"}, timeout=30)


async def _runs_of(deployment_id) -> list:
    async with get_client() as client:
        return await client.read_flow_runs(flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id])))


def _events(api_url: str, id_instance: int, deadline_s: float = 25.0) -> list[dict]:
    body = {"filter": {"resource": {"id": [f"greenapi.instance.{id_instance}"]}, "occurred": {"since": "2000-01-01T00:00:00Z"}}, "limit": 50}
    deadline = time.monotonic() + deadline_s
    while True:
        events = httpx.post(f"{api_url}/events/filter", json=body, timeout=10).raise_for_status().json()["events"]
        if events or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


async def test_a_request_starts_one_run_even_when_re_sent_after_a_restart(prefect_server, deployment):
    name, deployment_id = deployment
    id_instance = next(_ids)
    body = {"idInstance": id_instance, "reason": "number_blocked", "source": "crm", "deliveryId": "crm-77"}

    with _receiver(name) as receiver:
        first, again = _post(receiver.url, body), _post(receiver.url, body)
    with _receiver(name) as restarted:  # a new process: the duplicate cache is empty
        after_restart = _post(restarted.url, body)

    assert first.status_code == again.status_code == after_restart.status_code == 202, first.text
    run_id = first.json()["flowRunId"]
    assert first.json()["event"] == "greenapi.instance.number-blocked.dispatched" and first.json()["duplicate"] is False
    assert again.json()["flowRunId"] == run_id and again.json()["duplicate"] is True
    assert after_restart.json()["flowRunId"] == run_id  # Prefect's idempotency key, not the cache, caught it
    runs = [r for r in await _runs_of(deployment_id) if r.parameters.get("instance") == str(id_instance)]
    assert [str(r.id) for r in runs] == [run_id]
    (run,) = runs
    assert run.parameters == {"reason": "number_blocked", "instance": str(id_instance), "clear_outgoing": False}
    assert {"greenapi", "receiver"} <= set(run.tags)
    assert run.idempotency_key == idempotency_key(uuid.UUID(first.json()["eventId"]))

    (event,) = _events(prefect_server.api_url, id_instance)
    assert event["event"] == "greenapi.instance.number-blocked.dispatched"
    assert event["id"] == first.json()["eventId"]
    assert event["payload"]["flow_run_id"] == run_id
    assert {"prefect.resource.id": f"prefect.flow-run.{run_id}", "prefect.resource.role": "flow-run"}.items() <= event["related"][0].items()


async def test_a_missing_deployment_answers_503_and_emits_nothing(prefect_server):
    id_instance = next(_ids)

    with _receiver("handle-account-change/not-deployed") as receiver:
        answer = _post(receiver.url, {"idInstance": id_instance, "reason": "account_changed"})

    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert SECRET not in answer.text
    assert _events(prefect_server.api_url, id_instance, deadline_s=6) == []
