"""The e2e server fixture on each back-end (SQLite, PostgreSQL): concurrent first saves of secret
blocks on a fresh database, a flow run through the server, the database really being the back-end's,
and restarts of the Prefect server and of the PostgreSQL cluster. Every wait is bounded."""

from __future__ import annotations

import asyncio
import functools
import uuid

import pytest
from pydantic import SecretStr

from tests.e2e.conftest import on_postgres_only
from tests.helpers import database_dump_text, database_tables_text, wait_until
from bench.servers import PrefectServer

pytestmark = pytest.mark.e2e

CANARY = "CANARYbackend" + "b10c" * 8


@functools.cache
def _block_class():
    """Defined when a test needs it, so collecting this module registers no block type."""
    from prefect.blocks.core import Block

    class BackendProbeSecret(Block):
        _block_type_name = "Backend Probe Secret"
        token: SecretStr
        other: SecretStr
        label: str = ""

    return BackendProbeSecret


def _fresh_database(prefect_server) -> str | None:
    return prefect_server.cluster.create_database("fresh") if prefect_server.backend == "postgres" else None


@pytest.fixture
def fresh_server(prefect_server):
    """A second `prefect server start` of the same back-end on a database nothing has touched yet."""
    with PrefectServer(_fresh_database(prefect_server)) as server:
        yield server


async def test_concurrent_first_saves_of_secret_blocks_on_a_fresh_database(fresh_server):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    probe = _block_class()
    with temporary_settings(updates={PREFECT_API_URL: fresh_server.api_url}):
        await probe.aregister_type_and_schema()  # the type once; the four saves below race for the key
        blocks = [probe(token=f"{CANARY}-{i}", other=f"{CANARY}-other-{i}", label=f"probe {i}") for i in range(4)]
        ids = await asyncio.wait_for(
            asyncio.gather(*(block.save(f"probe-{i}", overwrite=True) for i, block in enumerate(blocks))), timeout=60)
        assert len(set(ids)) == 4
        for i in range(4):
            loaded = await probe.load(f"probe-{i}")
            assert loaded.token.get_secret_value() == f"{CANARY}-{i}"
        async with get_client() as client:
            documents = await client.read_block_documents()
        assert {d.name for d in documents} >= {f"probe-{i}" for i in range(4)}

    dump = database_dump_text(fresh_server)
    assert "probe-3" in dump  # the dump holds the blocks ...
    assert CANARY not in dump  # ... and their secret fields only encrypted
    assert "uq_configuration__key" not in fresh_server.log_text()


def test_a_flow_runs_through_the_server_on_its_database(prefect_server):
    from prefect import flow
    from prefect.client.orchestration import get_client

    @flow(name="backend-probe", persist_result=False)
    def add_one(x: int) -> int:
        return x + 1

    state = add_one(41, return_state=True)
    assert state.is_completed() and state.result() == 42
    flow_run_id = state.state_details.flow_run_id

    with get_client(sync_client=True) as client:
        assert client.api_url.host == "127.0.0.1" and str(client.api_url).startswith(prefect_server.api_url)
        run = client.read_flow_run(flow_run_id)
    assert run.state.is_completed()

    tables = database_tables_text(prefect_server.database_url)
    assert {"flow", "flow_run", "block_document", "events"} <= set(tables)
    assert str(flow_run_id) in tables["flow_run"]  # the run is in this back-end's database
    if prefect_server.backend == "postgres":
        assert prefect_server.database_url.startswith("postgresql+asyncpg://")
        assert "sqlite" not in prefect_server.server.settings["PREFECT_API_DATABASE_CONNECTION_URL"]
        assert not list(prefect_server.server.home.glob("*.db"))  # no SQLite file on the side
    else:
        assert prefect_server.database_url.startswith("sqlite+aiosqlite:///")


def _answers_with_the_database(server: PrefectServer, deadline_s: float = 60) -> None:
    """Bounded wait until the server answers Prefect's health check and a query that reads the database (read
    with Prefect's client, which retries nothing here: each try is one request)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    last = None

    def answers() -> bool:
        nonlocal last
        with get_client(sync_client=True) as client:
            last = client.api_healthcheck()
            if last is None:
                try:
                    client.read_flows(limit=1)
                except Exception as exc:
                    last = exc
        return last is None

    with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 0}):
        wait_until(answers, timeout=deadline_s, interval=0.5,
                   message=lambda: f"the server did not answer ({last!r}); log:\n{server.log_text()[-3000:]}")


def _create_flow() -> str:
    """A flow of a new name, created on the server with Prefect's client."""
    from prefect.client.orchestration import get_client

    name = f"restart-probe-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.create_flow_from_name(name)
    return name


def _flow_exists(name: str) -> bool:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_by_name(name).name == name


# The session's own server and cluster: the worker's next tests meet them restarted, as a real deployment would.
def test_the_prefect_server_restarts_on_the_same_port_and_database(prefect_server):
    server = prefect_server.server
    name = _create_flow()
    port, url = server.port, server.api_url
    server.restart()
    assert (server.port, server.api_url) == (port, url)
    _answers_with_the_database(server)
    assert _flow_exists(name)  # same database


@on_postgres_only
def test_the_postgres_cluster_restarts_under_a_running_server(prefect_server):
    server = prefect_server.server
    name = _create_flow()
    process = server.process
    prefect_server.cluster.restart()
    _answers_with_the_database(server)  # the server's pool reconnects (pre-ping) ...
    assert _flow_exists(name)  # ... to the same data
    assert server.process is process and process.poll() is None  # the same process, never restarted
