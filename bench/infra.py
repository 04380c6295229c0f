"""Real processes for the benchmarks: a local Prefect server (SQLite) and the emulator, on loopback."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "GREEN_API_"))}
    env.update(extra)
    return env


@contextlib.contextmanager
def prefect_server(**server_settings: str) -> Iterator[dict[str, str]]:
    """`prefect server start` on a fresh SQLite database; yields the env that points clients at it."""
    home = tempfile.mkdtemp(prefix="bench-prefect-")
    port = free_port()
    env = clean_env(PREFECT_HOME=home, PREFECT_UI_ENABLED="false", PREFECT_SERVER_ANALYTICS_ENABLED="false", **server_settings)
    log = open(Path(home) / "server.log", "w")
    process = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT, cwd=home)
    api_url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise RuntimeError(f"Prefect server did not start; see {log.name}")
        yield clean_env(PREFECT_API_URL=api_url, PREFECT_HOME=home)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@contextlib.contextmanager
def emulator(clear_window: float = 60, count_refresh: float = 10) -> Iterator[str]:
    """The emulator as its own process, with GREEN-API's real timing by default; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", "0", "--clear-window", str(clear_window), "--count-refresh", str(count_refresh)],
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
