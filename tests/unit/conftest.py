"""Unit tests see no GREEN_API_* variable and no .env of the developer's: each runs in an empty folder.
Also the fixtures several unit test modules share."""

from __future__ import annotations

import logging
import os

import httpx
import pytest

from emulator import EmulatorServer


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.upper().startswith("GREEN_API_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def server():
    """One emulator per test module, on a free loopback port."""
    with EmulatorServer() as srv:
        yield srv


@pytest.fixture
def api(server):
    """An HTTP client on the module's emulator, as GREEN-API's clients talk to it."""
    with httpx.Client(base_url=server.url, timeout=5) as client:
        yield client


@pytest.fixture
def logs(caplog, monkeypatch):
    """caplog at DEBUG for the loggers that could print a URL (and so a token)."""
    for name in ("httpx", "httpcore", "greenapi"):
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "disabled", False)
        monkeypatch.setattr(logger, "propagate", True)
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog
