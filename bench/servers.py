"""Real processes for the e2e tests and the benchmarks: `prefect server start` as a subprocess on a
SQLite file or a PostgreSQL database, a throwaway PostgreSQL cluster (pytest-postgresql's executor)
to hold the latter, `greenapi-migrate receiver` as a subprocess, and what starting any of them takes
(free ports, the command's path, clean environments), and registering an instance on the Prefect server.
The one home of this code: the tests and the benchmarks import it from here. What the processes did (runs,
events, the database's text) is read with tests/helpers.py.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import httpx

from greenapi.timings import GreenApiTimings

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# pytest-postgresql's executor runs this as its pg_ctl: Debian's, as the postgres user when we are root.
PG_CTL = Path(__file__).resolve().parent / "bin" / "pg_ctl"
# An apiUrl nothing answers on: for registered instances whose tests never reach GREEN-API.
UNREACHABLE_API_URL = "http://127.0.0.1:9"

# The command as a user runs it, from this environment.
CLI = str(BIN / "greenapi-migrate")

# A client subprocess against the tests' emulator: told its windows (tests/conftest.py's TEST_TIMINGS), as the demo does.
FAST_GREEN_API = {**GreenApiTimings(count_refresh_seconds=1, clear_interval_seconds=3).env(), "GREEN_API_TIMEOUT_SECONDS": "30"}

SERVER_START_TIMEOUT_S = 90
CLUSTER_READY_TIMEOUT_S = 60
SERVER_STOP_TIMEOUT_S = 10  # then SIGKILL: after its database went away, SIGTERM can hang for 30 s


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any PREFECT_* or GREEN_API_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "GREEN_API_"))}
    env.update(extra)
    return env


def client_env(api_url: str, home: str | Path, **extra: str) -> dict[str, str]:
    """A clean environment for a client of the Prefect server at ``api_url``, with its own PREFECT_HOME."""
    return clean_env(PREFECT_API_URL=api_url, PREFECT_HOME=str(home), **extra)


@contextlib.contextmanager
def foreign_http_server(status: int = 200, body: str = "<html><body><h1>It works!</h1></body></html>",
                        content_type: str = "text/html") -> Iterator[str]:
    """A loopback HTTP server that is not GREEN-API (a wrong apiUrl): every request gets the same page.
    Yields its URL."""
    class Page(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, *args) -> None:  # the request line holds the token
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, name="foreign-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def stop_process(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL when it has not exited within ``timeout`` seconds; reaped either way."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait(timeout=10)


def stop_process_group(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM to the process's session, SIGKILL when it has not exited within ``timeout`` seconds; then whatever it
    started in its session (uvicorn workers, flow runs) goes with it."""
    for sig, wait_s in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


# ------------------------------------------------------------------------------ the Prefect server


