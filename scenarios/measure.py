"""What a cell's numbers mean, defined once: from what the app stub recorded (its receipts) and what the
scenario enqueued (the emulator's answers to the notifications route), nothing else.

- **the app got** a notification when it answered that POST 2xx (a 503 it answered is not "got").
- **changed_at**: ``time.time()`` taken just before the scenario asked the emulator to put the new account
  on the instance. The scenarios make that change only when no delivery is in flight (the instance is
  blocked and drained, or its deliveries are paused), so this instant separates "before" from "after".
- **stale**: a notification the app got, other than stateInstanceChanged, carrying the old account's wid in
  ``instanceData.wid``, and received at or after ``changed_at``. Every receipt counts (a duplicate too).
- **fresh**: a notification the scenario enqueued (not a state webhook) carrying the wid of the account on
  the instance at the end: with an account change, the new account's; without one, every notification.
  **fresh got**: fresh ones the app got at least once. **fresh lost**: fresh ones the app never got by the
  end of the scenario (after the drain: the queue empty, nothing in flight); a clear deletes those queued
  behind the backlog.
- **duplicates**: receipts the app got of a notification it had already got (by idMessage; state webhooks
  excluded).
- **order kept**: the fresh notifications the app got, in the order of their first receipt, are in the
  order they were enqueued (GREEN-API's FIFO). ``out_of_order`` counts receipts that came before an
  earlier-enqueued one already received.
- **old**: the old account's notifications: got before ``changed_at``, stale (got after), never got
  (held back by the relay, or cleared).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from scenarios.app_stub import Receipt


@dataclass(frozen=True)
class Enqueued:
    id_message: str
    wid: str
    seq: int  # the order the scenario enqueued it (GREEN-API's FIFO order for one instance)
    at: float  # time.time() when the emulator answered


@dataclass
class CellResult:
    stale_got: int = 0
    fresh_enqueued: int = 0
    fresh_got: int = 0
    fresh_lost: int = 0
    duplicates: int = 0
    order_kept: bool = True
    out_of_order: int = 0
    old_enqueued: int = 0
    old_got_before_change: int = 0
    old_never_got: int = 0
    state_webhooks_got: int = 0
    unauthorized: int = 0  # POSTs without the app's bearer token (must be 0)
    unknown: int = 0  # notifications the app got that the scenario never enqueued (must be 0)
    answered_non_2xx: int = 0  # POSTs the app answered otherwise (its 503 minute, a failed forward)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def measure(enqueued: list[Enqueued], receipts: list[Receipt], *, old_wid: str, new_wid: str | None,
            changed_at: float | None) -> CellResult:
    """One cell's numbers (see the module's docstring)."""
    result = CellResult()
    by_id = {e.id_message: e for e in enqueued}
    fresh = [e for e in enqueued if new_wid is None or e.wid == new_wid]
    fresh_ids = {e.id_message for e in fresh}
    old = [e for e in enqueued if new_wid is not None and e.wid == old_wid]
    result.fresh_enqueued, result.old_enqueued = len(fresh), len(old)

    got_first = _tally_receipts(result, receipts, by_id, old_wid=old_wid, new_wid=new_wid, changed_at=changed_at)
    result.fresh_got = sum(1 for i in fresh_ids if i in got_first)
    result.fresh_lost = result.fresh_enqueued - result.fresh_got
    if old:
        result.old_got_before_change = sum(1 for e in old if e.id_message in got_first
                                           and (changed_at is None or got_first[e.id_message].at < changed_at))
        result.old_never_got = sum(1 for e in old if e.id_message not in got_first)

    result.out_of_order = _out_of_order(sorted((got_first[i] for i in fresh_ids if i in got_first), key=lambda r: r.at), by_id)
    result.order_kept = result.out_of_order == 0
    return result


def _tally_receipts(result: CellResult, receipts: list[Receipt], by_id: dict[str, Enqueued], *, old_wid: str,
                    new_wid: str | None, changed_at: float | None) -> dict[str, Receipt]:
    """Count what the app got into ``result`` (refused, state webhooks, unknown, duplicates, stale); the first
    receipt of each known message, by id."""
    got_first: dict[str, Receipt] = {}
    for r in sorted(receipts, key=lambda r: r.at):
        if not r.authorized:
            result.unauthorized += 1
        if not r.accepted:
            result.answered_non_2xx += 1
            continue
        if r.is_state:
            result.state_webhooks_got += 1
            continue
        if r.id_message not in by_id:
            result.unknown += 1
            continue
        if r.id_message in got_first:
            result.duplicates += 1
        else:
            got_first[r.id_message] = r
        if new_wid is not None and changed_at is not None and r.wid == old_wid and r.at >= changed_at:
            result.stale_got += 1
    return got_first


def _out_of_order(received: list[Receipt], by_id: dict[str, Enqueued]) -> int:
    """Receipts, in the order the app got them, of a message enqueued before one it already got."""
    out_of_order, highest = 0, -1
    for r in received:
        seq = by_id[r.id_message].seq
        if seq < highest:
            out_of_order += 1
        highest = max(highest, seq)
    return out_of_order
