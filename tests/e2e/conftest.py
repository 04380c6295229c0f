"""The e2e tests run against `prefect server start` (a real subprocess), once on SQLite and once on
PostgreSQL. The PostgreSQL cluster is started by the suite (pytest-postgresql's executor, see
bench/servers.py); when its binaries are missing the ``postgres`` half is skipped with the reason."""

from __future__ import annotations

import pytest

from tests.conftest import serving
from bench.servers import PostgresCluster, postgres_unavailable, talking_to

BACKENDS = ["sqlite", "postgres"]

# For the tests in which the back-end plays no part: once, on SQLite. PostgreSQL (the production back-end)
# runs where the database acts: concurrency slots and their leases (runs taking turns, in parallel,
# cancelled, killed and rerun), concurrent event writes, server and database restarts, fresh-database races.
on_sqlite_only = pytest.mark.parametrize("prefect_server", ["sqlite"], indirect=True)
# For what only PostgreSQL has (its cluster restarted under the server).
on_postgres_only = pytest.mark.parametrize("prefect_server", ["postgres"], indirect=True)


@pytest.fixture(scope="session")
def postgres_cluster():
    """One PostgreSQL cluster for the session, on 127.0.0.1 and a random port, removed at the end."""
    reason = postgres_unavailable()
    if reason:
        pytest.skip(f"no PostgreSQL server binaries: {reason}")
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def postgres_prefect_server(postgres_cluster):
    yield from serving(postgres_cluster.create_database(), postgres_cluster)


@pytest.fixture(scope="session", params=BACKENDS, ids=BACKENDS)
def prefect_server(request):
    """`prefect server start` on a fresh database of the back-end, started on first use and shared by the
    worker's tests to the end of the session; the SQLite one with the integration tests. (pytest keeps one
    value of a parametrized fixture at a time: owning its server, this fixture would start a new one at
    every switch between back-ends.)
    In-process Prefect clients (``get_client()``) talk to it inside each test that uses it (see
    ``_in_process_clients_use_the_session_server``), and inside :func:`talking_to`."""
    return request.getfixturevalue(f"{request.param}_prefect_server")


@pytest.fixture(autouse=True)
def _in_process_clients_use_the_session_server(request):
    if "prefect_server" not in request.fixturenames:  # tests of the embedded default have no server of ours
        yield
        return
    with talking_to(request.getfixturevalue("prefect_server").api_url):
        yield


@pytest.fixture(scope="session")
def real_prefect_server(prefect_server):
    """The environment that points a client subprocess at the session's server (PREFECT_API_URL,
    PREFECT_HOME, no other PREFECT_* or GREEN_API_* variable)."""
    return prefect_server.server.client_env
