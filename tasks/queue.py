"""Steps on the queues: count, clear (one attempt), peek, verify."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from greenapi import GreenAPIClient
from instances.events import emit_step_event
from tasks.results import ClearAttempt, CountResult, Verification

# Every step reads or changes live state: a cached answer would be a wrong answer.
_step = dict(cache_policy=NO_CACHE)


@task(name="count-notifications", task_run_name="count-notifications-{client.id_instance}", **_step)
async def count_notifications(client: GreenAPIClient) -> CountResult:
    """GetWebhooksCount: the incoming notification queue (a snapshot up to count_refresh_seconds old)."""
    answer = await client.get_webhooks_count()
    result = CountResult(queue="incoming", count=answer.count)
    get_run_logger().info("Instance %s has %d queued incoming notification(s)", client.id_instance, result.count)
    emit_step_event(client.id_instance, "queue.counted", result.model_dump(mode="json"))
    return result


@task(name="count-outgoing-messages", task_run_name="count-outgoing-messages-{client.id_instance}", **_step)
async def count_outgoing_messages(client: GreenAPIClient) -> CountResult:
    """GetMessagesCount: messages still waiting to be sent from this instance."""
    answer = await client.get_messages_count()
    result = CountResult(queue="outgoing", count=answer.count)
    get_run_logger().info("Instance %s has %d queued outgoing message(s)", client.id_instance, result.count)
    emit_step_event(client.id_instance, "queue.counted", result.model_dump(mode="json"))
    return result


@task(name="clear-notifications", task_run_name="clear-notifications-{client.id_instance}", **_step)
async def clear_notifications(client: GreenAPIClient) -> ClearAttempt:
    """One ClearWebhooksQueue call. Too early and refused are answers, not errors: the flow decides."""
    answer = await client.clear_webhooks_queue()
    attempt = ClearAttempt(kind=answer.kind, left_time=answer.left_time, reason=answer.reason)
    logger = get_run_logger()
    if attempt.kind == "cleared":
        logger.info("Instance %s: incoming notification queue cleared", client.id_instance)
    elif attempt.kind == "too_early":
        logger.info("Instance %s: too early to clear (%s), leftTime %d s", client.id_instance, attempt.reason, attempt.left_time)
    else:
        logger.warning("Instance %s: clear refused: %s", client.id_instance, attempt.reason or "(no reason given)")
    emit_step_event(client.id_instance, "queue.clear-attempted", attempt.model_dump(mode="json"))
    return attempt


@task(name="clear-outgoing-messages", task_run_name="clear-outgoing-messages-{client.id_instance}", **_step)
async def clear_outgoing_messages(client: GreenAPIClient) -> ClearAttempt:
    """ClearMessagesQueue: drop messages not yet sent (opt-in: after a block, so the new number is not blocked too)."""
    answer = await client.clear_messages_queue()
    attempt = ClearAttempt(kind=answer.kind, left_time=answer.left_time, reason=answer.reason)
    get_run_logger().info("Instance %s: outgoing message queue clear: %s", client.id_instance, attempt.kind)
    emit_step_event(client.id_instance, "outgoing.clear-attempted", attempt.model_dump(mode="json"))
    return attempt


@task(name="peek-notification", task_run_name="peek-notification-{client.id_instance}", **_step)
async def peek_notification(client: GreenAPIClient) -> bool:
    """ReceiveNotification without deleting: True when nothing is queued. Needs an empty webhookUrl."""
    notification = await client.receive_notification()
    empty = notification is None
    if empty:
        get_run_logger().info("Instance %s: peek found no queued notification", client.id_instance)
    else:
        get_run_logger().info(
            "Instance %s: peek found notification %s (%s)", client.id_instance, notification.receipt_id, notification.type_webhook
        )
    emit_step_event(client.id_instance, "queue.peeked", {"empty": empty})
    return empty


@task(name="verify-empty", task_run_name="verify-empty-{client.id_instance}", **_step)
async def verify_empty(client: GreenAPIClient, peeked_empty: bool | None) -> Verification:
    """Count again (the caller waited for a fresh snapshot) and combine it with the peek made during that wait.

    Args:
        client: the instance's GREEN-API client.
        peeked_empty: what the peek after the clear found (True: nothing queued), None when no peek was
            possible (a webhookUrl is set).

    Returns:
        The count and the peek: empty only when the count is 0 and the peek, if any, found nothing.
    """
    count = await client.get_webhooks_count()
    verification = Verification(count_after=count.count, peeked_empty=peeked_empty)
    get_run_logger().info(
        "Instance %s: %d notification(s) counted, peek %s: queue %s",
        client.id_instance,
        verification.count_after,
        {True: "empty", False: "found one", None: "not possible (webhookUrl set)"}[peeked_empty],
        "verified empty" if verification.empty else "NOT empty",
    )
    emit_step_event(
        client.id_instance,
        "queue.verified",
        {**verification.model_dump(mode="json"), "empty": verification.empty, "method": verification.method},
    )
    return verification
