"""What a reset says it removed: the count before the clear, 0 when no clear went through, else "unknown" and why."""

from __future__ import annotations

from datetime import datetime, timezone

from domain import Reason
from flows.models import QueueResetReport, StepRecord, count_before_text, removed_text
from flows.report import render_markdown
from flows.runbook import account_removed

AT = datetime(2025, 12, 4, 14, 53, tzinfo=timezone.utc)


def _report(*steps: tuple[str, str] | StepRecord, count_before: int | None = None, unknown: str = "") -> QueueResetReport:
    return QueueResetReport(id_instance=1101000001, reason=Reason.number_blocked, started_at=AT, count_before=count_before,
                            count_before_unknown=unknown,
                            steps=[s if isinstance(s, StepRecord) else StepRecord(step=s[0], result=s[1], started_at=AT, seconds=0.1)
                                   for s in steps])


def _failed(step: str, error: str) -> StepRecord:
    """A step that raised, as record_step keeps it."""
    return StepRecord(step=step, result=f"failed: {error}", failed=True, started_at=AT, seconds=0.1)


def test_a_clear_that_went_through_removed_the_count_before_it():
    report = _report(("count", "22 queued"), ("clear", "too early: leftTime 30 s"), ("clear", "cleared"), count_before=22)
    account_removed(report, stopped_at="verify")
    assert (report.removed, removed_text(report)) == (22, "22")
    assert "**Removed:** 22 notification(s); count before the clear: 22" in render_markdown(report)


def test_no_clear_removed_nothing():
    report = _report(("count", "3 queued"), ("clear", "refused: The system could not process the request"), count_before=3)
    account_removed(report, stopped_at="clear")
    assert report.removed == 0


def test_a_failed_count_is_unknown_and_says_why():
    report = _report(_failed("count", "HTTP 500"), unknown="GetWebhooksCount failed: HTTP 500")
    account_removed(report, stopped_at="count")
    assert count_before_text(report) == "unknown (GetWebhooksCount failed: HTTP 500)"
    assert report.removed == 0  # no clear was sent
    markdown = render_markdown(report)
    assert "count before the clear: unknown (GetWebhooksCount failed: HTTP 500)" in markdown and "None" not in markdown


def test_a_run_that_stopped_before_counting_says_where():
    report = _report(_failed("inspect", "HTTP 401"))
    account_removed(report, stopped_at="inspect")
    assert count_before_text(report) == "unknown (not counted: the run stopped at the inspect step)"


def test_a_clear_without_an_answer_may_have_removed_them():
    report = _report(("count", "6 queued"), _failed("clear", "timed out"), count_before=6)
    account_removed(report, stopped_at="clear")
    assert report.removed is None
    assert removed_text(report) == "unknown (the clear call failed without an answer and may have gone through; 6 were counted before it)"


def test_the_artifact_gives_one_fact_per_row_so_none_runs_off_the_pane():
    report = _report(("count", "3 queued"), ("clear", "cleared"), count_before=3)
    report.clear_attempts, report.waited_seconds, report.wid = 2, 12.25, "79001234567@c.us"
    markdown = render_markdown(report)
    facts = markdown[markdown.index("| | |"):markdown.index("## Steps")].strip().splitlines()[2:]
    assert all(row.count("|") == 3 for row in facts), facts
    assert {"| clear calls | 2 |", "| waited | 12.2 s |", "| account (wid) | 79001234567@c.us |",
            "| count before the clear | 3 |", "| reason | number_blocked |"} <= set(facts)


def test_a_zero_count_that_a_peek_contradicted_leaves_the_removed_number_unknown():
    report = _report(("count", "0 queued"), ("peek", "found one"), ("clear", "cleared"), ("verify", "count 0, peek empty: empty"),
                     count_before=0)
    account_removed(report, stopped_at="verify")
    assert report.removed is None
    assert removed_text(report) == "unknown (the count said 0, but a peek found notifications before the clear (GREEN-API's count was wrong))"


def test_a_peek_after_the_clear_does_not_contradict_a_zero_count():
    report = _report(("count", "0 queued"), ("peek", "nothing queued"), ("clear", "cleared"), ("peek", "found one"), count_before=0)
    account_removed(report, stopped_at="verify")
    assert report.removed == 0
