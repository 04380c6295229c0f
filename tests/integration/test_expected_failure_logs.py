"""What Prefect's engine logs for a run that ends on an expected failure, through the real engine on the session's
Prefect server: one ERROR line (the final state), no traceback, no dump of a state's data."""

from __future__ import annotations

import re

from prefect import flow, task
from prefect.states import Failed

from flows.sweep_instances import SweepIncomplete
from tasks.expected import install_expected_failure_logging
from tests.helpers import every_log_record

BULKY = "InstanceInfo(" + "x" * 300 + ")"  # what a batch check's Failed state carries as its data


@task(name="check-batch")
async def _check_batch():
    return Failed(message="1 of 2 instance(s) could not be checked", data=[BULKY, "timed out"])


@flow(name="sweep-like")
async def _sweep_like():
    await _check_batch(return_state=True)
    raise SweepIncomplete("1 of 2 instance(s) could not be checked (7105000001); see the sweep-report artifact")


async def test_a_sweep_that_could_not_check_an_instance_logs_one_error_line(prefect_server):
    install_expected_failure_logging()
    with every_log_record() as logs:
        state = await _sweep_like(return_state=True)
    text = logs.getvalue()
    assert state.is_failed()
    errors = {line for line in text.splitlines() if re.search(r"\bERROR\b", line)}  # a record reaches several handlers
    assert len(errors) == 1 and "Finished in state Failed" in next(iter(errors)), text
    assert "Traceback" not in text and "NoneType: None" not in text and BULKY not in text
    assert "Task run failed: 1 of 2 instance(s) could not be checked" in text
