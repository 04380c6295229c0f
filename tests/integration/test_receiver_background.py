"""The receiver's background dispatch against the session's Prefect server: a report is handed to a task
worker once, and the memory of it lives on the Prefect server, so a restarted receiver starts nothing again."""

from __future__ import annotations

import itertools
import time
import uuid

import httpx
import pytest
from prefect.client.orchestration import get_client

from domain import Reason
from flows.reported import handle_reported_change
from receiver.app import create_app
from tests.helpers import RecordingEmitter
from receiver.dispatch import BackgroundDispatcher, DispatchError
from receiver.settings import get_receiver_settings
from instances import GreenApiInstance

SECRET = "CANARYbg" + "5a" * 16
_ids = itertools.count(7_800_000_001)


class RecordingDispatcher:
    """Stands in for the task worker hand-over; fails the first ``fail`` times, as Prefect being down would."""

    def __init__(self, fail: int = 0) -> None:
        self.fail, self.handed_over = fail, []

    async def dispatch(self, *, event_id, id_instance, reason):
        if self.fail:
            self.fail -= 1
            raise DispatchError("injected failure")
        self.handed_over.append((event_id, id_instance, reason))
        return uuid.uuid4()


def _receiver(dispatcher) -> tuple[httpx.AsyncClient, RecordingEmitter]:
    emitter = RecordingEmitter()
    settings = get_receiver_settings(_env_file=None, secret=SECRET)
    app = create_app(settings, emitter=emitter, dispatcher=dispatcher)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver",
                               headers={"Authorization": f"Bearer {SECRET}"})
    return client, emitter


def _blocked_webhook(id_instance: int) -> dict:
    return {"typeWebhook": "stateInstanceChanged", "timestamp": int(time.time()), "stateInstance": "blocked",
            "instanceData": {"idInstance": id_instance, "wid": "71230000001@c.us", "typeInstance": "whatsapp"}}


@pytest.fixture
async def id_instance(prefect_server):
    id_instance = next(_ids)  # registered: the receiver hands over reports for greenapi-instance blocks only
    await GreenApiInstance(api_url="http://127.0.0.1:9", id_instance=id_instance, api_token_instance=SECRET).asave(f"bg-{id_instance}", overwrite=True)
    return id_instance


async def test_a_restarted_receiver_hands_a_re_delivered_webhook_over_no_second_time(id_instance):
    webhook = _blocked_webhook(id_instance)
    first_dispatcher, restarted_dispatcher = RecordingDispatcher(), RecordingDispatcher()

    first, first_events = _receiver(first_dispatcher)
    async with first:
        answer = await first.post("/webhooks/greenapi", json=webhook)
    restarted, restarted_events = _receiver(restarted_dispatcher)  # nothing in memory but what Prefect keeps
    async with restarted:
        again = await restarted.post("/webhooks/greenapi", json=webhook)

    assert answer.status_code == again.status_code == 200, (answer.text, again.text)  # GREEN-API wants 200
    assert answer.json()["duplicate"] is False and again.json()["duplicate"] is True
    assert again.json()["eventId"] == answer.json()["eventId"]
    assert [(i, r) for _, i, r in first_dispatcher.handed_over] == [(id_instance, Reason.number_blocked)]
    assert restarted_dispatcher.handed_over == [] and restarted_events.events == []
    assert [e.event for e in first_events.events] == ["greenapi.instance.number-blocked.dispatched"]


async def test_a_failed_hand_over_answers_503_and_the_re_sent_report_is_handed_over(id_instance):
    dispatcher = RecordingDispatcher(fail=1)
    body = {"idInstance": id_instance, "reason": "account_changed", "deliveryId": "d-1"}

    client, events = _receiver(dispatcher)
    async with client:
        refused = await client.post("/events/queue-reset", json=body)
        accepted = await client.post("/events/queue-reset", json=body)

    assert refused.status_code == 503 and refused.headers["Retry-After"]
    assert accepted.status_code == 202 and accepted.json()["duplicate"] is False, accepted.text
    assert [(i, r) for _, i, r in dispatcher.handed_over] == [(id_instance, Reason.account_changed)]
    assert len(events.events) == 1


async def test_the_hand_over_is_a_deferred_task_run_for_a_task_worker(id_instance):
    event_id = uuid.uuid4()

    task_run_id = await BackgroundDispatcher(handle_reported_change).dispatch(event_id=event_id, id_instance=id_instance, reason=Reason.number_blocked)

    async with get_client() as client:
        task_run = await client.read_task_run(task_run_id)
    assert task_run.name.startswith("handle-reported-change")  # named with the instance when it runs
    assert task_run.state.type.value == "SCHEDULED" and task_run.state.state_details.deferred is True
    assert task_run.flow_run_id is None  # nothing runs it here: it waits for a task worker


async def test_an_unregistered_instance_hands_nothing_over_on_either_endpoint(prefect_server):
    unregistered = next(_ids)  # no greenapi-instance block: the receiver's registry reads the session's server
    dispatcher = RecordingDispatcher()
    client, events = _receiver(dispatcher)
    async with client:
        webhook = await client.post("/webhooks/greenapi", json=_blocked_webhook(unregistered))
        queue_reset = await client.post("/events/queue-reset", json={"idInstance": unregistered, "reason": "number_blocked"})

    assert webhook.status_code == 200 and webhook.json()["status"] == "ignored", webhook.text
    assert queue_reset.status_code == 422 and str(unregistered) in queue_reset.text
    assert dispatcher.handed_over == [] and events.events == []  # no task run, no event: no run can start
