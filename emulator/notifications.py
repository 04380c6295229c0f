"""An instance's notification queue: what is queued (GREEN-API's body shapes), what arrives and expires with time,
and what the control API shows of what it queued."""

from __future__ import annotations

import secrets
from typing import Any

from .clock import Clock
from .instance import Instance, Queued
from .world import World

_STALE_CONTACT = "79995550000@c.us"


def enqueue(inst: Instance, n: int, clock: Clock, type_webhook: str = "incomingMessageReceived") -> list[int]:
    """Queue ``n`` notifications of the account on the instance now, behind what is queued; their receiptIds."""
    now = clock.now()
    receipts = []
    for _ in range(n):
        receipt = inst.next_receipt
        inst.next_receipt += 1
        inst.queue[receipt] = Queued(notification_body(inst, type_webhook, receipt, clock.wall()), now)
        receipts.append(receipt)
    return receipts


def notification_body(inst: Instance, type_webhook: str, receipt: int, wall: float) -> dict[str, Any]:
    """A notification body in GREEN-API's shape, with the instance's account and state as they are now."""
    body: dict[str, Any] = {
        "typeWebhook": type_webhook,
        "instanceData": {"idInstance": inst.id, "wid": inst.wid, "typeInstance": inst.type_instance},
        "timestamp": int(wall),
    }
    if type_webhook == "stateInstanceChanged":
        body["stateInstance"] = inst.state
    elif type_webhook.endswith("MessageReceived"):  # incoming..., outgoing..., outgoingAPI...
        incoming = type_webhook.startswith("incoming")
        body["idMessage"] = secrets.token_hex(10).upper()
        body["senderData"] = {
            "chatId": _STALE_CONTACT,
            "chatName": "Stale Sender",
            "sender": _STALE_CONTACT if incoming else inst.wid,
            "senderName": "Stale Sender" if incoming else "",
        }
        body["messageData"] = {
            "typeMessage": "textMessage",
            "textMessageData": {"textMessage": f"stale #{receipt}"},
        }
    return body


def catch_up(world: World, inst: Instance, now: float) -> None:
    """Let notifications that 'arrived' since the last look appear in the queue, settings saved
    by setSettings apply once their delay is over, and notifications past their TTL go."""
    while inst.pending_settings and inst.pending_settings[0][0] <= now:
        if inst.apply_settings(inst.pending_settings.pop(0)[1]):
            world.wake()  # a new webhookUrl: a backlog may now go out
    if inst.arrival_rate > 0 and now > inst.arrival_anchor:
        inst.arrival_fraction += (now - inst.arrival_anchor) * inst.arrival_rate
        whole = int(inst.arrival_fraction)
        inst.arrival_fraction -= whole
        enqueue(inst, whole, world.clock)
    inst.arrival_anchor = max(inst.arrival_anchor, now)
    oldest = now - world.config.notification_ttl_seconds
    while inst.queue and next(iter(inst.queue.values())).queued_at < oldest:
        inst.queue.popitem(last=False)  # FIFO: the head is the oldest


def head(inst: Instance) -> dict[str, Any]:
    """The oldest notification as receiveNotification answers it (the queue must not be empty)."""
    receipt, entry = next(iter(inst.queue.items()))
    return {"receiptId": receipt, "body": entry.body}


def queued_view(inst: Instance, receipts: list[int]) -> list[dict[str, Any]]:
    """What the control API shows of notifications it just queued."""
    out = []
    for receipt in receipts:
        body = inst.queue[receipt].body
        out.append({"receiptId": receipt, "idMessage": body.get("idMessage"),
                    "wid": body["instanceData"]["wid"], "timestamp": body["timestamp"]})
    return out
