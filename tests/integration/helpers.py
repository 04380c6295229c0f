"""Shared helpers for flow tests: run the flow and read what it reported."""

from __future__ import annotations

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
