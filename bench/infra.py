"""Real processes for the benchmarks: a local Prefect server (SQLite, or PostgreSQL with BENCH_BACKEND=postgres)
and the emulator, on loopback."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from typing import Iterator

from bench.servers import ROOT, PostgresCluster, PrefectServer


def backend() -> str:
    """The Prefect server's database for this benchmark run: BENCH_BACKEND, sqlite (default) or postgres."""
    return os.environ.get("BENCH_BACKEND", "sqlite")


@contextlib.contextmanager
def prefect_server(**server_settings: str) -> Iterator[dict[str, str]]:
    """`prefect server start` on a fresh database of ``backend()``; yields the env that points clients at it."""
    with prefect_server_process(**server_settings) as server:
        yield server.client_env


@contextlib.contextmanager
def prefect_server_process(**server_settings: str) -> Iterator[PrefectServer]:
    """The same server, yielded itself (for a benchmark that reads its process's CPU)."""
    # Prefect's default repossessor loop (15 s) unless told: the numbers stay comparable with earlier runs.
    server_settings.setdefault("PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS", "15")
    with contextlib.ExitStack() as stack:
        database_url = kept_database()
        if database_url:  # its blocks' secrets were encrypted with this key
            server_settings["PREFECT_SERVER_ENCRYPTION_KEY"] = os.environ["BENCH_ENCRYPTION_KEY"]
        elif backend() == "postgres":
            database_url = stack.enter_context(PostgresCluster()).create_database("bench")
        yield stack.enter_context(PrefectServer(database_url, **server_settings))


def kept_database() -> str | None:
    """BENCH_DATABASE_URL: an existing database to reuse between benchmark runs (for iterating on one fleet size:
    registering 10,000 blocks takes minutes), with BENCH_ENCRYPTION_KEY (the server's key its blocks were saved
    with) and BENCH_EMULATOR_PORT (the emulator's port the blocks name). None: a fresh database per run."""
    url = os.environ.get("BENCH_DATABASE_URL")
    if url and not (os.environ.get("BENCH_ENCRYPTION_KEY") and os.environ.get("BENCH_EMULATOR_PORT")):
        raise RuntimeError("BENCH_DATABASE_URL needs BENCH_ENCRYPTION_KEY and BENCH_EMULATOR_PORT as well")
    return url or None


@contextlib.contextmanager
def emulator(clear_window: float = 60, count_refresh: float = 10) -> Iterator[str]:
    """The emulator as its own process, with GREEN-API's real timing by default; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", os.environ.get("BENCH_EMULATOR_PORT", "0") if kept_database() else "0", "--clear-window", str(clear_window), "--count-refresh", str(count_refresh)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )
    try:
        match = re.search(r"http://\S+", process.stdout.readline())
        if not match:
            raise RuntimeError("the emulator did not start")
        yield match.group(0)
    finally:
        process.terminate()
        process.wait(timeout=10)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]