class PrefectServer:
    """`prefect server start --host 127.0.0.1 --port <free>` on one database, as a subprocess.

    `database_url` None: a SQLite file in the server's temporary PREFECT_HOME. Otherwise any URL
    Prefect takes (``postgresql+asyncpg://...``). The server's log is kept in ``log_path`` and quoted
    when it fails to start (after ``start_timeout`` seconds without an answer on /api/health). ``restart()``
    stops it and starts it again on the same port and database.
    """

    def __init__(self, database_url: str | None = None, *, home: str | Path | None = None,
                 start_timeout: float = SERVER_START_TIMEOUT_S, **server_settings: str):
        self.home = Path(home) if home else Path(tempfile.mkdtemp(prefix="prefect-server-"))
        self.home.mkdir(parents=True, exist_ok=True)
        self.database_url = database_url or f"sqlite+aiosqlite:///{self.home / 'prefect.db'}"
        self.backend = "sqlite" if self.database_url.startswith("sqlite") else "postgres"
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.log_path = self.home / "server.log"
        self.settings = {
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_DATABASE_CONNECTION_URL": self.database_url,
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # Expired concurrency leases (a killed run's lock) are reclaimed within a second.
            "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "1",
            # Set, so the server never creates one: on a fresh database two concurrent first saves of
            # a block with secret fields race to insert it (UniqueViolation on uq_configuration__key, a 500).
            "PREFECT_SERVER_ENCRYPTION_KEY": _fernet_key(),
            **server_settings,
        }
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        self.started_in_s: float | None = None  # how long the last start took

    @property
    def sqlite_path(self) -> str | None:
        return self.database_url.split(":///", 1)[1] if self.backend == "sqlite" else None

    @property
    def client_env(self) -> dict[str, str]:
        """A clean environment pointing Prefect clients at this server."""
        return client_env(self.api_url, self.home)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def healthy(self, timeout: float = 2) -> bool:
        try:
            return httpx.get(f"{self.api_url}/health", timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def start(self) -> "PrefectServer":
        if self.process is not None:
            raise RuntimeError("the Prefect server is already running")
        began = time.monotonic()
        with open(self.log_path, "a") as log:
            log.write(f"--- prefect server start on port {self.port} ({self.backend})\n")
            log.flush()
            self.process = subprocess.Popen(
                [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
                env=clean_env(**self.settings), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.home, start_new_session=True,
            )
        deadline = began + self.start_timeout
        while not self.healthy():
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise RuntimeError(f"the Prefect server exited with {code} before answering /api/health; "
                                   f"{self.log_path}:\n{self.log_text()[-4000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Prefect server did not answer /api/health within {self.start_timeout:g} s; "
                                   f"{self.log_path}:\n{self.log_text()[-4000:]}")
            time.sleep(0.25)
        self.started_in_s = time.monotonic() - began
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        stop_process_group(process, SERVER_STOP_TIMEOUT_S)

    def restart(self) -> "PrefectServer":
        self.stop()
        return self.start()

    def __enter__(self) -> "PrefectServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def prefect_server(database_url: str | None = None, **server_settings: str) -> Iterator[PrefectServer]:
    """A started `PrefectServer`, stopped afterwards."""
    with PrefectServer(database_url, **server_settings) as server:
        yield server


# ------------------------------------------------------------------------------ PostgreSQL


def postgres_unavailable() -> str | None:
    """Why the suite cannot run a PostgreSQL cluster here, or None when it can."""
    try:
        done = subprocess.run([str(PG_CTL), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run {PG_CTL}: {exc}"
    if done.returncode != 0:
        return (done.stderr.strip() or done.stdout.strip() or f"{PG_CTL} --version exited {done.returncode}") + \
            " (`make test` installs Debian's postgresql package when it runs as root)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser, so the cluster cannot run as the postgres user"
    return None


class PostgresCluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1 and a random port: pytest-postgresql's executor
    (pg_ctl initdb/start/stop) with its data, socket and log in one temporary directory, which the
    `postgres` user owns when we are root. ``restart()`` stops and starts the same cluster."""

    user = "postgres"
    host = "127.0.0.1"

    def __init__(self) -> None:
        from pytest_postgresql.executors import PostgreSQLExecutor

        self.dir = Path(tempfile.mkdtemp(prefix="greenapi-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        self.executor = PostgreSQLExecutor(
            executable=str(PG_CTL), host=self.host, port=self.port, datadir=str(self.dir / "data"),
            unixsocketdir=str(self.dir), logfile=str(self.dir / "postgresql.log"), startparams="-w -t 60",
            dbname="greenapi_tests", user=self.user, password=None, timeout=90,
            # A test cluster: no durability, room for a few Prefect servers' pools.
            postgres_options="-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
        )
        self._databases = 0

    def start(self) -> "PostgresCluster":
        self.executor.start()
        return self

    def stop(self) -> None:
        if self.executor.running():
            self.executor.stop()

    def restart(self) -> "PostgresCluster":
        self.stop()
        return self.start()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self) -> str:
        try:
            return Path(self.executor.logfile).read_text(errors="replace")
        except OSError:
            return ""

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def create_database(self, prefix: str = "prefect") -> str:
        """A new empty database; returns its URL for Prefect (asyncpg driver)."""
        import psycopg

        self._databases += 1
        name = f"{prefix}_{os.getpid()}_{self._databases}"
        deadline = time.monotonic() + CLUSTER_READY_TIMEOUT_S
        while True:
            try:
                with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                return f"postgresql+asyncpg://{self.user}@{self.host}:{self.port}/{name}"
            except psycopg.OperationalError as exc:
                # On a loaded machine pg_ctl can return while the cluster still answers "starting up".
                if "starting up" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def __enter__(self) -> "PostgresCluster":
        try:
            return self.start()
        except BaseException:
            log = self.log_text()
            self.close()
            if log:
                sys.stderr.write(f"PostgreSQL log:\n{log[-4000:]}\n")
            raise

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------------------ the receiver


class Receiver:
    """A ``greenapi-migrate receiver`` subprocess; its stdout and stderr are kept whole. ``start`` returns
    once it printed the URL it listens on."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.url = ""
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._pumps: list[threading.Thread] = []

    @classmethod
    def start(cls, env: dict[str, str], cwd: Path, *args: str, timeout: float = 45) -> "Receiver":
        proc = subprocess.Popen([CLI, "receiver", *args], env=env, cwd=cwd, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        receiver = cls(proc)
        lines: queue.Queue[str] = queue.Queue()

        def pump(stream, into: list[str], tee: queue.Queue | None) -> None:
            for line in stream:
                into.append(line)
                if tee is not None:
                    tee.put(line)

        receiver._pumps = [threading.Thread(target=pump, args=(proc.stdout, receiver.stdout, lines), daemon=True),
                           threading.Thread(target=pump, args=(proc.stderr, receiver.stderr, None), daemon=True)]
        for thread in receiver._pumps:
            thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                match = re.fullmatch(r"receiver listening on (http://\S+)\n", lines.get(timeout=0.2))
            except queue.Empty:
                continue
            if match:
                receiver.url = match.group(1)
                return receiver
        receiver.kill()
        raise AssertionError(f"the receiver did not start within {timeout} s: stdout={receiver.stdout!r} "
                             f"stderr={''.join(receiver.stderr)[-2000:]!r}")

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM and wait; the exit status, once its output is read to the end."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the receiver did not stop within {timeout} s of SIGTERM") from None
        self._drain()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._drain()

    def _drain(self, timeout: float = 5) -> None:
        """The output read to the end: the pumps stop when the exited process's pipes close (bounded)."""
        deadline = time.monotonic() + timeout
        for thread in self._pumps:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def output(self) -> str:
        return "".join(self.stdout) + "".join(self.stderr)


@contextlib.contextmanager
def talking_to(api_url: str) -> Iterator[None]:
    """This process's Prefect clients, events and logs go to ``api_url`` inside, and back to the server
    before (the worker's SQLite server, as the integration tests use it) after.

    Per test, not per session: session fixtures are torn down in whatever order the tests need them,
    so a settings context held by one would undo another's. Prefect's events and logs workers are bound
    to the URL they first met, so they are drained on the way in and out."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    drain_prefect_workers()
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        try:
            yield
        finally:
            drain_prefect_workers()


def drain_prefect_workers() -> None:
    """Send what this process's Prefect events and logs workers hold, and stop them (bounded)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (EventsWorker, APILogWorker):
        worker.drain_all(timeout=15)


async def register_instance(id_instance: int, token: str | None = None, *, api_url: str = UNREACHABLE_API_URL,
                            name: str | None = None) -> str:
    """A greenapi-instance block for the instance (the receiver and the sweep act only on registered ones);
    returns its name (``e2e-<id>`` unless given). The default apiUrl answers nothing."""
    from instances import GreenApiInstance

    name = name or f"e2e-{id_instance}"
    await GreenApiInstance(api_url=api_url, id_instance=id_instance,
                           api_token_instance=token or secrets.token_hex(25)).asave(name, overwrite=True)
    return name


# ------------------------------------------------------------------------------ a worker machine that pulls the code

WORK_POOL = "greenapi"  # prefect.yaml's
PULL_BRANCH = "worker-pull"  # the branch the bare repository carries HEAD as (not one this checkout has)
# How `prefect worker start` says it polls (prefect/workers/base.py).
WORKER_STARTED = re.compile(r"Worker '([^']+)' started!")


def bare_repository(directory: Path, branch: str = PULL_BRANCH) -> str:
    """A bare git repository of this checkout's HEAD (committed code only), carrying it as ``branch``; its
    file:// URL, the value of the greenapi_repository Variable (docs/deploy.md)."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(["git", "clone", "--bare", "--quiet", "--single-branch", str(ROOT), str(directory)], check=True, timeout=120)
    subprocess.run(["git", "--git-dir", str(directory), "update-ref", f"refs/heads/{branch}", head], check=True)
    return directory.resolve().as_uri()


def machine_env(api_url: str, home: str | Path, **extra: str) -> dict[str, str]:
    """`client_env` as on another machine: nothing that leads to this checkout (no PYTHONPATH, no VIRTUAL_ENV)."""
    env = client_env(api_url, home, **extra)
    for name in ("PYTHONPATH", "VIRTUAL_ENV"):
        env.pop(name, None)
    return env


def worker_python(directory: Path, env: dict[str, str]) -> Path:
    """A fresh virtualenv with nothing but prefect (this environment's version) pip-installed into it: a worker
    machine's Python, as docs/deploy.md sets one up. Returns its bin/ directory."""
    import prefect

    subprocess.run([sys.executable, "-m", "venv", str(directory)], check=True, timeout=600)
    bin_dir = directory / "bin"
    done = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", f"prefect=={prefect.__version__}"],
                          env=env, cwd=directory, capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        raise RuntimeError(f"pip install prefect exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    return bin_dir


def deploy_from_prefect_yaml(env: dict[str, str], repository: str, branch: str = PULL_BRANCH) -> None:
    """What docs/deploy.md has the operator run once, from a checkout: the work pool, the two Variables the pull
    steps read, `prefect deploy --all`."""
    prefect = str(BIN / "prefect")
    for command in (["work-pool", "create", WORK_POOL, "--type", "process", "--overwrite"],
                    ["variable", "set", "greenapi_repository", repository, "--overwrite"],
                    ["variable", "set", "greenapi_branch", branch, "--overwrite"],
                    ["deploy", "--all"]):
        done = subprocess.run([prefect, "--no-prompt", *command], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"prefect {' '.join(command)} exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


class PullingWorker:
    """`prefect worker start --pool greenapi` from a worker machine's Python (``bin_dir``), in its own directory
    and process group; its output kept in ``log``. ``start`` returns once it says it started."""

    def __init__(self, bin_dir: Path, env: dict[str, str], directory: Path, name: str = "pulling-worker") -> None:
        self.bin_dir, self.env, self.directory, self.name = bin_dir, env, directory, name
        self.log = directory / "worker.log"
        self.process: subprocess.Popen | None = None

    def text(self) -> str:
        try:
            return re.sub(r"\x1b\[[0-9;]*m", "", self.log.read_text(errors="replace"))
        except OSError:
            return ""

    def start(self, timeout: float = 90) -> "PullingWorker":
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [str(self.bin_dir / "prefect"), "worker", "start", "--pool", WORK_POOL, "--name", self.name],
                env=self.env, cwd=self.directory, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # its flow runs in its group: stopped with it
            )
        deadline = time.monotonic() + timeout
        while self.name not in WORKER_STARTED.findall(self.text()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the worker did not start within {timeout} s:\n{self.text()[-3000:]}")
            time.sleep(0.25)
        return self

    def stop(self, timeout: float = 20) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        stop_process_group(process, timeout)

    def __enter__(self) -> "PullingWorker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
