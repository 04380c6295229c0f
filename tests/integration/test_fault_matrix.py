"""Steps x faults, permanent and transient, against the emulator on the session's Prefect server.

Transient faults (gone after two tries) of a retryable kind recover within the client's retry budget.
Everything else ends Failed quickly, with a message that names the step, the instance and the cause.
In no cell is the queue reported verified empty unless the emulator's queue really is empty.

Which fault is retried is the client's rule, proven per status and transport error in
tests/unit/test_client_retry.py and test_client_errors.py. Here each step meets one fault of each retry
class (retried and recovered, retried and given up, never retried), and each fault kind reaches the flow
over real loopback once, at one step; the socket-level ones (timeout, dropped connection) also recover.
"""

from __future__ import annotations

import json
import time

import pytest

from flows import Outcome
from tests.helpers import NGINX_502, database_dump_text, every_log_record, flush_runs_to_server, run_flow
from bench.servers import free_port

pytestmark = pytest.mark.usefixtures("prefect_server", "matrix_log")


@pytest.fixture(scope="module")
def matrix_log():
    with every_log_record() as stream:
        yield stream


# step -> (method, how many calls of that method come before the step's first call)
STEPS = {
    "inspect": ("getStateInstance", 0),
    "count": ("getWebhooksCount", 0),
    "clear": ("clearWebhooksQueue", 0),
    "verify": ("getWebhooksCount", 1),
}


# fault -> (emulator fault, retried by the client?, text the failure message must contain)
FAULTS = {
    "429": ({"kind": "status", "status": 429, "body": "{}"}, True, "HTTP 429"),
    "500": ({"kind": "status", "status": 500}, True, "HTTP 500"),
    "502-html": ({"kind": "status", "status": 502, "body": NGINX_502, "content_type": "text/html"}, True, "HTTP 502"),
    "503": ({"kind": "status", "status": 503}, True, "HTTP 503"),
    "timeout": ({"kind": "delay", "seconds": 1.0}, True, "timed out"),
    "connection-dropped": ({"kind": "disconnect"}, True, "connection error"),
    "non-json": ({"kind": "non_json"}, True, "body is not JSON"),
    "null-body": ({"kind": "null_body"}, True, "body is null"),
    "missing-field": ({"kind": "json", "body": {"renamed": 3}}, False, "unexpected body"),
    "401": ({"kind": "status", "status": 401}, False, "HTTP 401"),
    "403": ({"kind": "status", "status": 403}, False, "HTTP 403"),
    "466": ({"kind": "status", "status": 466, "body": '{"invokeStatus": {"status": "QUOTE_ALLOWED_EXCEEDED"}}', "content_type": "application/json"}, False, "HTTP 466"),
}

# Every cell runs with this token; the canary test searches the database and every log line for it.
CANARY = "CANARYmatrix" + "0a1b2c" * 6

# Every step: a retried fault that recovers and one that gives up, and a fault that is never retried.
EVERY_STEP = [(step, fault, variant) for step in STEPS for fault, variant in
              (("500", "transient"), ("500", "permanent"), ("401", "permanent"))]
# Every fault kind once, the steps taken in turn; a clear that times out is the cell that may have cleared.
EVERY_FAULT = [(list(STEPS)[i % len(STEPS)], fault, "permanent") for i, fault in enumerate(FAULTS)] + [
    ("clear", "timeout", "permanent"), ("count", "timeout", "transient"), ("verify", "connection-dropped", "transient")]
CELLS = list(dict.fromkeys(EVERY_STEP + EVERY_FAULT))


def _cell_id(cell) -> str:
    return "-".join(cell)


