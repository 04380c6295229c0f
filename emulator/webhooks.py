"""Webhook delivery's bookkeeping: which instance has a notification to POST now, what one POST's answer does to
the queue, and the delivery log. The POSTs themselves are made by ``delivery.Deliverer``.

A webhookUrlToken only leaves through ``Delivery.token`` (to the deliverer, for the Authorization header).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .instance import Instance, Queued
from .notifications import catch_up
from .world import World


@dataclass(frozen=True)
class Delivery:
    """One POST the deliverer is to make; hand it back to ``Webhooks.delivery_answered``."""

    instance: int
    receipt_id: int
    url: str
    token: str = field(repr=False)  # the webhookUrlToken: the Authorization header, nothing else
    body: dict[str, Any] = field(repr=False)  # message text: never logged
    timeout: float
    started_at: float  # wall
    instance_wid: str
    instance_state: str
    epoch: int  # the world's reset count: an answer from before a reset is ignored
    entry: Queued = field(repr=False, compare=False)


def url_host(url: str) -> str:
    """``host:port`` of a URL (the default port when none is given): where a webhook went, without its path,
    query or credentials."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme.lower())
    except ValueError:
        return "<invalid>"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port else host


def _deliverable(inst: Instance, now: float) -> bool:
    """A webhookUrl, something queued, no POST in flight and no redelivery pause running."""
    return bool(inst.webhook_url and inst.queue and not inst.delivering
                and (inst.retry_at is None or inst.retry_at <= now))


class Webhooks:
    """GREEN-API's Webhook Endpoint rules: oldest first, one POST at a time per instance, only a 200 removes."""

    def __init__(self, world: World) -> None:
        self._world = world
        self._log: list[dict[str, Any]] = []
        self._seq = 0

    def reset(self) -> None:
        with self._world.lock:
            self._log.clear()
            self._seq = 0

    def delivery_candidates(self) -> list[int]:
        """Instances with a notification to POST now: a webhookUrl, something queued, no POST in flight and no
        redelivery pause running. Called by the deliverer every few tens of milliseconds, so it stays cheap."""
        world = self._world
        with world.lock:
            if not world.config.deliver_webhooks:
                return []
            now = world.clock.now()
            out = []
            for inst in world.instances.values():
                if inst.pending_settings or (inst.webhook_url and inst.arrival_rate):
                    catch_up(world, inst, now)  # a webhookUrl about to apply, or arrivals to show
                if _deliverable(inst, now):
                    out.append(inst.id)
            return out

    def next_delivery(self, id_instance: int) -> Delivery | float | None:
        """What the instance's delivery task does next: a Delivery (POST it, then call ``delivery_answered``),
        seconds to wait first (``delivery_interval_seconds`` since the previous attempt started), or None:
        nothing to send now (no webhookUrl, nothing queued, a redelivery pause, delivery off)."""
        world = self._world
        with world.lock:
            inst = world.instances.get(id_instance)
            if inst is None or not world.config.deliver_webhooks:
                return None
            now = world.clock.now()
            catch_up(world, inst, now)
            if not _deliverable(inst, now):
                return None
            if inst.last_post_at is not None:
                gap = inst.last_post_at + world.config.delivery_interval_seconds - now
                if gap > 0:
                    return gap
            inst.retry_at, inst.last_post_at = None, now
            receipt, entry = next(iter(inst.queue.items()))
            delivery = Delivery(
                instance=inst.id, receipt_id=receipt, url=inst.webhook_url,
                token=str(inst.settings.get("webhookUrlToken") or ""), body=entry.body,
                timeout=world.config.delivery_timeout_seconds, started_at=world.clock.wall(),
                instance_wid=inst.wid, instance_state=inst.state, epoch=world.epoch, entry=entry,
            )
            if inst.webhook_url_unreachable:  # bug #1100: the attempt fails without reaching anyone
                self._failed(inst, delivery, None, "unreachable", now)
                return None
            inst.delivering = True
            return delivery

    def delivery_answered(self, delivery: Delivery, status: int | None, error: str | None) -> None:
        """The outcome of one POST: only status 200 removes the notification (if it is still queued: a clear may
        have removed it); anything else keeps it at the head, to be POSTed again after the redelivery pause."""
        world = self._world
        with world.lock:
            inst = world.instances.get(delivery.instance)
            if delivery.epoch != world.epoch or inst is None:
                return  # the world was reset while the POST was in flight
            now = world.clock.now()
            inst.delivering = False
            if status != 200:
                self._failed(inst, delivery, status, error, now)
                return
            inst.delivered += 1
            removed = inst.queue.get(delivery.receipt_id) is delivery.entry
            if removed:
                del inst.queue[delivery.receipt_id]
            self._record(delivery, status, None, removed)

    def delivery_abandoned(self, delivery: Delivery) -> None:
        """The POST was cancelled (the deliverer stopped): no outcome, no pause; it is sent again next time."""
        world = self._world
        with world.lock:
            inst = world.instances.get(delivery.instance)
            if inst is not None and delivery.epoch == world.epoch:
                inst.delivering = False

    def _failed(self, inst: Instance, delivery: Delivery, status: int | None, error: str | None, now: float) -> None:
        inst.retry_at = now + self._world.config.redelivery_pause_seconds
        self._record(delivery, status, error, False)

    def _record(self, delivery: Delivery, status: int | None, error: str | None, removed: bool) -> None:
        self._seq += 1
        body = delivery.body
        self._log.append({
            "seq": self._seq,
            "instance": delivery.instance,
            "receipt_id": delivery.receipt_id,
            "type_webhook": body.get("typeWebhook"),
            "id_message": body.get("idMessage"),
            "wid": body.get("instanceData", {}).get("wid"),
            "instance_wid": delivery.instance_wid,
            "instance_state": delivery.instance_state,
            "url_host": url_host(delivery.url),
            "status": status,
            "error": error,
            "removed": removed,
            "started_at": delivery.started_at,
            "finished_at": self._world.clock.wall(),
        })
        limit = self._world.config.delivery_log_limit
        if len(self._log) > limit:
            del self._log[: len(self._log) - limit]

    def deliveries(self, instance: int | None = None, after_seq: int | None = None) -> list[dict[str, Any]]:
        """Every delivery attempt still in the log, oldest first (never the token or the message text)."""
        with self._world.lock:
            return [dict(d) for d in self._log
                    if (instance is None or d["instance"] == instance) and (after_seq is None or d["seq"] > after_seq)]

    def clear_deliveries(self) -> None:
        """Empty the delivery log (the instances' ``delivered`` counts stay)."""
        with self._world.lock:
            self._log.clear()
