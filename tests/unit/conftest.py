"""Unit tests see no GREEN_API_* variable and no .env of the developer's: each runs in an empty folder."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.upper().startswith("GREEN_API_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