@pytest.mark.parametrize("step,fault,variant", [pytest.param(*cell, id=_cell_id(cell)) for cell in CELLS])
async def test_fault_cell(emulator, seed_instance, greenapi_env, step, fault, variant):
    method, before = STEPS[step]
    emulator_fault, retried, cause = FAULTS[fault]
    instance = seed_instance(token=CANARY, notifications=6)
    emulator.state.add_faults(instance.id_instance, [{
        "method": method, "fault": emulator_fault, "after": before, "times": None if variant == "permanent" else 2,
    }])
    greenapi_env(instance, timeout_seconds="0.3", max_retries="3")

    started = time.monotonic()
    state, report = await run_flow(reason="number_blocked")
    elapsed = time.monotonic() - started

    queue_now = emulator.state.instance(instance.id_instance)["queue_length"]
    assert CANARY not in json.dumps(emulator.state.calls()) + (state.message or "") + report.model_dump_json()
    if report.verified_empty:
        assert queue_now == 0, "reported verified empty while the emulator still queues notifications"
    if variant == "transient" and retried:
        assert state.is_completed(), state.message
        assert report.outcome is Outcome.cleared and queue_now == 0
        return
    assert state.is_failed() and report.outcome is Outcome.api_error and not report.verified_empty
    assert f"{step} step failed" in state.message
    assert f"instance {instance.id_instance}" in state.message and cause in state.message
    assert ("gave up after 4 attempts" in state.message) == retried
    assert elapsed < 15  # permanent faults fail fast: the retry budget, not a hang
    if step in ("inspect", "count") or (step == "clear" and fault != "timeout"):
        assert queue_now == 6  # nothing was cleared behind the failure
    # (A clear that timed out may still have been applied by the server: the run cannot know, and says
    # so by not claiming the queue is empty.)


@pytest.mark.parametrize("variant", ["permanent", "transient"])
async def test_clear_refused_with_a_reason(emulator, seed_instance, greenapi_env, variant):
    instance = seed_instance(notifications=4, refuse_clears={"reason": "internal processing error", "times": None if variant == "permanent" else 2})
    greenapi_env(instance)

    state, report = await run_flow(reason="account_changed")

    if variant == "transient":
        assert state.is_completed(), state.message
        assert report.clear_attempts == 3 and report.verified_empty
        assert emulator.state.instance(instance.id_instance)["queue_length"] == 0
    else:
        assert state.is_failed() and report.outcome is Outcome.clear_refused
        assert "internal processing error" in state.message and "(3 time(s))" in state.message
        assert emulator.state.instance(instance.id_instance)["queue_length"] == 4


async def test_connection_refused_fails_the_inspect_step(emulator, seed_instance, greenapi_env, monkeypatch):
    closed_port = free_port()  # free a moment ago: nothing listens there
    instance = seed_instance(notifications=2)
    greenapi_env(instance, max_retries="2")
    monkeypatch.setenv("GREEN_API_API_URL", f"http://127.0.0.1:{closed_port}")

    state, report = await run_flow(reason="number_blocked")

    assert state.is_failed() and report.outcome is Outcome.api_error
    assert "inspect step failed" in state.message and "connection error (ConnectError)" in state.message
    assert "gave up after 3 attempts" in state.message


# Failing cells of the canary test's own, one per step: their failures must be in the logs and the database.
CANARY_CELLS = [("inspect", "401"), ("count", "non-json"), ("clear", "466"), ("verify", "500")]


async def test_the_canary_token_is_in_no_log_output_or_database_row(prefect_server, emulator, seed_instance, greenapi_env,
                                                                     matrix_log, capfd):
    """Independent of the order: it runs failing cells of its own with CANARY as the token, then searches every
    log record of the module so far, its own output, and the whole Prefect database (which holds whatever
    cells of the matrix ran before, too)."""
    from prefect.logging.handlers import APILogHandler

    instances = []
    for step, fault in CANARY_CELLS:
        method, before = STEPS[step]
        instance = seed_instance(token=CANARY, notifications=6)
        emulator.state.add_faults(instance.id_instance, [{"method": method, "fault": FAULTS[fault][0], "after": before, "times": None}])
        greenapi_env(instance, timeout_seconds="0.3", max_retries="1")
        state, _ = await run_flow(reason="number_blocked")
        assert state.is_failed() and f"{step} step failed" in state.message, state.message
        instances.append(instance.id_instance)
    await flush_runs_to_server(prefect_server, instances)
    await APILogHandler.aflush()

    logs = matrix_log.getvalue()
    assert "clear step failed" in logs and "HTTP 466" in logs  # the cells' failures were logged here ...
    assert CANARY not in logs
    database = database_dump_text(prefect_server)
    assert "verify step failed" in database and f"greenapi.instance.{instances[-1]}" in database  # ... and reached the database
    assert CANARY not in database
    captured = capfd.readouterr()
    assert CANARY not in captured.out + captured.err
