"""Expected failures in Prefect's run logs: one line, not a traceback.

A step that fails with a GreenAPIError (a refused token, a wrong apiUrl, a 5xx after the client's retries)
is an outcome the runbook reports: the flow run ends Failed with that line as its final state, logged at
ERROR. Prefect's task engine would also log the step's exception at ERROR with its full traceback, then
its own "Finished in state Failed" at ERROR. A step that returns a Failed state (the sweep's check of a
batch with instances it could not check) is logged by Prefect with the state's whole repr, its data
included, and an empty traceback ("NoneType: None"). A flow that raises an expected failure (the sweep's
SweepIncomplete) gets "Encountered exception during execution" and a traceback. These filters, on Prefect's
task-run and flow-run loggers, keep one short line for each and log it at WARNING, so a failed run has one
ERROR line: its final state. Any other exception (a bug) is left alone, traceback and all.
"""

from __future__ import annotations

import logging
import re

from greenapi import GreenAPIError

TASK_RUN_LOGGER = "prefect.task_runs"  # the loggers Prefect's engines log to (see Prefect's logging.yml)
FLOW_RUN_LOGGER = "prefect.flow_runs"
_FAILED_STATE = re.compile(r"^Task run failed with state: Failed\(message='(?P<message>.*?)', type=FAILED", re.DOTALL)


class ExpectedStepFailureFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self._failed_runs: set[str] = set()  # task runs that failed with an expected error: their finish line follows

    def filter(self, record: logging.LogRecord) -> bool:
        task_run_id = getattr(record, "task_run_id", None)
        error = record.exc_info[1] if record.exc_info else None
        failed_state = _FAILED_STATE.match(str(record.msg)) if record.exc_info and error is None else None
        if isinstance(error, GreenAPIError) or failed_state is not None:
            record.exc_info, record.exc_text = None, None
            if failed_state is not None:  # the state's repr holds its data (a whole batch's results): its message only
                record.msg, record.args = "Task run failed: %s", (failed_state.group("message"),)
            _as_warning(record)
            if task_run_id:
                self._failed_runs.add(task_run_id)
        elif record.levelno >= logging.ERROR and not record.exc_info and task_run_id in self._failed_runs:
            self._failed_runs.discard(task_run_id)
            _as_warning(record)
        return True


class ExpectedFlowFailureFilter(logging.Filter):
    """A flow that ends on an expected failure (``EXPECTED_FLOW_FAILURES``): its "Encountered exception" line
    without the traceback, at WARNING; its final state stays the one ERROR line."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and type(error).__name__ in EXPECTED_FLOW_FAILURES:
            record.exc_info, record.exc_text = None, None
            _as_warning(record)
        return True


# By name: these live in flows/, which imports this module.
EXPECTED_FLOW_FAILURES = frozenset({"SweepIncomplete", "QueueNotVerifiedEmpty", "ConfigurationError"})


def _as_warning(record: logging.LogRecord) -> None:
    record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)


_INSTALLED = False


def install_expected_failure_logging() -> None:
    """Attach the filters to Prefect's task-run and flow-run loggers. Idempotent; called where runs open their clients."""
    global _INSTALLED
    if not _INSTALLED:
        logging.getLogger(TASK_RUN_LOGGER).addFilter(ExpectedStepFailureFilter())
        logging.getLogger(FLOW_RUN_LOGGER).addFilter(ExpectedFlowFailureFilter())
        _INSTALLED = True
