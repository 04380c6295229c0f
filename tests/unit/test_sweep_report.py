"""The sweep-report artifact as the Prefect UI shows it: the answer first, failed instances first, every cell short.

The UI draws markdown table cells without wrapping (white-space: nowrap) and hides the table's scrollbar, so a
long cell pushes the columns after it out of sight; the report wraps long values itself (<br>) or cuts them.
"""

from __future__ import annotations

from datetime import datetime, timezone

from domain import Handling, Outcome, Reason, RunOutcome
from domain.changes import SeenAccount
from flows.sweep_instances import CELL_WIDTHS, ERROR_CELL_CHARS, InstanceFinding, SweepReport, _render, visible_lines

SINCE = datetime(2025, 12, 4, 14, 53, tzinfo=timezone.utc)
LONG_ERROR = ("getStateInstance on instance 7105000002 failed: HTTP 502 <html><h1>502 Bad Gateway</h1></html> | "
              "then timed out after 30 s waiting for an answer from api.green-api.example:443")


def _report() -> SweepReport:
    findings = [
        InstanceFinding(id_instance=7105000005, block_name="shop-5", state_instance="notAuthorized", wid=""),
        InstanceFinding(id_instance=7105000001, block_name="greenapi-shop-main-production-eu-west-1",
                        state_instance="authorized", wid="79990001111@c.us",
                        seen_before=SeenAccount(state="authorized", since=SINCE, wid="79990002222@c.us"),
                        reason=Reason.account_changed, handled_by="run account_changed-7105000001",
                        run_url="http://127.0.0.1:4200/runs/flow-run/5f0c", outcome=RunOutcome(handling=Handling.started)),
        InstanceFinding(id_instance=7105000002, block_name="sweep-7105000002", error=LONG_ERROR,
                        seen_before=SeenAccount(state="notAuthorized", since=SINCE, wid="79990001111@c.us")),
        InstanceFinding(id_instance=7105000003, block_name="shop-3", state_instance="blocked", wid="79990003333@c.us",
                        seen_before=SeenAccount(state="blocked", since=SINCE, wid="79990003333@c.us"),
                        note="handled: reset verified empty 12-04 14:55"),
        InstanceFinding(id_instance=7105000004, block_name="shop-4", state_instance="blocked", wid="79990004444@c.us",
                        reason=Reason.number_blocked, handled_by="inline", outcome=RunOutcome(handling=Handling.failed, reset=Outcome.clear_refused)),
    ]
    return SweepReport(checked=4, not_checked=1, affected=2, already_handled=1, failed_handling=1, findings=findings)


def _table(markdown: str) -> tuple[list[str], list[list[str]]]:
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    split = [[cell.strip() for cell in row.strip().strip("|").split(" | ")] for row in rows]
    return split[0], split[1:]


def test_the_answer_comes_first():
    header, _ = _table(_render(_report()))
    assert header == ["instance", "finding", "action", "error", "state, wid (before)"]


def test_failed_instances_come_first_with_the_error_readable():
    _, rows = _table(_render(_report()))
    assert [row[0].split("<br>")[0] for row in rows[:2]] == ["7105000002", "7105000004"]  # not checked, then a failed reset
    error = " ".join(visible_lines(rows[0][3]))
    assert error.startswith("getStateInstance on instance 7105000002 failed: HTTP 502 <html>")
    assert len(error) <= ERROR_CELL_CHARS and error.endswith("…")
    assert " ".join(visible_lines(rows[1][2])) == "inline: failed: clear_refused"


def test_every_visible_line_fits_its_column():
    header, rows = _table(_render(_report()))
    longest = {column: max(len(line) for row in rows for line in visible_lines(row[index]))
               for index, column in enumerate(header)}
    assert all(longest[column] <= CELL_WIDTHS[column] for column in header), longest
    # The artifact page gives the table about 810 px of a 1400 px window: at the UI's 14 px font (about 7 px a
    # character) and each cell's padding, 95 characters a row (seen whole in Chromium at 1400 px).
    assert sum(CELL_WIDTHS.values()) <= 95
    by_instance = {row[0].split("<br>")[0]: row for row in rows}
    assert visible_lines(by_instance["7105000001"][4]) == ["authorized", "79990001111@c.us", "was authorized",
                                                           "from 12-04 14:53", "79990002222@c.us"]
    assert visible_lines(by_instance["7105000001"][0]) == ["7105000001", "greenapi-shop-ma", "in-production-e…"]


def test_cells_carry_no_markup_of_their_own():
    _, rows = _table(_render(_report()))
    by_instance = {row[0].split("<br>")[0]: row for row in rows}
    assert by_instance["7105000001"][2] == "[run](http://127.0.0.1:4200/runs/flow-run/5f0c): started"
    assert "<html>" not in by_instance["7105000002"][3] and "&lt;html&gt;" in by_instance["7105000002"][3]
    assert by_instance["7105000003"][4].split("<br>")[1] == "79990003333\\@c.us"  # not made a mailto: link
    assert "reset verified empty 12-04 14:55" in " ".join(visible_lines(by_instance["7105000003"][1]))


def test_the_instances_with_nothing_to_do_are_one_line_at_any_fleet_size():
    report = _report()
    report.findings += [InstanceFinding(id_instance=7200000000 + i, block_name=f"bench-{i}", state_instance="authorized",
                                        wid=f"7{7200000000 + i}@c.us") for i in range(10_000)]
    markdown = _render(report)

    _, rows = _table(markdown)
    assert [row[0].split("<br>")[0] for row in rows] == ["7105000002", "7105000004", "7105000001", "7105000003"]
    assert ("**10,001 with nothing to do** (same account as recorded, not blocked): 10,000 authorized, 1 notAuthorized. "
            "Not authorized: 7105000005.") in markdown
    assert len(markdown) < 5_000
