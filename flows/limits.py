"""What bounds a run: its clears, its waits, how long it waits for its instance. The flows' own numbers.

None of them is an environment variable. The two an operator may want to change for one run,
``max_clear_attempts`` and ``max_total_wait_seconds``, are handle-account-change's parameters
(the run form, ``run_deployment``); the rest are fixed here, each with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

#: How long a run waits for another run on the same instance to finish (about a dozen full runs).
INSTANCE_LOCK_TIMEOUT_SECONDS = 900.0
#: A run that dies holding its instance's lock frees it after this long (Prefect's shortest lease is 60 s).
INSTANCE_LOCK_LEASE_SECONDS = 60.0
#: How often a run asks Prefect whether it was cancelled (UI or API), so it stops where it runs.
CANCEL_CHECK_SECONDS = 2.0


@dataclass(frozen=True)
class RunLimits:
    """One run's bounds on one instance."""

    #: ClearWebhooksQueue calls per run, too-early answers included.
    max_clear_attempts: int = 5
    #: All waits of one run together (leftTime, count refresh, clear window, refusals, SetSettings applying).
    max_total_wait_seconds: float = 300.0
    #: Clears answered isCleared false with a reason (not leftTime) tried again before the run gives up.
    max_refused_clears: int = 2
    #: The pause before a refused clear is tried again ("the system could not process the request" may pass).
    refused_retry_seconds: float = 2.0
    #: Added to every leftTime wait: GREEN-API's leftTime is whole seconds, its clock not ours.
    left_time_margin_seconds: float = 0.5

    def overridden(self, **values: float | int | None) -> "RunLimits":
        """These limits with the given ones (a run's parameters) replacing them; None keeps the default."""
        return replace(self, **{name: value for name, value in values.items() if value is not None})
