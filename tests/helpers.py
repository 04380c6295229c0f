"""The one home of the plain helpers and constants the test modules share: bounded waits, GREEN-API's client
on a mock transport or on the emulator, every text of an exception (for canary searches), what the emulator and
the Prefect server saw (runs, events, the database's text for canary searches), instances files and the
registry of instances, and in-process stand-ins for the receiver's collaborators.

Fixtures live in the conftests (tests/conftest.py, tests/e2e/conftest.py, tests/unit/conftest.py);
real processes (the Prefect server, PostgreSQL, the receiver subprocess, ports, environments) in
bench/servers.py (with register_instance, shared with the benchmarks). Product code is imported inside the functions that need it, so importing this module
loads neither Prefect nor the flows.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import inspect
import io
import logging
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Iterator, TypeVar
from urllib.parse import urlsplit

from bench.servers import UNREACHABLE_API_URL, register_instance

T = TypeVar("T")

# A flow run's state types from which it does not move on by itself.
FINAL = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
# The receiver's answers to a report it took: 200 to GREEN-API's webhooks, 202 to other systems' requests.
ACCEPTED = (200, 202)
# Documented (docs/webhooks.md), not imported: the namespace of the receiver's uuid5 event ids.
EVENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:greenapi-queue-reset:receiver:event")


# ------------------------------------------------------------------------------ bounded waits


def _say(message: str | Callable[[], str]) -> str:
    return message() if callable(message) else message


def wait_until(predicate: Callable[[], T], *, timeout: float, message: str | Callable[[], str], interval: float = 0.25) -> T:
    """Poll ``predicate`` until it returns something true, and return that; after ``timeout`` seconds
    fail with ``message`` (a string, or a callable for one that says what was seen at the end)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{_say(message)} (waited {timeout:g} s)")
        time.sleep(interval)


async def await_until(predicate: Callable[[], T | Awaitable[T]], *, timeout: float, message: str | Callable[[], str],
                      interval: float = 0.25) -> T:
    """`wait_until` for async tests: ``predicate`` may be a plain function or a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{_say(message)} (waited {timeout:g} s)")
        await asyncio.sleep(interval)


# ------------------------------------------------------------------------------ GREEN-API's client, no network


# The client tests' instance; its token is the canary looked for in every error, log line, repr and pickle.
MOCK_ID_INSTANCE = 1101000001
TOKEN_CANARY = "CANARY0123456789abcdef"


def mock_client(handler: Callable, *, api_url: str | None = None, slept: list[float] | None = None,
                sleep: Callable | None = None, clock: Callable[[], float] = time.monotonic, **config: Any):
    """A GreenAPIClient for MOCK_ID_INSTANCE with TOKEN_CANARY, every request answered by ``handler``
    (httpx.MockTransport); ``config`` are ClientConfig fields. Backoffs are not slept but appended to
    ``slept`` (when given), unless ``sleep`` and ``clock`` stand in for time."""
    import httpx

    from greenapi import DEFAULT_API_URL, ClientConfig, GreenAPIClient, InstanceCredentials

    async def record(seconds: float) -> None:
        if slept is not None:
            slept.append(seconds)

    credentials = InstanceCredentials(api_url=api_url or DEFAULT_API_URL, id_instance=MOCK_ID_INSTANCE,
                                      api_token_instance=TOKEN_CANARY)
    return GreenAPIClient(credentials, ClientConfig(**config),
                          transport=httpx.MockTransport(handler), sleep=sleep or record, clock=clock)


def mock_instance_request_logs(records: list) -> list:
    """httpx's request log records for MOCK_ID_INSTANCE's calls; other httpx lines in the same capture (a Prefect
    log handler an earlier test left in the process, posting its batch) are not the client's."""
    return [r for r in records if r.name == "httpx" and f"/waInstance{MOCK_ID_INSTANCE}/" in r.getMessage()]


