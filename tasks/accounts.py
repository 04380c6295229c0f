"""What happened to the account on an instance, and what runs remember about each instance.

The last account seen (``greenapi-wid-<idInstance>``) and the end of the clear window (``greenapi-next-clear-<idInstance>``)
live in Prefect Variables, so the sweep, the webhook receiver and every worker share them through the
Prefect server.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from prefect.variables import Variable

from tasks.quick_api import QuickPrefectAPI, QuickRetriesExhausted

_PAGE = 200


class Reason(str, Enum):
    """Why an instance's queue is reset."""

    number_blocked = "number_blocked"
    account_changed = "account_changed"


def wid_variable_name(id_instance: int) -> str:
    return f"greenapi-wid-{id_instance}"


def reason_for(state_instance: str | None, wid: str | None, recorded_wid: str | None) -> Reason | None:
    """Blocked means number_blocked; authorized with another account than recorded means account_changed.

    The first account ever seen on an instance is recorded, not reported: there is nothing to compare with.
    """
    if state_instance == "blocked":
        return Reason.number_blocked
    if state_instance == "authorized" and wid and recorded_wid and wid != recorded_wid:
        return Reason.account_changed
    return None


async def last_seen_wid(id_instance: int) -> str | None:
    value = await Variable.aget(wid_variable_name(id_instance), default=None)
    return value if isinstance(value, str) and value else None


async def record_wid(id_instance: int, wid: str) -> None:
    """Remember ``wid`` as the instance's account. Empty wids (not authorized yet) are not recorded."""
    if wid:
        await _set_variable(wid_variable_name(id_instance), wid, ["greenapi", "wid"])


def next_clear_variable_name(id_instance: int) -> str:
    return f"greenapi-next-clear-{id_instance}"


async def next_clear_allowed_at(id_instance: int) -> datetime | None:
    """When the instance's current clear window ends, as the last run learned it (its clear, or a leftTime)."""
    value = await Variable.aget(next_clear_variable_name(id_instance), default=None)
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


async def record_next_clear_allowed(id_instance: int, at: datetime) -> None:
    """Remember a window (opened by a clear, or announced by leftTime), so no run on any worker clears inside it."""
    await _set_variable(next_clear_variable_name(id_instance), at.isoformat(), ["greenapi", "clear-window"])


async def _set_variable(name: str, value: str, tags: list[str]) -> None:
    """Both variables are written on a run's critical path (between a clear and the wait after it; between
    the sweep's check and the hand-over), so with quick retries (tasks.quick_api): a local SQLite server's
    503 must not hold the run for Prefect's 2 s back-off."""
    try:
        async with QuickPrefectAPI() as api:
            await api.set_variable(name, value, tags)
    except QuickRetriesExhausted:
        await Variable.aset(name, value, overwrite=True, tags=tags)


async def recorded_wids() -> dict[int, str]:
    """Every recorded wid in a few paged API calls (a fleet sweep must not make one per instance)."""
    from prefect.client.orchestration import get_client

    prefix = wid_variable_name(0)[:-1]
    found: dict[int, str] = {}
    async with get_client() as client:
        offset = 0
        while True:
            response = await client.request(
                "POST", "/variables/filter",
                json={"variables": {"name": {"like_": prefix}}, "offset": offset, "limit": _PAGE},
            )
            page = response.json()
            for variable in page:
                suffix = variable["name"][len(prefix):]
                if variable["name"].startswith(prefix) and suffix.isdigit() and isinstance(variable["value"], str):
                    found[int(suffix)] = variable["value"]
            if len(page) < _PAGE:
                return found
            offset += _PAGE
