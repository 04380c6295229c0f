"""Injected faults: which pending rule takes a request, and what it does to the answer."""

from __future__ import annotations

from dataclasses import dataclass

from .config import FaultRule
from .outcome import Outcome


@dataclass
class PendingFault:
    rule: FaultRule
    left: int | None  # None = forever
    skip: int = 0  # matching requests still to let through before the fault applies


def take_fault(faults: list[PendingFault], method: str) -> PendingFault | None:
    """The first pending rule (FIFO) that matches and has no requests left to skip (removed once used up).
    Every matching rule still skipping counts this request as one of its ``after``."""
    chosen: PendingFault | None = None
    for pending in faults:
        if pending.rule.method not in ("*", method):
            continue
        if pending.skip > 0:
            pending.skip -= 1
        elif chosen is None:
            chosen = pending
    if chosen is not None and chosen.left is not None:
        chosen.left -= 1
        if chosen.left <= 0:
            faults.remove(chosen)
    return chosen


def apply_fault(out: Outcome, pending: PendingFault) -> Outcome:
    """The answer the fault makes instead of the method's (or the delay before it)."""
    fault = pending.rule.fault
    out.fault = fault.kind
    if fault.kind == "status":
        out.status = fault.status
        out.headers = dict(fault.headers)
        if fault.body is None:
            out.payload = {"error": f"injected fault: HTTP {fault.status}"}
            out.content_type = fault.content_type or "application/json"
        elif isinstance(fault.body, str):
            out.text = fault.body
            out.content_type = fault.content_type or "text/plain; charset=utf-8"
        else:
            out.payload = fault.body
            out.content_type = fault.content_type or "application/json"
    elif fault.kind == "non_json":
        out.text = fault.body
        out.content_type = "text/plain; charset=utf-8"
    elif fault.kind == "null_body":
        out.payload = None
    elif fault.kind == "json":
        out.payload = fault.body
    elif fault.kind == "delay":
        out.delay_seconds = fault.seconds
    elif fault.kind == "disconnect":
        out.disconnect = True
        out.status = 0
    return out
