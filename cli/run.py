"""``greenapi-migrate run``: one flow run on the configured instance; exit 0 only when verified empty."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

from domain import Reason
from greenapi import ConfigurationError, get_settings

if TYPE_CHECKING:
    from flows import QueueResetReport

EXIT_VERIFIED, EXIT_NOT_VERIFIED, EXIT_CONFIG = 0, 1, 2


def _report_of(state) -> tuple[QueueResetReport | None, BaseException | None]:
    from flows import QueueNotVerifiedEmpty, QueueResetReport

    result = state.result(raise_on_failure=False)
    if isinstance(result, QueueResetReport):
        return result, None
    if isinstance(result, QueueNotVerifiedEmpty):
        return result.report, None
    return None, result if isinstance(result, BaseException) else None


def run_once(*, reason: Reason, block: str | None, clear_outgoing: bool | None, as_json: bool, detach_webhook: bool = False) -> int:
    try:
        settings = get_settings()
        # Fail before a flow run exists when the settings or the block cannot work: one line, exit 2
        # (and at once: Prefect is imported only when a block is to be read or the run starts).
        if block:
            from instances import resolve_credentials

            asyncio.run(resolve_credentials(block, settings))
        else:
            settings.credentials()
    except ConfigurationError as exc:
        print(f"greenapi-migrate: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    from flows import handle_account_change

    state = asyncio.run(
        handle_account_change(reason=reason, instance=block, clear_outgoing=clear_outgoing,
                              detach_webhook=detach_webhook, return_state=True)
    )
    report, error = _report_of(state)
    if report is None:
        kind = "configuration error" if isinstance(error, ConfigurationError) else "run failed"
        print(f"greenapi-migrate: {kind}: {error or state.message}", file=sys.stderr)
        return EXIT_CONFIG if isinstance(error, ConfigurationError) else EXIT_NOT_VERIFIED
    if as_json:
        print(report.model_dump_json())
    else:
        print(f"instance {report.id_instance}: {report.outcome.value}: {report.message}")
    return EXIT_VERIFIED if report.verified_empty else EXIT_NOT_VERIFIED
