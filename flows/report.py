"""The run's report as Prefect sees it: a markdown artifact and a closing event."""

from __future__ import annotations

import logging

from prefect.artifacts import acreate_markdown_artifact

from flows.models import QueueResetReport, count_before_text, last_reset_of, removed_text
from instances.events import emit_step_event
from instances.memory import held_back, record_last_reset


def _cell(value: object) -> str:
    return "—" if value is None else str(value).replace("|", "\\|")


def _webhook_summary(report: QueueResetReport) -> str:
    done = "removed for the clear (SetSettings, remembered in a Prefect Secret block)" if report.webhook_detached else "left as it was"
    back = {True: "put back with its webhookUrlToken (SetSettings; GREEN-API applies it within 5 minutes)",
            False: "NOT put back: the next run puts it back", None: "nothing to put back"}[report.webhook_restored]
    return f"{done}; {back}"


def _removed(report: QueueResetReport) -> str:
    return f"{report.removed} notification(s)" if report.removed is not None else removed_text(report)


def _facts(report: QueueResetReport) -> list[tuple[str, str]]:
    webhook = None if report.webhook_url_set is None else ("set" if report.webhook_url_set else "empty")
    return [
        ("reason", report.reason.value),
        ("state", _cell(report.state_instance)),
        ("account (wid)", _cell(report.wid)),
        ("webhookUrl", _cell(webhook)),
        ("count before the clear", "unknown" if report.count_before is None else str(report.count_before)),
        ("count after", _cell(report.count_after)),
        ("verified by", _cell(report.verified_by)),
        ("clear calls", str(report.clear_attempts)),
        ("waited", f"{report.waited_seconds:.1f} s"),
        ("outgoing messages", _cell(report.outgoing_count) + (" (cleared)" if report.outgoing_cleared else "")),
    ]


def render_markdown(report: QueueResetReport) -> str:
    verdict = "verified empty" if report.verified_empty else "NOT verified empty"
    lines = [
        f"# Queue reset, instance {report.id_instance}: {verdict}",
        "",
        f"**Outcome:** `{report.outcome.value if report.outcome else 'unknown'}`: {report.message}",
        "",
        f"**Removed:** {_removed(report)}; count before the clear: {count_before_text(report)}, "
        f"after: {_cell(report.count_after)}",
        "",
        *([f"**Caveat:** {report.caveat}", ""] if report.caveat else []),
        *([f"**webhookUrl:** {_webhook_summary(report)}", ""] if report.webhook_detached or report.webhook_restored is not None else []),
        *([f"**Held back by the relay:** {report.held_back_by_relay} notification(s) of an account no longer on the "
           "instance never reached the app", ""] if report.held_back_by_relay else []),
        # Two columns: a row per fact stays readable in the UI's artifact pane (ten columns ran off its right edge).
        "| | |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in _facts(report)),
        "",
        "## Steps",
        "",
        "| # | step | result | started (UTC) | seconds |",
        "|---|---|---|---|---|",
    ]
    for number, step in enumerate(report.steps, start=1):
        lines.append(
            f"| {number} | {step.step} | {_cell(step.result)} | {step.started_at:%H:%M:%S} | {step.seconds:.2f} |"
        )
    return "\n".join(lines) + "\n"


async def publish_report(report: QueueResetReport) -> None:
    """One artifact per run (keyed by instance, so the UI keeps its history), the instance's last-reset record
    (``instances list`` shows it) and a closing event; the report also says how many notifications the relay has
    held back on the instance."""
    try:
        report.held_back_by_relay = ((await held_back(report.id_instance)) or {}).get("total")
    except Exception as exc:  # a count the report shows must not fail a run whose queue was reset
        logging.getLogger("greenapi.report").warning(
            "Instance %s: the relay's held-back count was not read (%s)", report.id_instance, type(exc).__name__)
    await acreate_markdown_artifact(
        key=f"queue-reset-{report.id_instance}",
        markdown=render_markdown(report),
        description=f"Queue reset of GREEN-API instance {report.id_instance}: {report.outcome.value if report.outcome else ''}",
    )
    try:
        await record_last_reset(report.id_instance, last_reset_of(report))
    except Exception as exc:  # what `instances list` shows must not fail a run whose queue was reset
        logging.getLogger("greenapi.report").warning(
            "Instance %s: the last-reset record was not written (%s)", report.id_instance, type(exc).__name__)
    event = "queue-reset.completed" if report.verified_empty else "queue-reset.failed"
    payload = report.model_dump(mode="json", exclude={"steps"})
    # The key numbers first, in words too: the event's page shows them without opening the raw JSON.
    payload = {"summary": f"removed {removed_text(report)}; count before {count_before_text(report)}, "
                          f"after {_cell(report.count_after)}", **payload}
    emit_step_event(report.id_instance, event, payload)
