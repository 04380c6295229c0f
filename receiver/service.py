"""What the receiver decides about a validated report, knowing nothing of HTTP.

A report is handed over at most once: the duplicate memory (this process), then the reports remembered on
the Prefect server (every process, across restarts). Handing over means emitting the event, after giving
the report to a task worker when dispatch is ``background``. Every Prefect call that fails makes the
outcome :class:`Unavailable`, and nothing is remembered as handed over.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable, TypeVar, Union
from uuid import UUID

from prefect.events import Event

from domain import Reason
from domain.changes import AUTHORIZED, account_of, compares_accounts, reason_for, why_not_acted_on
from receiver.dedup import TTLCache
from receiver.dispatch import BackgroundDispatcher, DispatchError
from receiver.emitter import Emitter, EmitError
from receiver.events import EVENT_NAMES, Delivery, account_check_key, build_event, event_id_for, request_key, webhook_key
from receiver.models import STATE_INSTANCE_CHANGED, GreenApiWebhook, QueueResetRequest
from receiver.registry import InstanceRegistry
from instances import memory
from instances.blocks import BLOCK_TYPE_SLUG
from instances.events import instance_resource

logger = logging.getLogger("greenapi.receiver")

T = TypeVar("T")

RELAY_ACCOUNT_CHANGED = "greenapi.relay.account-changed"


@dataclass
class WidStore:
    """What the receiver remembers per instance, on the Prefect server by default (Variables, instances.memory):
    the last account (wid), and the reports already handed over, so a re-delivery after a restart starts nothing."""

    last_seen: Callable[[int], Awaitable[str | None]] = memory.last_seen_wid
    record: Callable[[int, str], Awaitable[None]] = memory.record_wid
    report_handled: Callable[[int, str], Awaitable[bool]] = memory.report_already_handled
    remember_report: Callable[[int, str], Awaitable[None]] = memory.remember_report
    forget_report: Callable[[int, str], Awaitable[None]] = memory.forget_report


@dataclass(frozen=True)
class Report:
    """A report as handed over (or about to be): what the answer names."""

    event_id: str
    event: str
    id_instance: int
    reason: Reason
    task_run_id: str | None = None


@dataclass(frozen=True)
class Accepted:
    """Handed over now, or before (``duplicate``)."""

    report: Report
    duplicate: bool


@dataclass(frozen=True)
class Ignored:
    """Understood, and nothing to do."""

    why: str


@dataclass(frozen=True)
class Unregistered:
    """No greenapi-instance block for this instance: nothing started."""

    id_instance: int


@dataclass(frozen=True)
class Unavailable:
    """Prefect did not answer or did not take it; the sender should re-send."""

    what: str


Decision = Union[Accepted, Ignored, Unregistered, Unavailable]


class _Unavailable(Exception):
    """Raised deep in a decision, turned into :class:`Unavailable` at its top."""


def not_acted_on(hook: GreenApiWebhook) -> str | None:
    """Why a webhook needs no decision at all (no Prefect call), or None when it may need one."""
    if hook.typeWebhook != STATE_INSTANCE_CHANGED:
        return f"only {STATE_INSTANCE_CHANGED} webhooks are acted on"
    return why_not_acted_on(hook.stateInstance, hook.instanceData.wid)


class ReportService:
    """The receiver's decisions: registered instance, duplicate, account comparison, hand-over."""

    def __init__(
        self,
        *,
        emitter: Emitter,
        wids: WidStore,
        registry: InstanceRegistry,
        seen: TTLCache[Report],
        dispatcher: BackgroundDispatcher | None = None,
        relay: bool = False,
    ) -> None:
        self.emitter, self.wids, self.registry, self.seen, self.dispatcher = emitter, wids, registry, seen, dispatcher
        # In front of the app, the relay holds the old account's notifications back as they come: an account
        # change then needs no clear, which would delete the new account's notifications queued behind.
        self.relay = relay
        # One decision at a time: duplicate check, account read, hand-over, account record.
        self._lock = asyncio.Lock()

    @property
    def events_connected(self) -> bool:
        return self.emitter.connected

    async def queue_reset(self, request: QueueResetRequest) -> Decision:
        """A request from another system: handed over unless it is a duplicate."""
        uuid = event_id_for(request_key(request))
        first = Report(str(uuid), EVENT_NAMES[request.reason], request.idInstance, request.reason)
        try:
            if not await self._registered(request.idInstance):
                logger.warning("receiver: queue-reset request for instance %s refused: no %s block is registered for it",
                               request.idInstance, BLOCK_TYPE_SLUG)
                return Unregistered(request.idInstance)
            async with self._lock:
                if (before := self._duplicate(first.event_id)) is not None:
                    return before
                done = await self._hand_over(uuid, first, delivery="api", source=request.source, note=request.note)
                return self._remember(first, done)
        except _Unavailable as exc:
            return Unavailable(str(exc))

    async def webhook(self, hook: GreenApiWebhook) -> Decision:
        """A GREEN-API webhook: ``blocked``, or ``authorized`` with another account than recorded, is handed over."""
        if (why := not_acted_on(hook)) is not None:
            return Ignored(why)
        id_instance = hook.instanceData.idInstance
        try:
            if not await self._registered(id_instance):
                logger.warning("receiver: %s webhook (%s) for instance %s ignored: no %s block is registered for it",
                               STATE_INSTANCE_CHANGED, hook.stateInstance, id_instance, BLOCK_TYPE_SLUG)
                return Unregistered(id_instance)
            async with self._lock:
                return await self._decide_webhook(event_id_for(webhook_key(hook)), hook)
        except _Unavailable as exc:
            return Unavailable(str(exc))

    async def account_observed(self, id_instance: int, wid: str) -> Decision:
        """The relay asked GREEN-API (GetSettings) and found ``wid`` on the instance: decided as an ``authorized``
        stateInstanceChanged with that account would be, without waiting for that webhook (FIFO delivers it only
        after the old account's backlog). Another account than recorded starts account_changed handling."""
        hook = GreenApiWebhook.model_validate({"typeWebhook": STATE_INSTANCE_CHANGED, "stateInstance": AUTHORIZED,
                                               "instanceData": {"idInstance": id_instance, "wid": wid}})
        try:
            if not await self._registered(id_instance):
                return Unregistered(id_instance)
            async with self._lock:
                return await self._decide_webhook(event_id_for(account_check_key(id_instance, wid)), hook,
                                                  delivery="relay-check", source="relay")
        except _Unavailable as exc:
            logger.warning("receiver: the account change found on instance %s was not handed over: %s", id_instance, exc)
            return Unavailable(str(exc))

    async def _decide_webhook(self, uuid: UUID, hook: GreenApiWebhook, *, delivery: Delivery = "greenapi-webhook",
                              source: str = "green-api") -> Accepted | Ignored:
        if (before := self._duplicate(str(uuid))) is not None:
            return before
        state, id_instance, wid = hook.stateInstance, hook.instanceData.idInstance, hook.instanceData.wid
        reason = await self._reason(id_instance, state, wid)
        if isinstance(reason, Ignored):
            return reason
        if reason is Reason.account_changed and self.relay:
            return await self._held_back_by_relay(uuid, id_instance, wid, delivery)
        first = Report(str(uuid), EVENT_NAMES[reason], id_instance, reason)
        done = await self._hand_over(uuid, first, delivery=delivery, source=source, wid=wid, state_instance=state)
        if done is not None and (account := account_of(state, wid)) is not None:
            # After the emit: a failed emit must leave the old account recorded, or the re-sent webhook would
            # look unchanged. A failure here is Unavailable; the re-sent webhook carries the same event id,
            # which Prefect's server de-duplicates.
            await self._call(self.wids.record(id_instance, account), "recording the account")
        return self._remember(first, done)

    async def _held_back_by_relay(self, uuid: UUID, id_instance: int, wid: str, delivery: Delivery) -> Ignored:
        """An account change with the relay in front: said (``greenapi.relay.account-changed``, which no trigger
        expects) and recorded, so neither the sweep nor a re-delivered webhook starts a reset run for it."""
        event = Event(id=uuid, event=RELAY_ACCOUNT_CHANGED, resource=instance_resource(id_instance),
                      payload={"id_instance": id_instance, "wid": wid, "delivery": delivery,
                               "action": "held back by the relay; no reset run, so nothing of the new account is cleared"})
        try:
            await self.emitter.emit(event)
        except EmitError as exc:
            logger.warning("receiver: event %s for instance %s not emitted: %s", uuid, id_instance, exc)
            raise _Unavailable("Prefect did not take the event") from None
        await self._call(self.wids.record(id_instance, wid), "recording the account")
        logger.info("receiver: instance %s has another account; the relay holds back the old one's notifications", id_instance)
        return Ignored("account changed: the relay holds back the old account's notifications (no reset run: a clear "
                       "would delete the new account's)")

    async def _reason(self, id_instance: int, state: str | None, wid: str) -> Reason | Ignored:
        """The reason (domain.changes.reason_for), the recorded account read only when it decides; the first
        account seen, or the same one, is recorded and nothing is handed over."""
        recorded = (await self._call(self.wids.last_seen(id_instance), "reading the last account")
                    if compares_accounts(state) else None)
        reason = reason_for(state, wid, recorded)
        if reason is None:
            await self._call(self.wids.record(id_instance, wid), "recording the account")
            return Ignored("first account seen on this instance: recorded" if recorded is None else "account unchanged")
        return reason

    def _duplicate(self, event_id: str) -> Accepted | None:
        before = self.seen.get(event_id)
        return Accepted(before, duplicate=True) if before is not None else None

    def _remember(self, first: Report, done: Report | None) -> Accepted:
        """``done`` None: handed over before, by this process or another one since (a duplicate)."""
        report = done if done is not None else first
        self.seen.add(report.event_id, report)
        return Accepted(report, duplicate=done is None)

    async def _hand_over(self, uuid: UUID, first: Report, **event_fields: Any) -> Report | None:
        """Hand the report over (to a task worker, or to the trigger through the event); None when it was
        handed over before."""
        id_instance, key = first.id_instance, first.event_id
        if await self._call(self.wids.report_handled(id_instance, key), "reading the reports handled"):
            return None
        task_run_id = await self._dispatch(uuid, first) if self.dispatcher is not None else None
        event = build_event(event_id=uuid, id_instance=id_instance, reason=first.reason, task_run_id=task_run_id, **event_fields)
        done = replace(first, event=event.event, task_run_id=str(task_run_id) if task_run_id else None)
        await self._emit(event, done)
        if self.dispatcher is None:  # the trigger starts the run once the event is in: remembered only now
            await self._call(self.wids.remember_report(id_instance, key), "remembering the report")
        return done

    async def _dispatch(self, uuid: UUID, first: Report) -> UUID:
        """The task run's id. Remembered first: a re-delivery racing this one must find it; forgotten again if
        the hand-over fails."""
        assert self.dispatcher is not None
        id_instance, key = first.id_instance, first.event_id
        await self._call(self.wids.remember_report(id_instance, key), "remembering the report")
        try:
            return await self.dispatcher.dispatch(event_id=uuid, id_instance=id_instance, reason=first.reason)
        except DispatchError as exc:
            logger.warning("receiver: report for instance %s not handed over: %s", id_instance, exc)
            await self._call(self.wids.forget_report(id_instance, key), "forgetting the report")
            raise _Unavailable("Prefect did not take the report") from None

    async def _emit(self, event: Event, done: Report) -> None:
        try:
            await self.emitter.emit(event)
        except EmitError as exc:
            logger.warning("receiver: event %s for instance %s not emitted: %s", done.event_id, done.id_instance, exc)
            raise _Unavailable("Prefect did not take the event") from None
        logger.info("receiver: emitted %s %s for instance %s", done.event, done.event_id, done.id_instance)

    async def _registered(self, id_instance: int) -> bool:
        return await self._call(self.registry.is_registered(id_instance), "reading the registered instances")

    async def _call(self, awaitable: Awaitable[T], what: str) -> T:
        try:
            return await awaitable
        except Exception as exc:
            logger.warning("receiver: %s failed: %s", what, type(exc).__name__)
            raise _Unavailable(f"Prefect did not answer ({what})") from None
