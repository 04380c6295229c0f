"""Shared helpers for flow tests: run the flow and read what it reported."""

from __future__ import annotations

import contextlib
import io
import logging
from typing import Iterator

from flows import QueueNotVerifiedEmpty, QueueResetReport, handle_account_change


async def run_flow(**parameters):
    """Run handle_account_change; return (final state, report) whether it completed or failed."""
    state = await handle_account_change(return_state=True, **parameters)
    result = await state.aresult(raise_on_failure=False) if hasattr(state, "aresult") else state.result(raise_on_failure=False)
    if isinstance(result, QueueNotVerifiedEmpty):
        return state, result.report
    assert isinstance(result, QueueResetReport), f"unexpected result {result!r} in state {state.type}: {state.message}"
    return state, result


def methods_called(emulator, id_instance: int) -> list[str]:
    return [call["method"] for call in emulator.state.calls(instance=id_instance)]


@contextlib.contextmanager
def every_log_record() -> Iterator[io.StringIO]:
    """Every record of the root and Prefect run loggers (which do not propagate) at DEBUG, as text."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    loggers = [logging.getLogger(name) for name in (None, "prefect", "prefect.flow_runs", "prefect.task_runs")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)  # httpx logs request URLs at INFO, httpcore at DEBUG
    try:
        yield stream
    finally:
        for lg, level in zip(loggers, levels):
            lg.removeHandler(handler)
            lg.setLevel(level)


class MemoryWidStore:
    """The receiver's per-instance memory (accounts, reports handed over) in this process, for tests that
    drive the receiver without a Prefect server; ``writes`` counts account records."""

    def __init__(self, seed: dict[int, str] | None = None) -> None:
        self.wids: dict[int, str] = dict(seed or {})
        self.reports: set[tuple[int, str]] = set()
        self.writes = 0

    async def last_seen(self, id_instance: int) -> str | None:
        return self.wids.get(id_instance)

    async def record(self, id_instance: int, wid: str) -> None:
        self.writes += 1
        if wid:
            self.wids[id_instance] = wid

    async def report_handled(self, id_instance: int, report_id: str) -> bool:
        return (id_instance, report_id) in self.reports

    async def remember_report(self, id_instance: int, report_id: str) -> None:
        self.reports.add((id_instance, report_id))

    async def forget_report(self, id_instance: int, report_id: str) -> None:
        self.reports.discard((id_instance, report_id))

    def store(self):
        from receiver.app import WidStore

        return WidStore(last_seen=self.last_seen, record=self.record, report_handled=self.report_handled,
                        remember_report=self.remember_report, forget_report=self.forget_report)


class MemoryRegistry:
    """Which instances are registered (greenapi-instance blocks), in this process, for tests that drive the
    receiver without a Prefect server. Every instance is registered except those in ``unregistered``, or,
    with ``only``, exactly those; ``lookups`` counts the questions asked."""

    def __init__(self, *, unregistered: set[int] | None = None, only: set[int] | None = None) -> None:
        self.unregistered = set(unregistered or ())
        self.only = None if only is None else set(only)
        self.lookups = 0

    async def is_registered(self, id_instance: int) -> bool:
        self.lookups += 1
        if self.only is not None:
            return id_instance in self.only
        return id_instance not in self.unregistered


class RecordingEmitter:
    """Stands in for the receiver's Prefect events connection: keeps each event it is given, as sent."""

    connected = True

    def __init__(self) -> None:
        self.events: list = []

    async def start(self) -> None: ...

    async def emit(self, event) -> None:
        self.events.append(event)

    async def close(self) -> None: ...
