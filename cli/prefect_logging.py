"""Prefect's own logging, for the commands that use Prefect without its flow and task API."""

from __future__ import annotations


def set_up_prefect_logging() -> None:
    """Set up Prefect's log handlers (PREFECT_LOGGING_*), as importing Prefect's flow and task API does.

    The receiver and ``instances`` import none of that API, so without this Prefect's own lines (the temporary
    server starting, a client's warnings) would go nowhere. Idempotent: a later setup only updates it."""
    from prefect.logging.configuration import setup_logging

    setup_logging()