def exception_text(exc: BaseException) -> str:
    """Everything an exception can show: str, repr, args, vars, its traceback and each exception it was raised
    from or during (a canary searched here is searched wherever the exception would be printed or logged)."""
    import traceback

    parts = ["".join(traceback.format_exception(exc))]
    seen, link = set(), exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        parts += [str(link), repr(link), repr(getattr(link, "args", ())), repr(getattr(link, "__dict__", {}))]
        link = link.__cause__ or link.__context__
    return "\n".join(parts)


def run_cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """``greenapi-migrate ARGS`` (the installed command) run to its end in ``cwd`` with only ``env``, bounded by
    ``timeout`` seconds: its exit code and text output."""
    from bench.servers import CLI

    return subprocess.run([CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------------------ GREEN-API's client, on the emulator


def settings_client():
    """A GreenAPIClient for the instance the GREEN_API_* settings name (``greenapi_env``), configured by them."""
    from greenapi import GreenAPIClient, get_settings

    settings = get_settings()
    return GreenAPIClient(settings.credentials(), settings.client_config())


async def detach_then_die(emulator):
    """What a run that died between detaching the webhook and putting it back leaves: the detach step alone, on
    a client of its own (``settings_client``); then the emulator's clock moves a second, as the next run's
    process starts (GetSettings' 1/s limit is not the dead client's to pace). Returns detach_webhook's answer."""
    from tasks.webhook import detach_webhook

    async with settings_client() as client:
        detached = await detach_webhook(client)
    emulator.state.advance_clock(1.0)
    return detached


# ------------------------------------------------------------------------------ the emulator


# A 502 page as nginx in front of GREEN-API sends it: HTML where JSON was expected.
NGINX_502 = "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"

# The emulated instances of the emulator's own tests (tests/unit/test_emulator*.py), and a token in GREEN-API's shape.
EMULATED_ID, EMULATED_OTHER_ID = 1101000001, 1101000002
EMULATED_TOKEN = "0123456789abcdef0123456789abcdef0123456789abcdef01"


def method_path(method: str, extra: str | None = None, *, id_instance: int = EMULATED_ID, token: str = EMULATED_TOKEN,
                prefix: str = "") -> str:
    """A GREEN-API method's path: ``{prefix}/waInstance{id}/{method}/{token}``, then ``/{extra}`` (a receiptId)."""
    path = f"{prefix}/waInstance{id_instance}/{method}/{token}"
    return f"{path}/{extra}" if extra is not None else path


def seed_emulated(control, **fields) -> dict:
    """An instance seeded through the control API (``EmulatorControl``), EMULATED_ID with EMULATED_TOKEN unless
    ``fields`` say otherwise; its view."""
    return control.seed_instance(**{"id_instance": EMULATED_ID, "api_token": EMULATED_TOKEN, **fields})


def methods_called(emulator, id_instance: int) -> list[str]:
    """The GREEN-API methods the instance was called with, in order."""
    return [call["method"] for call in emulator.state.calls(instance=id_instance)]


def answered_left_time(emulator, id_instance: int) -> bool:
    """Whether the emulator has answered a clear of the instance with a leftTime (the run now waits it out)."""
    return any(c["body_summary"].get("leftTime") for c in emulator.state.calls(instance=id_instance, method="clearWebhooksQueue"))


def _left_time_check(emulator, id_instance: int, process, log: Path | None):
    def check() -> bool:
        if process is not None and process.poll() is not None:
            if log is not None:
                said = log.read_text()
            else:
                said = process.communicate(timeout=10)[1] if process.stderr is not None else ""
            raise AssertionError(f"the process exited {process.returncode} before its run reached the leftTime wait:\n"
                                 f"{(said or '')[-3000:]}")
        return answered_left_time(emulator, id_instance)
    return check


def wait_for_left_time(emulator, id_instance: int, *, timeout: float = 60, process=None, log: Path | None = None) -> None:
    """Until a run on the instance is in its leftTime wait; fails early when ``process`` (its runner) exits."""
    wait_until(_left_time_check(emulator, id_instance, process, log), timeout=timeout, interval=0.1,
               message=lambda: "the run never reached its leftTime wait" + (f":\n{log.read_text()[-2000:]}" if log else ""))


async def await_left_time(emulator, id_instance: int, *, timeout: float = 60, process=None, log: Path | None = None) -> None:
    await await_until(_left_time_check(emulator, id_instance, process, log), timeout=timeout, interval=0.1,
                      message=lambda: "the run never reached its leftTime wait" + (f":\n{log.read_text()[-2000:]}" if log else ""))


# ------------------------------------------------------------------------------ the registry of instances


async def register_seeded(seeded, emulator, name: str | None = None) -> str:
    """An emulated instance (``seed_instance``) registered with its token and the emulator's URL."""
    return await register_instance(seeded.id_instance, seeded.token, api_url=emulator.url, name=name)


async def register_instances(ids: Iterable[int], *, api_url: str = UNREACHABLE_API_URL, name_prefix: str = "e2e") -> None:
    """`register_instance` for each idInstance, with a random token. The block type is registered first:
    on a fresh server, concurrent first saves race to create it (409 Conflict)."""
    from instances import GreenApiInstance

    await GreenApiInstance.aregister_type_and_schema()
    await asyncio.gather(*(register_instance(i, api_url=api_url, name=f"{name_prefix}-{i}") for i in ids))


async def clear_registry() -> None:
    """Remove every greenapi-instance block: the sweep checks every registered instance, and other tests'
    instances are not emulated any more."""
    from prefect.client.orchestration import get_client

    from instances.lookup import instance_documents

    async with get_client() as client:
        for document in await instance_documents(client, include_secrets=False):
            await client.delete_block_document(document.id)


# ------------------------------------------------------------------------------ the documentation


def doc_pages() -> list[Path]:
    """The documentation a user reads: README.md, then docs/*.md."""
    from bench.servers import ROOT

    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


# ------------------------------------------------------------------------------ instances files and the import's plan


# The columns of an instances file (docs: register a fleet).
INSTANCES_HEADER = "idInstance,apiTokenInstance,apiUrl,name"
# The block schema an import's plan writes with, in the tests of the plan.
IMPORT_SCHEMA = "schema-1"


def instances_csv(*rows: str, header: str = INSTANCES_HEADER) -> str:
    """An instances file's text: the header, then one line a row."""
    return "\n".join([header, *rows]) + "\n"


def import_rows(*rows: str):
    """The rows of an instances file (``instances_csv``) as `instances import` reads them; apiUrl defaults to http://h."""
    from cli.instance_rows import parse_instances_text

    return parse_instances_text(instances_csv(*rows), default_api_url="http://h").rows


def block_document(name: str, id_instance: int, token: str, api_url: str = "http://h", schema: str = IMPORT_SCHEMA):
    """A greenapi-instance block document as the import's plan reads it: name, id, schema id and data."""
    from types import SimpleNamespace

    return SimpleNamespace(name=name, id=f"id-{name}", block_schema_id=schema,
                           data={"api_url": api_url, "id_instance": id_instance, "api_token_instance": token})


# ------------------------------------------------------------------------------ flow runs and locks


async def wait_for_final(flow_run_ids, *, timeout: float = 90, states: Iterable[str] = FINAL) -> list:
    """The flow runs, read again until every one is in one of ``states`` (final by default)."""
    from prefect.client.orchestration import get_client

    wanted, runs = set(states), []

    async def all_there():
        nonlocal runs
        async with get_client() as client:
            runs = [await client.read_flow_run(i) for i in flow_run_ids]
        return all(r.state and r.state.type.value in wanted for r in runs)

    await await_until(all_there, timeout=timeout, interval=0.5,
                      message=lambda: f"runs not in {sorted(wanted)}: {[(r.name, r.state and r.state.type.value) for r in runs]}")
    return runs


async def handle_runs(instance: str | None = None, *, deployment: str | bool | None = None) -> list:
    """handle-account-change flow runs whose ``instance`` parameter is ``instance`` (any, when None).
    ``deployment``: None, any run; False, only runs of no deployment (a task worker ran them for the
    receiver); a name ("flow/deployment"), only that deployment's runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterDeploymentId

    async with get_client() as client:
        if isinstance(deployment, str):
            found = await client.read_deployment_by_name(deployment)
            runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[found.id])))
        else:
            runs = await client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["handle-account-change"])))
            if deployment is False:
                runs = [r for r in runs if r.deployment_id is None]
    return [r for r in runs if instance is None or r.parameters.get("instance") == instance]


def instance_limit_name(id_instance: int) -> str:
    """The instance's global concurrency limit, as README documents it (not the lock's own code)."""
    return f"greenapi-instance-{id_instance}"


async def slots_taken(id_instance: int) -> int:
    """What the Prefect server says of the instance's limit, read with Prefect's client; 0 when there is none."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        try:
            return (await client.read_global_concurrency_limit_by_name(instance_limit_name(id_instance))).active_slots
        except ObjectNotFound:
            return 0


# ------------------------------------------------------------------------------ what the database holds


def database_url(database) -> str:
    """A Prefect database as a URL: ``database`` is anything with a ``database_url`` (a `PrefectServer`, the
    session's ``prefect_server``), a URL, or the path of a SQLite file."""
    url = getattr(database, "database_url", database)
    return url if "://" in url else f"sqlite+aiosqlite:///{url}"


def _sqlite_path(url: str) -> str:
    return url.split(":///", 1)[1]


def psycopg_dsn(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+asyncpg://...``) as a libpq one."""
    return urlsplit(url)._replace(scheme="postgresql").geturl()


def database_tables_text(database) -> dict[str, str]:
    """Every table of the database, each as the text of all its rows."""
    url = database_url(database)
    if url.startswith("sqlite"):
        import sqlite3

        with contextlib.closing(sqlite3.connect(f"file:{_sqlite_path(url)}?mode=ro", uri=True, timeout=10)) as db:
            tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            return {table: "\n".join(repr(row) for row in db.execute(f'SELECT * FROM "{table}"')) for table in tables}
    import psycopg

    with psycopg.connect(psycopg_dsn(url), connect_timeout=10) as conn:
        tables = [name for (name,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename")]
        return {table: "\n".join(text for (text,) in conn.execute(f'SELECT t::text FROM "{table}" t'))
                for table in tables}


def _database_files(url: str) -> list[Path]:
    if not url.startswith("sqlite"):
        return []
    base = Path(_sqlite_path(url))
    return sorted(base.parent.glob(base.name + "*"))  # the file, -wal, -shm, -journal


def database_dump_text(database) -> str:
    """All the text the database holds, for a canary search that works on both back-ends. SQLite: every
    row and the raw bytes of the database file and its -wal/-shm/-journal files; PostgreSQL: every row."""
    url = database_url(database)
    parts = [f"-- {table}\n{text}" for table, text in database_tables_text(url).items()]
    for path in _database_files(url):
        parts.append(f"-- file {path.name}\n" + path.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(parts)


def where_in_database(database, needle: str) -> list[str]:
    """The tables (and on SQLite the files) of a Prefect database that hold ``needle``; empty when none does.
    Fails when the database has no ``events`` table: then it was not the Prefect database the test meant."""
    url = database_url(database)
    tables = database_tables_text(url)
    assert "events" in tables, f"not a Prefect database: {sorted(tables)}"
    found = [table for table, text in tables.items() if needle in text]
    found += [path.name for path in _database_files(url) if needle.encode() in path.read_bytes()]
    return found


def stored_events(database, resource_ids: Iterable[str]) -> list[tuple[str, str, str, Any]]:
    """(event id, event name, resource id, payload) of every event on these resources in Prefect's database."""
    import json

    url, resource_ids = database_url(database), list(resource_ids)
    if url.startswith("sqlite"):
        import sqlite3

        rows = []
        with contextlib.closing(sqlite3.connect(f"file:{_sqlite_path(url)}?mode=ro", uri=True, timeout=10)) as db:
            for start in range(0, len(resource_ids), 500):
                chunk = resource_ids[start : start + 500]
                rows += db.execute(f"SELECT id, event, resource_id, payload FROM events WHERE resource_id IN ({','.join('?' * len(chunk))})",
                                   chunk).fetchall()
    else:
        import psycopg

        with psycopg.connect(psycopg_dsn(url), connect_timeout=10) as db:
            rows = db.execute("SELECT id, event, resource_id, payload FROM events WHERE resource_id = ANY(%s)", (resource_ids,)).fetchall()
    return [(str(uuid.UUID(str(i))), e, r, json.loads(p) if isinstance(p, (str, bytes)) else p) for i, e, r, p in rows]


def wait_for_stored_events(database, resource_ids: Iterable[str], expected_ids: set[str], *, timeout: float = 40) -> list[tuple[str, str, str, Any]]:
    """`stored_events`, read again until every expected event id is there (Prefect stores events in batches,
    about every 5 s); the rows as they are then, or at the deadline (the caller says what is missing)."""
    resource_ids, rows = list(resource_ids), []

    def all_there() -> bool:
        nonlocal rows
        rows = stored_events(database, resource_ids)
        return {row[0] for row in rows} >= expected_ids

    with contextlib.suppress(AssertionError):
        wait_until(all_there, timeout=timeout, interval=0.5, message="")
    return rows


async def flush_runs_to_server(database, id_instances: Iterable[int], *, timeout: float = 20) -> None:
    """Send this process's queued logs and events, then wait until the Prefect database holds each
    instance's closing event (``greenapi.queue-reset.*``): after that the runs' logs and events are there."""
    from prefect.events.clients import get_events_client  # noqa: F401  (imported so the worker exists)
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogHandler

    await APILogHandler.aflush()
    result = EventsWorker.drain_all()
    if inspect.isawaitable(result):
        await result
    resources = [f"greenapi.instance.{i}" for i in id_instances]

    def closed() -> set[str]:
        return {r for _, name, r, _ in stored_events(database, resources) if name.startswith("greenapi.queue-reset.")}

    await await_until(lambda: closed() >= set(resources), timeout=timeout, interval=0.2,
                      message=lambda: f"the closing events never reached the Prefect database: missing {sorted(set(resources) - closed())}")


# ------------------------------------------------------------------------------ flows, logs and stand-ins


async def run_flow(**parameters):
    """Run handle_account_change; return (final state, report) whether it completed or failed."""
    from flows import QueueNotVerifiedEmpty, QueueResetReport, handle_account_change

    state = await handle_account_change(return_state=True, **parameters)
    result = await state.aresult(raise_on_failure=False) if hasattr(state, "aresult") else state.result(raise_on_failure=False)
    if isinstance(result, QueueNotVerifiedEmpty):
        return state, result.report
    assert isinstance(result, QueueResetReport), f"unexpected result {result!r} in state {state.type}: {state.message}"
    return state, result


@contextlib.contextmanager
def every_log_record() -> Iterator[io.StringIO]:
    """Every record of the root logger and of Prefect's loggers that do not propagate (its run loggers, its
    internals' ``prefect._internal``) at DEBUG, as text."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    names = (None, "prefect", "prefect.flow_runs", "prefect.task_runs", "prefect._internal")
    loggers = [logging.getLogger(name) for name in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)  # httpx logs request URLs at INFO, httpcore at DEBUG
    try:
        yield stream
    finally:
        for lg, level in zip(loggers, levels):
            lg.removeHandler(handler)
            lg.setLevel(level)


class MemoryWidStore:
    """The receiver's per-instance memory (accounts, reports handed over) in this process, for tests that
    drive the receiver without a Prefect server; ``writes`` counts account records."""

    def __init__(self, seed: dict[int, str] | None = None) -> None:
        self.wids: dict[int, str] = dict(seed or {})
        self.reports: set[tuple[int, str]] = set()
        self.writes = 0

    async def last_seen(self, id_instance: int) -> str | None:
        return self.wids.get(id_instance)

    async def record(self, id_instance: int, wid: str) -> None:
        self.writes += 1
        if wid:
            self.wids[id_instance] = wid

    async def report_handled(self, id_instance: int, report_id: str) -> bool:
        return (id_instance, report_id) in self.reports

    async def remember_report(self, id_instance: int, report_id: str) -> None:
        self.reports.add((id_instance, report_id))

    async def forget_report(self, id_instance: int, report_id: str) -> None:
        self.reports.discard((id_instance, report_id))

    def store(self):
        from receiver.app import WidStore

        return WidStore(last_seen=self.last_seen, record=self.record, report_handled=self.report_handled,
                        remember_report=self.remember_report, forget_report=self.forget_report)


class MemoryRegistry:
    """Which instances are registered (greenapi-instance blocks), in this process, for tests that drive the
    receiver without a Prefect server. Every instance is registered except those in ``unregistered``, or,
    with ``only``, exactly those; ``lookups`` counts the questions asked."""

    def __init__(self, *, unregistered: set[int] | None = None, only: set[int] | None = None) -> None:
        self.unregistered = set(unregistered or ())
        self.only = None if only is None else set(only)
        self.lookups = 0

    async def is_registered(self, id_instance: int) -> bool:
        self.lookups += 1
        if self.only is not None:
            return id_instance in self.only
        return id_instance not in self.unregistered


class RecordingEmitter:
    """Stands in for the receiver's Prefect events connection: keeps each event it is given, as sent."""

    connected = True

    def __init__(self) -> None:
        self.events: list = []

    async def start(self) -> None: ...

    async def emit(self, event) -> None:
        self.events.append(event)

    async def close(self) -> None: ...


class HttpCatcher:
    """A loopback HTTP endpoint (port 0, in a thread) that answers ``status`` (200) to everything, after ``delay``
    seconds (0), and keeps each request's method, path, headers and body as text; ``wait_for`` polls them until
    one matches, within a deadline."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.status, self.delay = 200, 0.0
        self._lock = threading.Lock()
        catcher = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _keep(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", errors="replace")
                with catcher._lock:
                    catcher.requests.append({"method": self.command, "path": self.path, "body": body,
                                             "headers": dict(self.headers.items())})
                if catcher.delay:
                    time.sleep(catcher.delay)  # a slow app: the caller's timeout is what is tested
                self.send_response(catcher.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT = do_PATCH = do_GET = _keep

            def log_message(self, *args) -> None:  # quiet: pytest shows what the test asserts
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/notify"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def bodies(self) -> list[str]:
        with self._lock:
            return [request["body"] for request in self.requests]

    async def wait_for(self, predicate, *, timeout: float, what: str) -> str:
        """The first body for which ``predicate(body)`` is true, polling until ``timeout`` seconds have passed."""
        return await await_until(lambda: next((body for body in self.bodies() if predicate(body)), None), timeout=timeout,
                                 message=lambda: f"no request with {what}; received: {self.bodies()!r}")

    def __enter__(self) -> "HttpCatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


async def task_runs_of(flow_run_id) -> list:
    """The task runs of one flow run, in the order they started."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return sorted(runs, key=lambda r: r.start_time or r.expected_start_time)
