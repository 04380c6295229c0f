"""Prefect flows: the runbooks, composed of the tasks in ``tasks``."""

from flows.handle_account_change import handle_account_change
from flows.sweep_instances import SweepReport, sweep_instances
from flows.models import Outcome, QueueNotVerifiedEmpty, QueueResetReport, Reason

__all__ = ["Outcome", "SweepReport", "sweep_instances", "QueueNotVerifiedEmpty", "QueueResetReport", "Reason", "handle_account_change"]
