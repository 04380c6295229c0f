"""``greenapi-migrate local`` (``make local``): the whole loop on one machine, in one command, stopped with Ctrl-C.

It starts, in this order: a Prefect server (``prefect server start``; or the one PREFECT_API_URL names), the
GREEN-API emulator with a seeded fleet of a few instances (short windows, as in the demo), ``instances import``
of that fleet as greenapi-instance blocks, and ``greenapi-migrate serve`` (both deployments, a task worker and the
receiver, with a generated receiver secret). Then it prints what to open (the Prefect UI) and the exact curl lines
that block a number (the generated secret is never printed: the curl line reads it from a file only this user can
read, removed at the end): GREEN-API's ``stateInstanceChanged`` webhook to the receiver with the bearer, and the
emulator's own state change. Ctrl-C (or SIGTERM) stops what it started, last started first, and removes the
fleet's blocks, so no sweep later checks an emulator that is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from cli.demo import DEMO_TIMINGS, demo_emulator_config
from emulator import EmulatorServer, InstanceSeed

FLEET = ((1101000001, "79001234567@c.us", 25), (1101000002, "79007654321@c.us", 12), (1101000003, "79005550000@c.us", 7))
BLOCK_PREFIX = "local-"
BIN = Path(sys.executable).parent


def _say(message: str) -> None:
    print(message, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, *, timeout: float, what: str, alive=lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"{what} exited before it answered")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s")


def _stop(process: subprocess.Popen | None, name: str, *, first=signal.SIGINT, timeout: float = 20) -> None:
    """Stop a child started in a session of its own: ``first`` to its process group, SIGKILL after ``timeout``."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, first)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    _say(f"stopped {name}")


def _blocking_curls(receiver_url: str, emulator_url: str, secret_shown: str, id_instance: int, wid: str) -> tuple[str, str]:
    body = json.dumps({"typeWebhook": "stateInstanceChanged",
                       "instanceData": {"idInstance": id_instance, "wid": wid, "typeInstance": "whatsapp"},
                       "timestamp": int(time.time()), "stateInstance": "blocked"})
    webhook = (f"curl -sS -X POST {receiver_url}/webhooks/greenapi -H \"Authorization: Bearer {secret_shown}\" "
               f"-H 'Content-Type: application/json' -d {shlex.quote(body)}")
    emulated = (f"curl -sS -X POST {emulator_url}/_emulator/instances/{id_instance}/state "
                f"-H 'Content-Type: application/json' -d '{{\"state\": \"blocked\"}}'")
    return webhook, emulated


