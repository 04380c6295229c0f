"""One Prefect test server per session, and the GREEN-API emulator on loopback."""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass

import pytest

from emulator import EmulatorConfig, EmulatorServer

# Short GREEN-API windows for tests; the flow's settings mirror them (see `greenapi_env`).
TEST_CLEAR_WINDOW_SECONDS = 3.0
TEST_COUNT_REFRESH_SECONDS = 1.0
TEST_MAX_RECEIVE_WAIT_SECONDS = 0.2

_instance_ids = itertools.count(2_000_000_001)  # apart from the demo's 1101000001-3


def emulator_config(**overrides) -> EmulatorConfig:
    return EmulatorConfig(
        clear_window_seconds=TEST_CLEAR_WINDOW_SECONDS,
        count_refresh_seconds=TEST_COUNT_REFRESH_SECONDS,
        max_receive_wait_seconds=TEST_MAX_RECEIVE_WAIT_SECONDS,
        **overrides,
    )


@pytest.fixture(scope="session")
def prefect_server():
    """A real Prefect server on a temporary SQLite database, shared by the session (~10 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, PREFECT_API_URL

        yield PrefectServerInfo(api_url=PREFECT_API_URL.value(), database_url=PREFECT_API_DATABASE_CONNECTION_URL.value())


@dataclass(frozen=True)
class PrefectServerInfo:
    api_url: str
    database_url: str

    @property
    def sqlite_path(self) -> str:
        return self.database_url.split(":///", 1)[1]


@pytest.fixture(scope="session")
def emulator_server():
    with EmulatorServer(emulator_config()) as server:
        yield server


@pytest.fixture
def emulator(emulator_server):
    """The session's emulator, emptied and set back to the test windows for each test."""
    emulator_server.state.reset(emulator_config())
    yield emulator_server


@dataclass(frozen=True)
class SeededInstance:
    id_instance: int
    token: str


@pytest.fixture
def seed_instance(emulator):
    """Create an emulated instance with a fresh id and token; returns both."""

    def _seed(token: str | None = None, **fields) -> SeededInstance:
        seeded = SeededInstance(id_instance=next(_instance_ids), token=token or secrets.token_hex(25))
        emulator.state.add_instance(id_instance=seeded.id_instance, api_token=seeded.token, **fields)
        return seeded

    return _seed


@pytest.fixture
def greenapi_env(monkeypatch, emulator, tmp_path):
    """Point the GREEN_API_* settings at one emulated instance, with timings that mirror the emulator."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name, value in {
        "GREEN_API_API_URL": emulator.url,
        "GREEN_API_COUNT_REFRESH_SECONDS": str(TEST_COUNT_REFRESH_SECONDS),
        "GREEN_API_CLEAR_INTERVAL_SECONDS": str(TEST_CLEAR_WINDOW_SECONDS),
        "GREEN_API_RETRY_BACKOFF_INITIAL_SECONDS": "0.05",
        "GREEN_API_RETRY_BACKOFF_MAX_SECONDS": "0.2",
        "GREEN_API_READ_TIMEOUT_SECONDS": "2",
        "GREEN_API_MAX_TOTAL_WAIT_SECONDS": "30",
    }.items():
        monkeypatch.setenv(name, value)

    def _use(instance: SeededInstance, **settings: str) -> None:
        monkeypatch.setenv("GREEN_API_ID_INSTANCE", str(instance.id_instance))
        monkeypatch.setenv("GREEN_API_API_TOKEN_INSTANCE", instance.token)
        for key, value in settings.items():
            monkeypatch.setenv(f"GREEN_API_{key.upper()}", str(value))

    return _use
