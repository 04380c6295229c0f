"""Expected step failures in Prefect's task-run logs: one line, not a traceback.

A step that fails with a GreenAPIError (a refused token, a wrong apiUrl, a 5xx after the client's retries)
is an outcome the runbook reports: the flow run ends Failed with that line as its final state, logged at
ERROR. Prefect's task engine would also log the step's exception at ERROR with its full traceback, then
its own "Finished in state Failed" at ERROR. This filter, on Prefect's task-run logger, keeps both lines,
drops the traceback and logs them at WARNING, so a failed run has one ERROR line: its final state. Any
other exception (a bug) is left alone, traceback and all.
"""

from __future__ import annotations

import logging

from greenapi import GreenAPIError

TASK_RUN_LOGGER = "prefect.task_runs"  # the logger Prefect's task engine logs to (see Prefect's logging.yml)


class ExpectedStepFailureFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self._failed_runs: set[str] = set()  # task runs that failed with an expected error: their finish line follows

    def filter(self, record: logging.LogRecord) -> bool:
        task_run_id = getattr(record, "task_run_id", None)
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, GreenAPIError):
            record.exc_info, record.exc_text = None, None
            _as_warning(record)
            if task_run_id:
                self._failed_runs.add(task_run_id)
        elif record.levelno >= logging.ERROR and not record.exc_info and task_run_id in self._failed_runs:
            self._failed_runs.discard(task_run_id)
            _as_warning(record)
        return True


def _as_warning(record: logging.LogRecord) -> None:
    record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)


_INSTALLED = False


def install_expected_failure_logging() -> None:
    """Attach the filter to Prefect's task-run logger. Idempotent; called where runs open their clients."""
    global _INSTALLED
    if not _INSTALLED:
        logging.getLogger(TASK_RUN_LOGGER).addFilter(ExpectedStepFailureFilter())
        _INSTALLED = True
