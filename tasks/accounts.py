"""What happened to the account on an instance, and the last account (wid) seen on each one.

The last wid lives in a Prefect Variable per instance (``greenapi-wid-<idInstance>``), so the
sweep, the webhook receiver and every worker share it through the Prefect server.
"""

from __future__ import annotations

from enum import Enum

from prefect.variables import Variable


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
        await Variable.aset(wid_variable_name(id_instance), wid, overwrite=True, tags=["greenapi", "wid"])
