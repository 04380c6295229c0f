"""The Prefect automations this project declares, and how they are applied (idempotently, by name).

- ``greenapi-crashed-runs``: a run whose heartbeats stop before it ends is marked Crashed.
- ``greenapi-notify-queue-reset-failed`` and ``greenapi-notify-sweep-failed``: a notification through the
  Prefect notification block ``greenapi-migrate automations apply --notify-block`` names; without one, none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID

from prefect.automations import Automation
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState, SendNotification
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.exceptions import ObjectNotFound

from flows.cancellation import HEARTBEAT_EVENT, HEARTBEAT_SECONDS

CRASHED_RUNS = "greenapi-crashed-runs"
NOTIFY_QUEUE_RESET_FAILED = "greenapi-notify-queue-reset-failed"
NOTIFY_SWEEP_FAILED = "greenapi-notify-sweep-failed"
NOTIFICATION_AUTOMATIONS = (NOTIFY_QUEUE_RESET_FAILED, NOTIFY_SWEEP_FAILED)
SWEEP_FLOW = "sweep-instances"
# Three missed heartbeats: a busy process may be late once or twice.
HEARTBEATS_MISSED = 3


def crashed_runs_automation() -> Automation:
    """A run whose heartbeats stop before it ends (its process died) is marked Crashed, not left Running."""
    return Automation(
        name=CRASHED_RUNS,
        description="Marks a handle-account-change run Crashed when its process dies (its heartbeats stop before it ends).",
        trigger=EventTrigger(
            match={"prefect.resource.id": "prefect.flow-run.*"},
            after={HEARTBEAT_EVENT},
            expect={HEARTBEAT_EVENT, "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=HEARTBEAT_SECONDS * HEARTBEATS_MISSED),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message="Its process stopped sending heartbeats before the run ended")],
    )


# The templates read only fields known to carry no secret: the instance label, and the report's outcome,
# reason, counts (and why one is unknown) and message (the project's own text, which the token canary tests
# check in every event).
# The whole payload is never rendered, so a field added to the report later cannot leak through here.
_SHOW = "{% macro show(value) %}{{ 'unknown' if value is undefined or value is none else value }}{% endmacro %}"
_QUEUE_RESET_SUBJECT = (
    _SHOW + "GREEN-API instance {{ event.resource['greenapi.id-instance'] }}: queue reset failed "
    "({{ show(event.payload.outcome) }})"
)
_QUEUE_RESET_BODY = _SHOW + """\
GREEN-API instance {{ event.resource['greenapi.id-instance'] }}: the queue reset ended {{ show(event.payload.outcome) }}; \
the incoming queue is NOT verified empty.
{{ event.payload.message | default('') }}
Removed: {{ show(event.payload.removed) }} notification(s)\
{% if event.payload.removed_unknown %} ({{ event.payload.removed_unknown }}){% endif %}.
Reason: {{ show(event.payload.reason) }}; notifications before the clear: {{ show(event.payload.count_before) }}\
{% if event.payload.count_before_unknown %} ({{ event.payload.count_before_unknown }}){% endif %}, \
after: {{ show(event.payload.count_after) }}; clear calls: {{ show(event.payload.clear_attempts) }}.
{% if flow_run %}Flow run: {{ flow_run.name }}.{% endif %}
"""

# A failed sweep's state message is quoted only when it is the sweep's own SweepIncomplete: any other
# failure's message is exception text Prefect wrote, which the project does not vouch for.
_SWEEP_SUBJECT = "GREEN-API sweep {{ event.resource['prefect.resource.name'] }}: {{ event.resource['prefect.state-name'] }}"
_SWEEP_BODY = """\
The sweep-instances run {{ event.resource['prefect.resource.name'] }} ended {{ event.resource['prefect.state-name'] }}.
{% set message = event.resource['prefect.state-message'] | default('', true) %}\
{% if 'SweepIncomplete' in message %}{{ message }}{% else %}Its message is not quoted here: see the run in the Prefect UI.{% endif %}
"""


def queue_reset_failed_automation(block_document_id: UUID) -> Automation:
    """Every ``greenapi.queue-reset.failed`` event becomes a notification naming the instance and the outcome."""
    return Automation(
        name=NOTIFY_QUEUE_RESET_FAILED,
        description="Notifies (through the block of `automations apply --notify-block`) when a queue reset ends not verified empty.",
        trigger=EventTrigger(
            match={"prefect.resource.id": "greenapi.instance.*"},
            expect={"greenapi.queue-reset.failed"},
            for_each={"prefect.resource.id"},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[SendNotification(block_document_id=block_document_id, subject=_QUEUE_RESET_SUBJECT, body=_QUEUE_RESET_BODY)],
    )


def sweep_failed_automation(block_document_id: UUID) -> Automation:
    """A sweep-instances run that ends Failed or Crashed becomes a notification naming the run and the outcome."""
    return Automation(
        name=NOTIFY_SWEEP_FAILED,
        description="Notifies (through the block of `automations apply --notify-block`) when a sweep-instances run ends Failed or Crashed.",
        trigger=EventTrigger(
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": SWEEP_FLOW},
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            for_each={"prefect.resource.id"},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[SendNotification(block_document_id=block_document_id, subject=_SWEEP_SUBJECT, body=_SWEEP_BODY)],
    )


@dataclass
class AppliedAutomations:
    """What ``apply_automations`` did: ``created NAME`` / ``updated NAME`` / ``removed NAME`` lines, and the
    one-line reason the notifications are off when the operator asked for them."""

    changes: list[str] = field(default_factory=list)
    problem: str | None = None


async def apply_crashed_runs() -> str:
    """Create greenapi-crashed-runs, or bring it up to date (``serve`` and ``task-worker`` do as they start)."""
    return await _apply(crashed_runs_automation())


async def apply_automations(notify_block: str | None) -> AppliedAutomations:
    """Make the project's automations on the server what ``greenapi-migrate automations apply`` declares.

    Args:
        notify_block: the notification block failures go through, as block-type-slug/block-name; None: none.

    Returns:
        What changed. The notification automations are applied while ``notify_block`` names a notification
        block and removed otherwise, so none points at a block that is not there; why a named block cannot be
        used is ``problem``, and greenapi-crashed-runs is applied all the same.
    """
    applied = AppliedAutomations(changes=[await apply_crashed_runs()])
    block_id, applied.problem = await _notification_block(notify_block) if notify_block else (None, None)
    if block_id is not None:
        for wanted in (queue_reset_failed_automation(block_id), sweep_failed_automation(block_id)):
            applied.changes.append(await _apply(wanted))
    else:
        for stale in NOTIFICATION_AUTOMATIONS:
            applied.changes.extend(await _remove(stale))
    return applied


async def _notification_block(name: str) -> tuple[UUID | None, str | None]:
    """The id of the notification block ``name`` (block-type-slug/block-name) names, or None and why not."""
    slug, _, block_name = name.strip().partition("/")
    if not slug or not block_name:
        return None, (f"--notify-block {name!r} is not block-type-slug/block-name (e.g. slack-webhook/ops, "
                      "custom-webhook/ops): failure notifications are off")
    try:
        async with get_client() as client:
            document = await client.read_block_document_by_name(block_name, slug, include_secrets=False)
    except ObjectNotFound:
        return None, (f"--notify-block: no {slug} block named {block_name!r} on the Prefect server: failure "
                      "notifications are off (create it, then apply again)")
    schema = document.block_schema
    if schema is not None and "notify" not in schema.capabilities:
        return None, f"--notify-block: {slug}/{block_name} is not a notification block: failure notifications are off"
    return document.id, None


async def _apply(wanted: Automation) -> str:
    try:
        existing = await Automation.aread(name=wanted.name)
    except ValueError:  # not found
        await wanted.acreate()
        return f"created {wanted.name}"
    wanted.id = existing.id
    await wanted.aupdate()
    return f"updated {wanted.name}"


async def _remove(name: str) -> list[str]:
    async with get_client() as client:
        found = await client.read_automations_by_name(name=name)
        for automation in found:
            await client.delete_automation(automation.id)
    return [f"removed {name}"] if found else []