class LocalLoop:
    """What ``local`` started, in order, so that :meth:`stop` stops exactly that, last started first."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="greenapi-local-"))
        self.env = {**os.environ, **DEMO_TIMINGS.env()}  # the emulator's short windows, told to the runs: leftTime in seconds
        self.server: subprocess.Popen | None = None
        self.serve: subprocess.Popen | None = None
        self.emulator: EmulatorServer | None = None
        self.imported = False
        self.generated_secret = not self.env.get("GREEN_API_RECEIVER_SECRET")

    def start_prefect(self, port: int) -> str:
        """The Prefect server PREFECT_API_URL names, or ``prefect server start`` on ``port`` (0: a free one); its API URL."""
        api_url = self.env.get("PREFECT_API_URL")
        if api_url:
            _say(f"Prefect: the server PREFECT_API_URL names, {api_url}")
        else:
            port = port or _free_port()
            api_url = self.env["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
            log = (self.workdir / "prefect-server.log").open("w")
            _say(f"Prefect: starting `prefect server start` on 127.0.0.1:{port}")
            self.server = server = subprocess.Popen(
                [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            _wait_http(f"{api_url}/health", timeout=90, what="prefect server start", alive=lambda: server.poll() is None)
        _wait_http(f"{api_url}/health", timeout=30, what="the Prefect server")
        return api_url

    def start_emulator(self, port: int) -> dict[int, str]:
        """The emulator with the fleet seeded, fresh tokens each start (never printed); the tokens by idInstance."""
        self.emulator = EmulatorServer(demo_emulator_config(), port=port).__enter__()
        tokens = {id_instance: secrets.token_hex(25) for id_instance, _, _ in FLEET}
        for id_instance, wid, queued in FLEET:
            self.emulator.state.add_instance(InstanceSeed(id_instance=id_instance, api_token=tokens[id_instance], wid=wid,
                                                          notifications=queued))
        _say(f"emulator: {self.emulator.url}, instances {', '.join(str(i) for i, _, _ in FLEET)} (clear window "
             f"{DEMO_TIMINGS.clear_interval_seconds:.0f} s, count refresh {DEMO_TIMINGS.count_refresh_seconds:.0f} s)")
        return tokens

    def import_fleet(self, tokens: dict[int, str]) -> None:
        """``instances import`` of the fleet, from a file removed at once."""
        assert self.emulator is not None
        fleet = self.workdir / "fleet.csv"
        fleet.write_text("idInstance,apiTokenInstance,apiUrl,name\n" + "".join(
            f"{i},{tokens[i]},{self.emulator.url},{BLOCK_PREFIX}{i}\n" for i, _, _ in FLEET))
        done = subprocess.run([str(BIN / "greenapi-migrate"), "instances", "import", str(fleet)], env=self.env,
                              capture_output=True, text=True, timeout=120)
        fleet.unlink()
        self.imported = True
        if done.returncode != 0:
            raise RuntimeError(f"instances import failed: {(done.stderr or done.stdout).strip()}")
        _say(done.stdout.strip().splitlines()[0])

    def start_serve(self, receiver_port: int) -> str:
        """``greenapi-migrate serve``, with a generated receiver secret unless one is set; the receiver's URL."""
        if self.generated_secret:
            self.env["GREEN_API_RECEIVER_SECRET"] = secrets.token_hex(32)
        receiver_port = receiver_port or _free_port()
        self.env["GREEN_API_RECEIVER_PORT"] = str(receiver_port)
        receiver_url = f"http://127.0.0.1:{receiver_port}"
        _say("serve: starting `greenapi-migrate serve` (both deployments, a task worker, the receiver); its lines follow")
        self.serve = serve = subprocess.Popen([str(BIN / "greenapi-migrate"), "serve"], env=self.env,
                                              stdin=subprocess.DEVNULL, start_new_session=True)
        _wait_http(f"{receiver_url}/health", timeout=90, what="greenapi-migrate serve", alive=lambda: serve.poll() is None)
        return receiver_url

    def secret_for_curl(self) -> str:
        """How the curl line gets the receiver secret: a generated one is never printed but read from a file only
        this user can read (removed at stop)."""
        if not self.generated_secret:
            return "$GREEN_API_RECEIVER_SECRET"
        secret_file = self.workdir / "receiver-secret"
        secret_file.touch(mode=0o600)
        secret_file.write_text(self.env["GREEN_API_RECEIVER_SECRET"])
        return f"$(cat {shlex.quote(str(secret_file))})"

    def wait_until_one_exits(self) -> int:
        """Until serve or the Prefect server this started exits by itself: 1."""
        assert self.serve is not None
        while self.serve.poll() is None and (self.server is None or self.server.poll() is None):
            time.sleep(0.5)
        _say(f"greenapi-migrate local: {'serve' if self.serve.poll() is not None else 'the Prefect server'} exited; "
             "stopping the rest")
        return 1

    def stop(self) -> None:
        """Stop what was started, last first; the fleet's blocks removed while the Prefect server still runs."""
        _stop(self.serve, "serve")
        if self.imported and (self.server is None or self.server.poll() is None):
            subprocess.run([str(BIN / "greenapi-migrate"), "instances", "remove", *(str(i) for i, _, _ in FLEET)],
                           env=self.env, capture_output=True, timeout=60)
            _say("removed the fleet's blocks")
        if self.emulator is not None:
            self.emulator.__exit__(None, None, None)
            _say("stopped the emulator")
        _stop(self.server, "the Prefect server", first=signal.SIGTERM)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _everything_is_up(api_url: str, receiver_url: str, emulator_url: str, secret_shown: str) -> str:
    """What to open and the two curl lines that block the first instance's number."""
    ui = api_url.removesuffix("/api").rstrip("/")
    id_instance, wid, queued = FLEET[0]
    webhook, emulated = _blocking_curls(receiver_url, emulator_url, secret_shown, id_instance, wid)
    return "\n".join([
        "",
        "greenapi-migrate local: everything is up; Ctrl-C stops it all.",
        f"  open the Prefect UI: {ui}/runs  (deployments: {ui}/deployments)",
        f"  receiver: {receiver_url}   emulator: {emulator_url}   blocks: " + ", ".join(f"{BLOCK_PREFIX}{i}" for i, _, _ in FLEET),
        f"Block the number on instance {id_instance} (GREEN-API's stateInstanceChanged webhook, sent to the receiver):",
        f"  {webhook}",
        f"  -> a run number_blocked-{id_instance} clears its {queued} stale notifications; watch it in the UI.",
        "Or make the emulated GREEN-API itself see the block (the sweep, every 15 min or Run from the UI, finds it):",
        f"  {emulated}",
        "",
    ])


def _interrupted(signum, frame):  # SIGTERM stops it as Ctrl-C does
    raise KeyboardInterrupt


def run_local(*, prefect_port: int = 4200, receiver_port: int = 8787, emulator_port: int = 8080) -> int:
    """Start the loop, say how to block a number, run until Ctrl-C (0) or a part exits (1); 2 when a part cannot start."""
    signal.signal(signal.SIGTERM, _interrupted)
    # Ctrl-C stops it even when started with SIGINT ignored or blocked (a background job, or a parent that had it so):
    # Python installs its KeyboardInterrupt handler only where SIGINT was not ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    loop = LocalLoop()
    try:
        api_url = loop.start_prefect(prefect_port)
        loop.import_fleet(loop.start_emulator(emulator_port))
        receiver_url = loop.start_serve(receiver_port)
        assert loop.emulator is not None
        _say(_everything_is_up(api_url, receiver_url, loop.emulator.url, loop.secret_for_curl()))
        return loop.wait_until_one_exits()
    except KeyboardInterrupt:
        _say("\ngreenapi-migrate local: stopping")
        return 0
    except RuntimeError as exc:
        print(f"greenapi-migrate local: {exc}", file=sys.stderr, flush=True)
        return 2
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave children behind
        loop.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
