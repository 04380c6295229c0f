"""What runs remember about each instance (the rules that read it are in domain/changes.py).

All of it lives in Prefect Variables, so the sweep, the receiver and every worker share it through the
Prefect server: what the last check saw (``greenapi-seen-<idInstance>``: the state, since when, and the
last account authorized on it), the end of the clear window
(``greenapi-next-clear-<idInstance>``) and the reports already handed to a run
(``greenapi-reports-<idInstance>``, so a re-delivered webhook starts no second run), and how the last
queue reset ended (``greenapi-last-reset-<idInstance>``: outcome, when, the state and wid it saw), and how many
notifications of an old account the relay held back (``greenapi-held-back-<idInstance>``), which
``greenapi-migrate instances list`` shows.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Iterable, TypeVar

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import VariableCreate, VariableUpdate
from prefect.exceptions import ObjectAlreadyExists
from prefect.variables import Variable
from pydantic import BaseModel, ValidationError

from domain.changes import AUTHORIZED, LastReset, SeenAccount, next_seen, parse_time

# Reports remembered per instance, and for how long: GREEN-API re-sends a webhook for up to 24 hours.
# 50 entries (about 80 characters each) stay inside Prefect's 5,000-character limit on a Variable's value.
REPORTS_KEPT = 50
REPORT_MEMORY = timedelta(hours=24)
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
# Variables read at once when the sweep looks up a whole fleet's recorded accounts.
READS_IN_FLIGHT = 16


def seen_variable_name(id_instance: int) -> str:
    return f"greenapi-seen-{id_instance}"


def next_clear_variable_name(id_instance: int) -> str:
    return f"greenapi-next-clear-{id_instance}"


def reports_variable_name(id_instance: int) -> str:
    return f"greenapi-reports-{id_instance}"


def last_reset_variable_name(id_instance: int) -> str:
    return f"greenapi-last-reset-{id_instance}"


def held_back_variable_name(id_instance: int) -> str:
    return f"greenapi-held-back-{id_instance}"


async def _write(name: str, value: Any, tag: str) -> None:
    """Set Variable ``name`` to ``value``: one request when it exists (an update), two when it does not yet.

    ``Variable.aset(overwrite=True)`` reads the Variable before and after updating it: three requests per write,
    made by every affected instance's runbook and by the sweep for every change it saw (bench/NOTES.md, session 12).
    """
    update = VariableUpdate(name=name, value=value, tags=["greenapi", tag])
    async with get_client() as client:
        try:
            await client.update_variable(update)
            return
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 404:
                raise
        try:
            await client.create_variable(VariableCreate(name=name, value=value, tags=update.tags))
        except ObjectAlreadyExists:  # created by another writer since the update found none: the last write wins
            await client.update_variable(update)


async def held_back(id_instance: int) -> dict | None:
    """How many notifications the relay held back on the instance (``total``), and when it last did (``last_at``)."""
    value = await Variable.aget(held_back_variable_name(id_instance), default=None)
    return value if isinstance(value, dict) and isinstance(value.get("total"), int) else None


async def held_back_many(ids: Iterable[int]) -> dict[int, dict]:
    return await _read_many(ids, held_back)


async def add_held_back(id_instance: int, count: int) -> int:
    """Add ``count`` to the instance's held-back total (written by the relay in batches); the new total."""
    total = ((await held_back(id_instance)) or {}).get("total", 0) + count
    await _write(held_back_variable_name(id_instance), {"total": total, "last_at": datetime.now(timezone.utc).isoformat()}, "held-back")
    return total


async def record_last_reset(id_instance: int, record: LastReset) -> None:
    """Remember how the instance's last queue reset ended (written by the runbook at its end)."""
    await _write(last_reset_variable_name(id_instance), record.model_dump(mode="json"), "last-reset")


