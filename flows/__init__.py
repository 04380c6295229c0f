"""Prefect flows: the runbooks, composed of the tasks in ``tasks``."""

from domain import Outcome, Reason
from flows.handle_account_change import handle_account_change
from flows.models import QueueNotVerifiedEmpty, QueueResetReport
from flows.sweep_instances import SweepReport, sweep_instances

__all__ = ["Outcome", "SweepReport", "sweep_instances", "QueueNotVerifiedEmpty", "QueueResetReport", "Reason", "handle_account_change"]
