"""Prefect tasks: one GREEN-API step each, typed results, never cached."""

from tasks.inspect import inspect_instance
from tasks.queue import (
    clear_notifications,
    clear_outgoing_messages,
    count_notifications,
    count_outgoing_messages,
    peek_notification,
    verify_empty,
)
from tasks.results import ClearAttempt, CountResult, InstanceInfo, Verification, WaitResult, WebhookApplied, WebhookDetach, WebhookRestore
from tasks.wait import wait_seconds
from tasks.webhook import detach_webhook, restore_webhook, wait_webhook_detached

__all__ = [
    "ClearAttempt",
    "CountResult",
    "InstanceInfo",
    "Verification",
    "WaitResult",
    "WebhookApplied",
    "WebhookDetach",
    "WebhookRestore",
    "clear_notifications",
    "clear_outgoing_messages",
    "count_notifications",
    "count_outgoing_messages",
    "detach_webhook",
    "inspect_instance",
    "peek_notification",
    "restore_webhook",
    "verify_empty",
    "wait_seconds",
    "wait_webhook_detached",
]
