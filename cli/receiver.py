"""``greenapi-migrate receiver``: the webhook/event receiver in the foreground (see docs/webhooks.md)."""

from __future__ import annotations

from typing import Sequence


def run_receiver(argv: Sequence[str]) -> int:
    """Options: ``--host``, ``--port``; settings GREEN_API_RECEIVER_*. Exit 2 on a configuration error."""
    from receiver.server import main as receiver_main

    return receiver_main(argv)
