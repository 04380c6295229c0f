"""Typed answers: ClearOutcome kinds, InstanceSettings nulls, StateInstance unknown states, QueueCount spellings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from greenapi.models import ClearOutcome, InstanceSettings, Notification, QueueCount, StateInstance


@pytest.mark.parametrize(
    ("body", "kind", "left_time", "reason"),
    [
        ({"isCleared": True, "reason": ""}, "cleared", None, ""),
        ({"isCleared": True}, "cleared", None, ""),
        ({"isCleared": False, "reason": "Too many requests", "leftTime": 46}, "too_early", 46, "Too many requests"),
        ({"isCleared": False, "leftTime": 0}, "too_early", 0, ""),
        ({"isCleared": False, "reason": "webhookUrl is set"}, "refused", None, "webhookUrl is set"),
        ({"isCleared": False, "reason": None}, "refused", None, ""),
        ({"isCleared": False, "reason": None, "leftTime": None}, "refused", None, ""),
        ({"isCleared": True, "reason": None, "extra": [1, 2]}, "cleared", None, ""),
    ],
)
def test_clear_outcome_kinds(body, kind, left_time, reason):
    outcome = ClearOutcome.model_validate(body)
    assert outcome.kind == kind
    assert outcome.left_time == left_time
    assert outcome.reason == reason
    assert outcome.is_cleared is body["isCleared"]


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"isCleared": "maybe"}, {"isCleared": False, "leftTime": -1}])
def test_clear_outcome_rejects_bad_bodies(body):
    with pytest.raises(ValidationError):
        ClearOutcome.model_validate(body)


def test_clear_outcome_does_not_mutate_input_and_is_frozen():
    body = {"isCleared": False, "reason": None}
    outcome = ClearOutcome.model_validate(body)
    assert body == {"isCleared": False, "reason": None}
    with pytest.raises(ValidationError):
        outcome.is_cleared = True  # type: ignore[misc]


@pytest.mark.parametrize(
    ("body", "webhook_url", "is_set"),
    [
        ({"wid": "1@c.us", "webhookUrl": None, "stateWebhook": "yes"}, "", False),
        ({"wid": "1@c.us", "webhookUrl": "", "stateWebhook": "yes"}, "", False),
        ({"wid": "1@c.us", "webhookUrl": "   "}, "   ", False),
        ({"wid": "1@c.us", "webhookUrl": "https://hook.example/x"}, "https://hook.example/x", True),
        ({}, "", False),
    ],
)
def test_instance_settings_webhook_url(body, webhook_url, is_set):
    settings = InstanceSettings.model_validate(body)
    assert settings.webhook_url == webhook_url
    assert settings.webhook_url_set is is_set


def test_instance_settings_null_wid_and_state_webhook():
    settings = InstanceSettings.model_validate({"wid": None, "webhookUrl": None, "stateWebhook": None, "delaySendMessagesMilliseconds": 1000})
    assert (settings.wid, settings.webhook_url, settings.state_webhook) == ("", "", "")


def test_instance_settings_reads_fields():
    settings = InstanceSettings.model_validate({"wid": "71231234567@c.us", "webhookUrl": "", "stateWebhook": "yes"})
    assert settings.wid == "71231234567@c.us"
    assert settings.state_webhook == "yes"


@pytest.mark.parametrize("state", ["quantumEntangled", "", "BLOCKED"])
def test_state_instance_unknown_state_is_kept(state):
    model = StateInstance.model_validate({"stateInstance": state})
    assert model.state_instance == state


@pytest.mark.parametrize("body", [{}, {"stateInstance": None}, {"state": "authorized"}])
def test_state_instance_rejects_missing_state(body):
    with pytest.raises(ValidationError):
        StateInstance.model_validate(body)


@pytest.mark.parametrize("body", [{"count": 4}, {"\u0441ount": 4}, {"count": 4, "\u0441ount": 9}, {"\u0441ount": "4"}])
def test_queue_count_spellings(body):
    assert QueueCount.model_validate(body).count == 4


@pytest.mark.parametrize("body", [{}, {"cnt": 1}, {"COUNT": 1}, {"count": -1}, {"\u0441ount": -1}, {"count": None}, {"count": 1.5}])
def test_queue_count_rejects(body):
    with pytest.raises(ValidationError):
        QueueCount.model_validate(body)


def test_queue_count_zero_is_valid():
    assert QueueCount.model_validate({"count": 0}).count == 0


def test_notification_fields():
    n = Notification.model_validate({"receiptId": 5, "body": {"typeWebhook": "incomingMessageReceived", "timestamp": "x"}})
    assert n.receipt_id == 5
    assert n.type_webhook == "incomingMessageReceived"
    assert n.timestamp is None
    empty = Notification.model_validate({"receiptId": 6})
    assert empty.body == {} and empty.type_webhook == "" and empty.timestamp is None
