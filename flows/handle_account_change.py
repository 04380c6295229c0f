"""handle-account-change: the flow that runs the runbook (flows/runbook.py) on one instance, holding it.

Started from the UI, by the sweep, by events or by the receiver's task worker. Completed only when the
queue is verified empty; otherwise it ends Failed with the report's one line, the QueueNotVerifiedEmpty
(carrying the report) as its data.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Awaitable, Callable

from prefect import flow
from prefect.states import Failed
from pydantic import BeforeValidator, Field

from domain import Reason
from flows.cancellation import stop_when_cancelled
from flows.limits import CANCEL_CHECK_SECONDS, INSTANCE_LOCK_LEASE_SECONDS, INSTANCE_LOCK_TIMEOUT_SECONDS, RunLimits
from flows.models import QueueNotVerifiedEmpty, QueueResetReport
from flows.naming import name_at_start, name_once_known
from flows.runbook import reset_instance_queue
from greenapi import ConfigurationError, GreenAPISettings, InstanceCredentials, get_settings, green_api_timings
from instances import resolve_credentials
from instances.locks import instance_lock
from tasks.results import InstanceInfo


# The one line a run started with `instance` empty ends with on a worker without settings, in the form's words.
EMPTY_INSTANCE_MESSAGE = ("instance is empty and this worker has no GREEN_API_ID_INSTANCE/GREEN_API_API_TOKEN_INSTANCE: "
                          "type a greenapi-instance block name or an idInstance in `instance`")

# A plain text field in the form (not `str | None`): callers that still pass None mean the empty field.
InstanceField = Annotated[str, BeforeValidator(lambda value: "" if value is None else value), Field(max_length=255)]


@flow(name="handle-account-change", flow_run_name=name_at_start, retries=0)
async def handle_account_change(
    reason: Reason = Reason.account_changed,
    instance: InstanceField = "",
    clear_outgoing: bool | None = None,
    detach_webhook: bool = False,
    max_clear_attempts: Annotated[int | None, Field(ge=1, le=50)] = None,
    max_total_wait_seconds: Annotated[int | None, Field(ge=0, le=3600)] = None,
    observed: InstanceInfo | None = None,
) -> QueueResetReport:
    """Clear and verify a GREEN-API instance's incoming notification queue.

    Args:
        reason: number_blocked (the number was blocked) or account_changed (another WhatsApp account is on the instance).
        instance: a greenapi-instance block name (e.g. shop-main) or an idInstance (e.g. 7105000001: the block
            registered for it). Empty: this worker's GREEN_API_ID_INSTANCE and GREEN_API_API_TOKEN_INSTANCE.
        clear_outgoing: also clear messages not yet sent. Empty: yes after a block (GREEN-API advises it before
            another number is connected), no after an account change.
        detach_webhook: with a webhookUrl set, follow GREEN-API's workaround: remember the webhookUrl and
            webhookUrlToken (a Secret block), SetSettings an empty webhookUrl, clear, verify with a peek, SetSettings
            both back, whatever happens in between. SetSettings restarts the instance and takes up to 5 minutes.
        max_clear_attempts: ClearWebhooksQueue calls allowed in this run (1-50). Empty: 5.
        max_total_wait_seconds: all waits of this run together (0-3600 s). Empty: 300.
        observed: leave empty. The sweep fills it in with its inspection of the instance moments ago, so the run
            does not ask GREEN-API again (it still counts the queue before the clear, to say what it removed);
            inspected again when the run starts more than two minutes after it.
    """
    limits = RunLimits().overridden(max_clear_attempts=max_clear_attempts, max_total_wait_seconds=max_total_wait_seconds)
    try:
        settings, timings = get_settings(), green_api_timings()
        credentials = await _credentials(instance, settings)
        await name_once_known(reason, credentials.id_instance)
        runbook = partial(reset_instance_queue, reason, credentials, settings.client_config(), limits=limits, timings=timings,
                          clear_outgoing=clear_outgoing, detach_webhook=detach_webhook, observed=observed)
        # Cancelled from the UI while it waits for the instance or works on it: it stops, the slot released.
        return await stop_when_cancelled(_holding_the_instance(credentials.id_instance, runbook),
                                         poll_seconds=CANCEL_CHECK_SECONDS)
    except (ConfigurationError, QueueNotVerifiedEmpty) as expected:
        # Expected outcomes, already one line each: returned as the final state, Prefect logs that line once
        # instead of a traceback. The exception is the state's data, so callers still get the report from
        # it (state.result(raise_on_failure=False)), and a direct call still raises it. Bugs still raise.
        return Failed(message=str(expected), data=expected)


async def _credentials(instance: str, settings: GreenAPISettings) -> InstanceCredentials:
    """The instance's credentials: the block ``instance`` names, or this worker's settings when it is empty."""
    if not (instance or "").strip() and (settings.id_instance is None or settings.api_token_instance is None):
        raise ConfigurationError(EMPTY_INSTANCE_MESSAGE)
    return await resolve_credentials(instance, settings)


async def _holding_the_instance(id_instance: int, runbook: Callable[[], Awaitable[QueueResetReport]]) -> QueueResetReport:
    """The runbook once this run holds the instance's slot: runs for one instance take turns."""
    async with instance_lock(id_instance, timeout_seconds=INSTANCE_LOCK_TIMEOUT_SECONDS, lease_seconds=INSTANCE_LOCK_LEASE_SECONDS):
        return await runbook()
