"""``greenapi-migrate automations apply``: the project's automations on the Prefect server, for deployments
registered with ``prefect deploy --all``, which applies no automation declared in Python."""

from __future__ import annotations

import asyncio
import sys

EXIT_OK, EXIT_CONFIG = 0, 2


def apply_command(notify_block: str | None) -> int:
    """Apply the automations (deploy/automations.py) as the command line declares them.

    Args:
        notify_block: ``--notify-block``, the notification block failures go through (block-type-slug/block-name).

    Returns:
        0 when applied; 2, after one line, when the block cannot be used (the rest is applied all the same).
    """
    from deploy.automations import apply_automations

    applied = asyncio.run(apply_automations(notify_block))
    for change in applied.changes:
        print(change)
    if applied.problem:
        print(f"greenapi-migrate automations apply: {applied.problem}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK
