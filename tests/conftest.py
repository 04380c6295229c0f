"""One Prefect server per worker (`prefect server start` on SQLite), and the GREEN-API emulator on loopback."""

from __future__ import annotations

import dataclasses
import itertools
import re
import secrets
from dataclasses import dataclass

import pytest

from emulator import EmulatorConfig, EmulatorServer
from bench.servers import PostgresCluster, PrefectServer, drain_prefect_workers
from greenapi.timings import EMULATOR_TIMINGS_ENV, GreenApiTimings

# Short GREEN-API windows for tests; the runs are told of them (TEST_TIMINGS, see `greenapi_env`).
TEST_CLEAR_WINDOW_SECONDS = 3.0
TEST_COUNT_REFRESH_SECONDS = 1.0
TEST_MAX_RECEIVE_WAIT_SECONDS = 0.2

_instance_ids = itertools.count(2_000_000_001)  # apart from the demo's 1101000001-3

ALLOWS_VIOLATIONS_MARKER = "allows_emulator_violations"
_violations_key = pytest.StashKey[list]()


def emulator_config(**overrides) -> EmulatorConfig:
    return EmulatorConfig(
        clear_window_seconds=TEST_CLEAR_WINDOW_SECONDS,
        count_refresh_seconds=TEST_COUNT_REFRESH_SECONDS,
        max_receive_wait_seconds=TEST_MAX_RECEIVE_WAIT_SECONDS,
        **overrides,
    )


@dataclass(frozen=True)
class PrefectServerInfo:
    """A session's Prefect server: its ``api_url`` and ``database_url``, the back-end, the server's handle
    (``restart()``, ``log_text()``, ``client_env``) and, on postgres, the cluster's."""

    api_url: str
    database_url: str
    backend: str = "sqlite"
    server: PrefectServer | None = None
    cluster: PostgresCluster | None = None


# Prefect stores events in batches, by default every 5 s: the tests that read events wait a fraction of that.
EVENT_FLUSH_SECONDS = "0.25"


def serving(database_url: str | None, cluster: PostgresCluster | None = None):
    with PrefectServer(database_url, PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL=EVENT_FLUSH_SECONDS) as server:
        yield PrefectServerInfo(api_url=server.api_url, database_url=server.database_url, backend=server.backend,
                                server=server, cluster=cluster)


@pytest.fixture(scope="session")
def sqlite_prefect_server():
    """The worker's one SQLite server, started on first use: the integration tests' and the e2e tests' SQLite half."""
    yield from serving(None)


@pytest.fixture(scope="session")
def prefect_server(sqlite_prefect_server):
    """The worker's SQLite server. This process's Prefect clients talk to it to the end of the session, module
    fixtures included (the e2e tests, on either back-end, override this fixture and switch per test)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    drain_prefect_workers()  # bound to a server an earlier e2e test used: workers bound to this one next
    with temporary_settings(updates={PREFECT_API_URL: sqlite_prefect_server.api_url}):
        yield sqlite_prefect_server
        drain_prefect_workers()  # the last logs and events sent while the server is still up


@pytest.fixture(scope="session")
def emulator_server():
    with EmulatorServer(emulator_config()) as server:
        yield server


@pytest.fixture
def emulator(emulator_server, request):
    """The session's emulator, emptied and set back to the test windows for each test.

    Afterwards its violations (clear inside a known window, wrong verb, rate limit) are kept
    with the test's id; any at all fail the session (see ``pytest_sessionfinish``), unless the
    test is marked ``allows_emulator_violations``.
    """
    emulator_server.state.reset(emulator_config())
    yield emulator_server
    if request.node.get_closest_marker(ALLOWS_VIOLATIONS_MARKER) is None:
        found = emulator_server.state.violations()
        if found:
            request.config.stash.setdefault(_violations_key, []).append((request.node.nodeid, found))


# ---------------------------------------------------------------- session-wide emulator invariants

@pytest.hookimpl(optionalhook=True)  # pytest -p no:xdist still runs
def pytest_xdist_make_scheduler(config, log):
    """`make test` (`--dist loadscope`) gives a worker a test file at a time, and the e2e tests' PostgreSQL
    halves all to one worker: one worker starts a PostgreSQL cluster and server, not each, and those halves
    wait out leases and windows beside the SQLite halves. (pytest-xdist's own `loadgroup` marks do not
    group under pytest 9.2.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FilesPostgresTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "e2e on postgres" if re.search(r"[\[-]postgres\]$", nodeid) else nodeid.split("::", 1)[0]

    return FilesPostgresTogether(config, log)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        f"{ALLOWS_VIOLATIONS_MARKER}: the test breaks GREEN-API's rules on purpose; "
        "its emulator violations do not fail the session",
    )


def _collected_violations(config) -> list[tuple[str, list[dict]]]:
    return config.stash.get(_violations_key, [])


def pytest_sessionfinish(session, exitstatus):
    """Emulator violations fail the session, even when every test passed."""
    if _collected_violations(session.config) and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    collected = _collected_violations(config)
    if not collected:
        return
    total = sum(len(found) for _, found in collected)
    terminalreporter.section(f"GREEN-API emulator violations: {total} in {len(collected)} test(s)", sep="=", red=True)
    for nodeid, found in collected:
        terminalreporter.write_line(nodeid)
        for violation in found:
            details = ", ".join(f"{k}={v}" for k, v in violation.items() if k not in ("kind", "at"))
            terminalreporter.write_line(f"    {violation['kind']}: {details}")
    terminalreporter.write_line(
        f"A correct client never causes these; mark a test @pytest.mark.{ALLOWS_VIOLATIONS_MARKER} "
        "only when it breaks the rules on purpose. The session fails."
    )


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


# The runs' view of the tests' emulator (its windows above), handed in as the demo does (greenapi/timings.py).
TEST_TIMINGS = GreenApiTimings(count_refresh_seconds=TEST_COUNT_REFRESH_SECONDS, clear_interval_seconds=TEST_CLEAR_WINDOW_SECONDS)


@pytest.fixture
def greenapi_env(monkeypatch, emulator, tmp_path):
    """Point the GREEN_API_* settings at one emulated instance, and tell the runs the emulator's windows.

    ``greenapi_env(instance, **values)``: GreenApiTimings fields (e.g. ``clear_interval_seconds=10``) change
    the windows the runs assume; any other name is a public setting (``timeout_seconds`` -> GREEN_API_TIMEOUT_SECONDS).
    """
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("GREEN_API_API_URL", emulator.url)
    monkeypatch.setenv("GREEN_API_TIMEOUT_SECONDS", "2")
    monkeypatch.setenv(EMULATOR_TIMINGS_ENV, TEST_TIMINGS.env()[EMULATOR_TIMINGS_ENV])
    timing_fields = {f.name for f in dataclasses.fields(GreenApiTimings)}

    def _use(instance: SeededInstance, **values) -> None:
        monkeypatch.setenv("GREEN_API_ID_INSTANCE", str(instance.id_instance))
        monkeypatch.setenv("GREEN_API_API_TOKEN_INSTANCE", instance.token)
        timings = {key: float(value) for key, value in values.items() if key in timing_fields}
        if timings:
            monkeypatch.setenv(EMULATOR_TIMINGS_ENV, dataclasses.replace(TEST_TIMINGS, **timings).env()[EMULATOR_TIMINGS_ENV])
        for key, value in values.items():
            if key not in timing_fields:
                monkeypatch.setenv(f"GREEN_API_{key.upper()}", str(value))

    return _use
