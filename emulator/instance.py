"""One emulated instance: its account, settings, queue, reported bugs and delivery state, and what the control
API shows of it.

The token is kept only in ``Instance.token`` and is never returned by ``view``, logged or summarised (the partner
endpoint lists it, as GREEN-API does).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from .config import DOCUMENTED_SETTINGS, InstancePatch, InstanceSeed, RefuseClears
from .faults import PendingFault

_PARTNER_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.000Z"


@dataclass
class Queued:
    """One queued notification: its body as made when it was queued (never changed after)."""

    body: dict[str, Any]
    queued_at: float  # clock time, for notification_ttl_seconds


@dataclass
class Instance:
    id: int
    token: str
    state: str
    wid: str
    webhook_url: str
    queue: "OrderedDict[int, Queued]" = field(default_factory=OrderedDict)  # receiptId -> notification, FIFO
    next_receipt: int = 1
    outgoing: int = 0
    last_clear: float | None = None
    clear_before_first_call: float | None = None  # seconds; applied at the first authenticated call
    #: How a client can know the current clear window: None (seeded: someone else cleared, no
    #: client has been told yet), "api_clear" (opened by a clear through the API) or
    #: "left_time" (announced by a leftTime answer).
    window_known: str | None = None
    window_known_at: float | None = None  # clock time it became knowable
    clears_done: int = 0
    faults_cleared: int = 0  # clear_faults() calls: each ends the delays of the requests held then
    snapshot_value: int | None = None
    snapshot_at: float | None = None
    arrival_rate: float = 0.0
    arrival_anchor: float = 0.0
    arrival_fraction: float = 0.0
    cyrillic_count: bool = False
    refuse: RefuseClears | None = None
    faults: list[PendingFault] = field(default_factory=list)
    rate_hits: dict[str, deque] = field(default_factory=dict)
    type_instance: str = "whatsapp"
    v3_prefix_required: bool = False
    count_zero_at: int | None = None
    webhook_url_unreachable: bool = False
    clear_fails_with_webhook_url: bool | str = False
    strict_receive_timeout: bool = False
    #: Every settings field but wid and webhookUrl (those are ``wid`` and ``webhook_url``).
    settings: dict[str, Any] = field(default_factory=dict)
    settings_apply_delay: float = 0.0
    pending_settings: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # (apply at, changes)
    settings_saved: int = 0
    name: str = ""
    deleted: bool = False
    is_expired: bool = False
    created_wall: float = 0.0
    delivering: bool = False  # a POST to the webhookUrl is in flight
    last_post_at: float | None = None  # clock time the last delivery attempt started (delivery_interval_seconds)
    retry_at: float | None = None  # clock time the failed head may be POSTed again
    delivered: int = 0  # deliveries answered 200

    def __repr__(self) -> str:  # never show the token
        return f"Instance(id={self.id}, state={self.state!r}, queue={len(self.queue)})"

    @classmethod
    def from_seed(cls, seed: InstanceSeed, now: float, wall: float) -> "Instance":
        """A new instance as the seed describes it (its notifications are queued by the caller)."""
        inst = cls(
            id=seed.id_instance, token=seed.api_token, state=seed.state, wid=seed.wid, webhook_url=seed.webhook_url,
            outgoing=seed.outgoing_messages, cyrillic_count=seed.cyrillic_count,
            refuse=seed.refuse_clears.model_copy() if seed.refuse_clears else None,
            arrival_rate=seed.arrival_rate_per_second, arrival_anchor=now, type_instance=seed.type_instance,
            v3_prefix_required=seed.v3_prefix_required, count_zero_at=seed.count_zero_at,
            webhook_url_unreachable=seed.webhook_url_unreachable,
            clear_fails_with_webhook_url=seed.clear_fails_with_webhook_url,
            strict_receive_timeout=seed.strict_receive_timeout,
            settings={k: v for k, v in {**DOCUMENTED_SETTINGS, **seed.settings}.items() if k not in ("wid", "webhookUrl")},
            settings_apply_delay=seed.settings_apply_delay_seconds, name=seed.name, deleted=seed.deleted,
            is_expired=seed.is_expired, created_wall=wall,
            clear_before_first_call=seed.cleared_before_first_call_seconds,
        )
        if seed.cleared_seconds_ago is not None:
            inst.last_clear = now - seed.cleared_seconds_ago
        if seed.count_snapshot is not None:
            inst.snapshot_value, inst.snapshot_at = seed.count_snapshot, now
        return inst

    def patch(self, patch: InstancePatch, now: float) -> None:
        """A silent edit of the fields ``patch`` gives (notifications are added by the caller)."""
        given = patch.model_fields_set
        if patch.state is not None:
            self.state = patch.state
        if patch.wid is not None:
            self.wid = patch.wid
        if patch.webhook_url is not None:
            self.webhook_url = patch.webhook_url
        if patch.arrival_rate_per_second is not None:
            self.arrival_rate = patch.arrival_rate_per_second
            self.arrival_anchor = now
        if patch.cyrillic_count is not None:
            self.cyrillic_count = patch.cyrillic_count
        if "refuse_clears" in given:
            self.refuse = patch.refuse_clears.model_copy() if patch.refuse_clears else None
        if "count_zero_at" in given:
            self.count_zero_at = patch.count_zero_at
        for name in ("webhook_url_unreachable", "clear_fails_with_webhook_url", "strict_receive_timeout"):
            if getattr(patch, name) is not None:
                setattr(self, name, getattr(patch, name))
        self.outgoing += patch.add_outgoing

    def apply_settings(self, changes: dict[str, Any]) -> bool:
        """Apply saved settings; whether the webhookUrl was among them (a backlog may now go out)."""
        for name, value in changes.items():
            if name == "webhookUrl":
                self.webhook_url = value
            else:
                self.settings[name] = value
        return "webhookUrl" in changes

    def all_settings(self) -> dict[str, Any]:
        """Every documented GetSettings field, in GetSettings' order."""
        every = {"wid": self.wid, "webhookUrl": self.webhook_url, **self.settings}
        return {name: every[name] for name in DOCUMENTED_SETTINGS}

    def window_left(self, now: float, clear_window: float) -> float:
        """Seconds until a clear is allowed again (0: allowed now)."""
        if self.last_clear is None:
            return 0.0
        return max(0.0, clear_window - (now - self.last_clear))

    def view(self, now: float, clear_window: float) -> dict[str, Any]:
        """What the control API shows (never the token)."""
        window_left = self.window_left(now, clear_window)
        return {
            "id_instance": self.id, "state": self.state, "wid": self.wid, "webhook_url": self.webhook_url,
            "queue_length": len(self.queue), "count_snapshot": self.snapshot_value,
            "snapshot_age_seconds": None if self.snapshot_at is None else now - self.snapshot_at,
            "outgoing_messages": self.outgoing,
            "window_left_seconds": window_left,
            "window_known": self.window_known if window_left > 0 else None,
            "clears_done": self.clears_done,
            "faults_pending": [
                {"method": f.rule.method, "fault": f.rule.fault.model_dump(), "times": f.left, "after": f.skip}
                for f in self.faults
            ],
            "arrival_rate_per_second": self.arrival_rate, "cyrillic_count": self.cyrillic_count,
            "refuse_clears": self.refuse.model_dump() if self.refuse else None,
            "type_instance": self.type_instance, "v3_prefix_required": self.v3_prefix_required,
            "count_zero_at": self.count_zero_at, "webhook_url_unreachable": self.webhook_url_unreachable,
            "clear_fails_with_webhook_url": self.clear_fails_with_webhook_url,
            "strict_receive_timeout": self.strict_receive_timeout,
            "settings_saved": self.settings_saved,
            "settings_pending": len(self.pending_settings),
            "name": self.name, "deleted": self.deleted, "is_expired": self.is_expired,
            "delivering": self.delivering,
            "next_delivery_at": self.retry_at if self.retry_at is not None and self.retry_at > now else None,
            "delivered": self.delivered,
        }

    def partner_view(self) -> dict[str, Any]:
        """The instance as GREEN-API's partner ``getInstances`` lists it (token included, as GREEN-API does)."""
        created = datetime.fromtimestamp(self.created_wall, timezone.utc)
        return {
            "idInstance": self.id,
            "name": self.name,
            "typeInstance": self.type_instance,
            "typeAccount": "",
            "partnerUserUiid": "",
            "timeCreated": created.strftime(_PARTNER_TIME_FORMAT),
            "timeDeleted": created.strftime(_PARTNER_TIME_FORMAT) if self.deleted else "",
            "apiTokenInstance": self.token,
            "deleted": self.deleted,
            "tariff": "Developer",
            "isFree": False,
            "isPartner": True,
            "expirationDate": (created + timedelta(days=30)).strftime(_PARTNER_TIME_FORMAT),
            "isExpired": self.is_expired,
        }
