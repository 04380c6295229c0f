"""The Prefect automations this project declares, and how they are applied (idempotently, by name)."""

from __future__ import annotations

from datetime import timedelta

from prefect.automations import Automation
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture

from flows.cancellation import HEARTBEAT_EVENT, HEARTBEAT_SECONDS

CRASHED_RUNS = "greenapi-crashed-runs"
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


async def apply_automations() -> None:
    """Create the project's automations, or bring an existing one (same name) up to date."""
    wanted = crashed_runs_automation()
    try:
        existing = await Automation.aread(name=wanted.name)
    except ValueError:  # not found
        await wanted.acreate()
        return
    wanted.id = existing.id
    await wanted.aupdate()
