"""The heartbeat stays out of the operator's greenapi.* feed, and the crashed-runs automation still follows it;
the failure notification says how many notifications a reset removed, or "unknown" and why."""

from __future__ import annotations

from jinja2.sandbox import ImmutableSandboxedEnvironment

from deploy.automations import _QUEUE_RESET_BODY, crashed_runs_automation
from flows.cancellation import HEARTBEAT_EVENT


def test_the_heartbeat_is_not_a_greenapi_event_and_the_crashed_runs_automation_follows_it():
    assert not HEARTBEAT_EVENT.startswith("greenapi")
    trigger = crashed_runs_automation().trigger
    assert trigger.after == {HEARTBEAT_EVENT} and HEARTBEAT_EVENT in trigger.expect
    assert trigger.match.model_dump()["prefect.resource.id"] == "prefect.flow-run.*"


def _body(**payload) -> str:
    event = {"resource": {"greenapi.id-instance": "1101000001"}, "payload": payload}
    return ImmutableSandboxedEnvironment().from_string(_QUEUE_RESET_BODY).render(event=event, flow_run=None)


def test_the_failure_notification_says_what_was_removed():
    body = _body(outcome="not_empty", reason="number_blocked", removed=22, removed_unknown="", count_before=22,
                 count_before_unknown="", count_after=3, clear_attempts=3, message="3 notification(s) still counted")
    assert "Removed: 22 notification(s)." in body and "before the clear: 22, after: 3" in body


def test_an_unknown_count_says_why():
    body = _body(outcome="api_error", reason="number_blocked", removed=0, removed_unknown="", count_before=None,
                 count_before_unknown="GetWebhooksCount failed: HTTP 500", count_after=None, clear_attempts=0)
    assert "before the clear: unknown (GetWebhooksCount failed: HTTP 500), after: unknown" in body
    assert "Removed: 0 notification(s)." in body
