"""``greenapi-migrate automations apply``: the project's automations on the Prefect server, for deployments
registered with ``prefect deploy --all``, which applies no automation declared in Python."""

from __future__ import annotations

import asyncio
import sys

EXIT_OK, EXIT_CONFIG = 0, 2


def apply_command() -> int:
    """Apply the automations (deploy/automations.py); exit 2, after one line, when GREEN_API_NOTIFY_BLOCK is
    set but cannot be used (the other automations are applied all the same)."""
    from deploy.automations import apply_automations

    applied = asyncio.run(apply_automations(log_problem=False))
    for change in applied.changes:
        print(change)
    if applied.problem:
        print(f"greenapi-migrate automations apply: {applied.problem}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK
