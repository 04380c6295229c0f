"""The e2e tests run against `prefect server start` (a real subprocess), once on SQLite and once on
PostgreSQL. The PostgreSQL cluster is started by the suite (pytest-postgresql's executor, see
tests/servers.py); when its binaries are missing the ``postgres`` half is skipped with the reason."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.conftest import PrefectServerInfo
from tests.servers import PostgresCluster, PrefectServer, postgres_unavailable

BACKENDS = ["sqlite", "postgres"]


@dataclass(frozen=True)
class BackendServerInfo(PrefectServerInfo):
    """The session's Prefect server: ``api_url`` and ``database_url`` as with the harness, plus the
    back-end, the server's handle (``restart()``, ``log_text()``) and, on postgres, the cluster's."""

    backend: str = "sqlite"
    server: PrefectServer | None = None
    cluster: PostgresCluster | None = None


@pytest.fixture(scope="session")
def postgres_cluster():
    """One PostgreSQL cluster for the session, on 127.0.0.1 and a random port, removed at the end."""
    reason = postgres_unavailable()
    if reason:
        pytest.skip(f"no PostgreSQL server binaries: {reason}")
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture(scope="session", params=BACKENDS, ids=BACKENDS)
def prefect_server(request):
    """`prefect server start` on a fresh database of the back-end, shared by the session's e2e tests;
    in-process Prefect clients (``get_client()``) talk to it while it is active."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    cluster = request.getfixturevalue("postgres_cluster") if request.param == "postgres" else None
    database_url = cluster.create_database() if cluster else None
    with PrefectServer(database_url) as server, temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        _drain_prefect_workers()  # whatever a test before sent elsewhere must not follow into this server
        yield BackendServerInfo(api_url=server.api_url, database_url=server.database_url, backend=server.backend,
                                server=server, cluster=cluster)
        # As prefect_test_harness does: this process's events and logs workers are bound to this server's
        # URL; drained now, the next server (or the integration tests' harness) gets fresh ones.
        _drain_prefect_workers()


def _drain_prefect_workers() -> None:
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (EventsWorker, APILogWorker):
        worker.drain_all(timeout=15)


@pytest.fixture(scope="session")
def real_prefect_server(prefect_server):
    """The environment that points a client subprocess at the session's server (PREFECT_API_URL,
    PREFECT_HOME, no other PREFECT_* or GREEN_API_* variable)."""
    return prefect_server.server.client_env
