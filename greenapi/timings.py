"""GREEN-API's fixed behaviour, in one place: its windows, snapshots, rate limits and delays.

These are GREEN-API's, not the operator's, so none of them is a setting. The emulator plays them
(``emulator.EmulatorConfig``'s defaults) and can shorten them; a run is told of the emulator's
shorter ones with :class:`GreenApiTimings`, which the tests and the demo hand in through one
test-and-demo-only variable, :data:`EMULATOR_TIMINGS_ENV`. Never set it against the real GREEN-API.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from typing import Mapping

#: GetWebhooksCount answers a snapshot of the queue, refreshed every 10 s.
COUNT_REFRESH_SECONDS = 10.0
#: ClearWebhooksQueue is allowed once a minute per instance; earlier calls answer leftTime.
CLEAR_INTERVAL_SECONDS = 60.0
#: SetSettings restarts the instance; the new values apply within 5 minutes.
SETTINGS_APPLY_SECONDS = 300.0
#: ReceiveNotification's receiveTimeout: 5 to 60 seconds.
MIN_RECEIVE_TIMEOUT_SECONDS = 5
MAX_RECEIVE_TIMEOUT_SECONDS = 60
#: Calls per second GREEN-API allows per instance, by method (https://green-api.com/en/docs/api/ratelimiter/).
RATE_LIMITS_PER_SECOND: Mapping[str, float] = {
    "getStateInstance": 1,
    "getSettings": 1,
    "receiveNotification": 100,
    "deleteNotification": 100,
}
#: How long GREEN-API waits for a webhook server's answer before it counts the delivery as failed.
WEBHOOK_ANSWER_TIMEOUT_SECONDS = 180.0
#: After a failed delivery GREEN-API sends the same notification again this much later.
REDELIVERY_PAUSE_SECONDS = 60.0
#: Notifications older than this are dropped undelivered.
NOTIFICATION_TTL_SECONDS = 86_400.0

#: Holds a GreenApiTimings as JSON (``GreenApiTimings.env()``): the emulator's shortened windows, set by the tests
#: and the demo (``greenapi-migrate demo``, ``local``) for the runs they start, in-process or in subprocesses.
#: It is not a setting: nothing documents it for operators, and against the real GREEN-API it must stay unset.
EMULATOR_TIMINGS_ENV = "GREEN_API_EMULATOR_TIMINGS"


@dataclass(frozen=True)
class GreenApiTimings:
    """The GREEN-API windows a run waits out. The defaults are GREEN-API's; only an emulator's differ."""

    count_refresh_seconds: float = COUNT_REFRESH_SECONDS
    clear_interval_seconds: float = CLEAR_INTERVAL_SECONDS
    settings_apply_seconds: float = SETTINGS_APPLY_SECONDS

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{field.name} must be a number of seconds >= 0")

    @property
    def settings_poll_seconds(self) -> float:
        """How often a run reads GetSettings while SetSettings applies: 60 reads over the window at most, and
        never more than GREEN-API's rate limit allows (5 s against GREEN-API)."""
        return max(1 / RATE_LIMITS_PER_SECOND["getSettings"], self.settings_apply_seconds / 60)

    def env(self) -> dict[str, str]:
        """The environment that hands these timings to runs in other processes (the tests' and the demo's)."""
        return {EMULATOR_TIMINGS_ENV: json.dumps(asdict(self))}


def green_api_timings(environ: Mapping[str, str] | None = None) -> GreenApiTimings:
    """GREEN-API's timings, or the emulator's when :data:`EMULATOR_TIMINGS_ENV` holds them (tests and the demo).

    Raises:
        ConfigurationError: the variable is set but is not a GreenApiTimings as JSON; one line naming it.
    """
    raw = (os.environ if environ is None else environ).get(EMULATOR_TIMINGS_ENV, "").strip()
    if not raw:
        return GreenApiTimings()
    try:
        values = json.loads(raw)
        if not isinstance(values, dict):
            raise ValueError("not a JSON object")
        return GreenApiTimings(**values)
    except (ValueError, TypeError) as exc:
        from greenapi.settings import ConfigurationError

        problem = "not JSON" if isinstance(exc, json.JSONDecodeError) else str(exc).split("\n")[0]
        raise ConfigurationError(f"{EMULATOR_TIMINGS_ENV} (tests and the demo only): {problem}") from None
