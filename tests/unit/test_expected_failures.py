"""Prefect's task-run log lines for a step that failed with a GreenAPIError: one line each, at WARNING."""

from __future__ import annotations

import logging
import sys

from greenapi import AuthenticationError
from tasks.expected import ExpectedStepFailureFilter


def _record(level: int, message: str, error: BaseException | None = None, task_run_id: str = "run-1") -> logging.LogRecord:
    exc_info = None
    if error is not None:
        try:
            raise error
        except BaseException:
            exc_info = sys.exc_info()
    record = logging.LogRecord("prefect.task_runs", level, __file__, 1, message, None, exc_info)
    record.task_run_id = task_run_id
    return record


def test_an_expected_failure_keeps_its_lines_without_the_traceback_at_warning():
    refused = AuthenticationError("getStateInstance on instance 1 failed: HTTP 401", method="getStateInstance",
                                  id_instance=1, status_code=401)
    keep = ExpectedStepFailureFilter()
    failed, finished = _record(logging.ERROR, "Task run failed", refused), _record(logging.ERROR, "Finished in state Failed")

    assert keep.filter(failed) and keep.filter(finished)
    assert failed.exc_info is None and "Traceback" not in logging.Formatter().format(failed)
    assert (failed.levelname, finished.levelname) == ("WARNING", "WARNING")


def test_a_bug_keeps_its_traceback_and_its_level():
    keep = ExpectedStepFailureFilter()
    failed, finished = _record(logging.ERROR, "Task run failed", KeyError("x")), _record(logging.ERROR, "Finished in state Failed")

    assert keep.filter(failed) and keep.filter(finished)
    assert failed.exc_info is not None and "Traceback" in logging.Formatter().format(failed)
    assert (failed.levelno, finished.levelno) == (logging.ERROR, logging.ERROR)