async def _read_many(ids: Iterable[int], read_one: Callable[[int], Awaitable[T | None]],
                     slots: asyncio.Semaphore | None = None) -> dict[int, T]:
    """``read_one`` of each instance, a few at a time (``slots``, when several reads share one bound); the
    instances that have nothing are left out."""
    slots = slots or asyncio.Semaphore(READS_IN_FLIGHT)

    async def read(id_instance: int) -> tuple[int, T | None]:
        async with slots:
            return id_instance, await read_one(id_instance)

    return {id_instance: value for id_instance, value in await asyncio.gather(*(read(i) for i in ids)) if value is not None}


async def last_reset(id_instance: int) -> LastReset | None:
    """How the instance's last queue reset ended, as this version or an older one recorded it; None if unreadable."""
    return _valid(LastReset, await Variable.aget(last_reset_variable_name(id_instance), default=None))


async def last_resets(ids: Iterable[int], slots: asyncio.Semaphore | None = None) -> dict[int, LastReset]:
    """The last reset record of each instance that has one."""
    return await _read_many(ids, last_reset, slots)


def _valid(model: type[M], value: Any) -> M | None:
    """A stored record as ``model``; None when there is none or it does not read as one."""
    try:
        return model.model_validate(value) if isinstance(value, dict) else None
    except ValidationError:
        return None


async def last_seen(id_instance: int) -> SeenAccount | None:
    return _valid(SeenAccount, await Variable.aget(seen_variable_name(id_instance), default=None))


async def last_seen_many(ids: Iterable[int], slots: asyncio.Semaphore | None = None) -> dict[int, SeenAccount]:
    """The last check's record of each instance that has one."""
    return await _read_many(ids, last_seen, slots)


async def record_seen(id_instance: int, seen: SeenAccount) -> None:
    await _write(seen_variable_name(id_instance), seen.model_dump(mode="json"), "seen")


async def last_seen_wid(id_instance: int) -> str | None:
    """The last account authorized on the instance, as any check recorded it."""
    seen = await last_seen(id_instance)
    return seen.wid if seen else None


async def record_wid(id_instance: int, wid: str) -> None:
    """Remember ``wid`` as the instance's account (it is authorized with it). Empty wids are not recorded."""
    if wid:
        changed = next_seen(await last_seen(id_instance), AUTHORIZED, wid, datetime.now(timezone.utc))
        if changed is not None:
            await record_seen(id_instance, changed)


async def next_clear_allowed_at(id_instance: int) -> datetime | None:
    """When the instance's current clear window ends, as the last run learned it (its clear, or a leftTime)."""
    return parse_time(await Variable.aget(next_clear_variable_name(id_instance), default=None))


async def record_next_clear_allowed(id_instance: int, at: datetime) -> None:
    """Remember a window (opened by a clear, or announced by leftTime), so no run on any worker clears inside it."""
    await _write(next_clear_variable_name(id_instance), at.isoformat(), "clear-window")


async def _reports(id_instance: int) -> dict[str, str]:
    value = await Variable.aget(reports_variable_name(id_instance), default=None)
    return {k: v for k, v in value.items() if isinstance(v, str)} if isinstance(value, dict) else {}


async def report_already_handled(id_instance: int, report_id: str) -> bool:
    """True when this report (an event id) was handed to a run before, by any receiver process."""
    return report_id in await _reports(id_instance)


async def remember_report(id_instance: int, report_id: str) -> None:
    """Remember that this report was handed to a run; the oldest are forgotten after a day, or past REPORTS_KEPT."""
    now = datetime.now(timezone.utc)
    kept = {
        key: at for key, at in (await _reports(id_instance)).items()
        if (when := parse_time(at)) is not None and now - when < REPORT_MEMORY
    }
    kept[report_id] = now.isoformat()
    newest = dict(sorted(kept.items(), key=lambda item: item[1])[-REPORTS_KEPT:])
    await _write(reports_variable_name(id_instance), newest, "reports")


async def forget_report(id_instance: int, report_id: str) -> None:
    """Undo :func:`remember_report` when the run could not be handed over after all (the sender re-sends)."""
    kept = await _reports(id_instance)
    if kept.pop(report_id, None) is not None:
        await _write(reports_variable_name(id_instance), kept, "reports")
