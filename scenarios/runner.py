"""The scenarios of issue 20 (item 5) under the four wirings, against one emulator that delivers webhooks.

Wirings (one app stub each, long-lived; each scenario gets new instances):

- **W0** nothing installed: the app holds the webhookUrl.
- **W1** the sweep only: the app holds the webhookUrl; ``flows.sweep_instances`` (``handle="inline"``) runs
  in this process every few seconds, over the W1 instances only.
- **W2** the receiver without forwarding (``--dispatch background``, a ``greenapi-migrate task-worker`` runs
  the handle-account-change runs); the app holds the webhookUrl and forwards stateInstanceChanged bodies to
  the receiver before answering (wiring (b)).
- **W3** the relay: the webhookUrl is the receiver's ``/webhooks/greenapi`` with ``GREEN_API_RECEIVER_FORWARD_URL``
  the app (wiring (a)); account changes go to the same task worker. ``relays=2`` puts two behind a
  round-robin proxy.

Scenarios (every time below is multiplied by ``Timing.scale``; traffic of the account on the instance at
``Timing.rate_per_second`` per instance throughout, through the emulator's control API):

- **i** block, then a new account authorized 30 s later (no traffic while blocked).
- **ii** deliveries paused (webhookUrl emptied, or the app down with ``pause="app_down"``), 50 notifications of
  the old account queued, the account changed, the new account's traffic queued behind for 10 s, then
  delivery resumes.
- **iii** the app answers 503 for a minute.
- **iv** the relay restarted mid-stream (SIGTERM, started again on the same port); without a relay, the app
  restarted (down as long).
- **v** the Prefect server down for 30 s while webhooks flow.

Each cell's numbers are ``scenarios.measure.measure`` of what its app stub got.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx

from greenapi.timings import GreenApiTimings
from scenarios.app_stub import AppStub
from scenarios.measure import CellResult, Enqueued, measure
from scenarios.proxy import RoundRobinProxy

WIRINGS = ("W0", "W1", "W2", "W3")
SCENARIOS = ("i", "ii", "iii", "iv", "v")
SCENARIO_TITLES = {
    "i": "(i) block, new account 30 s later",
    "ii": "(ii) account changed while paused, 50 old queued",
    "iii": "(iii) app answers 503 for a minute",
    "iv": "(iv) relay (or app) restarted mid-stream",
    "v": "(v) Prefect server down while webhooks flow",
}
WIRING_TITLES = {
    "W0": "W0 nothing installed",
    "W1": "W1 sweep only",
    "W2": "W2 receiver, app forwards state webhooks",
    "W3": "W3 relay (holds back stale)",
}
WEBHOOK_PATH = "/webhooks/greenapi"

# The emulator's windows these scenarios run with (tests/conftest.py's), and the runs told of them as the tests and
# the demo tell theirs (greenapi/timings.py's GREEN_API_EMULATOR_TIMINGS).
EMULATOR_WINDOWS = {"clear_window_seconds": 3.0, "count_refresh_seconds": 1.0, "max_receive_wait_seconds": 0.2}
GREEN_API_ENV = {
    **GreenApiTimings(count_refresh_seconds=EMULATOR_WINDOWS["count_refresh_seconds"],
                      clear_interval_seconds=EMULATOR_WINDOWS["clear_window_seconds"]).env(),
    "GREEN_API_TIMEOUT_SECONDS": "30",
}

PAUSE_FLOOR_SECONDS = 4.0

_ids = itertools.count(3_300_000_001 + secrets.randbelow(1_000) * 10_000)


@dataclass
class Timing:
    """``scale`` multiplies the scenario's durations (30 s, a minute, the pauses) and the emulator's
    ``redelivery_pause_seconds`` (60 s), so tests run the same code fast."""

    scale: float = 1.0
    rate_per_second: float = 2.0  # each instance's traffic
    steady_seconds: float = 10.0  # traffic before and after each event, unscaled floor 1 s
    min_event_seconds: float = 1.0

    def s(self, seconds: float) -> float:
        return max(self.min_event_seconds, seconds * self.scale)

    @property
    def redelivery_pause(self) -> float:
        return 60.0 * self.scale

    @property
    def steady(self) -> float:
        return self.s(self.steady_seconds)


@dataclass
class PrefectHandle:
    """The Prefect server: ``env`` for client subprocesses (PREFECT_API_URL, PREFECT_HOME), ``stop``/``start``
    for scenario (v)."""

    api_url: str
    env: dict[str, str]
    stop: Callable[[], None] | None = None
    start: Callable[[], None] | None = None


@dataclass
class Cell:
    scenario: str
    wiring: str
    id_instance: int
    api_token: str
    old_wid: str
    new_wid: str | None = None
    endpoint: str = ""
    hook_token: str = ""
    traffic: bool = False
    enqueued: list[Enqueued] = field(default_factory=list)
    changed_at: float | None = None
    events: list[tuple[float, str]] = field(default_factory=list)
    result: CellResult | None = None
    extra: dict = field(default_factory=dict)

    def note(self, what: str) -> None:
        self.events.append((time.time(), what))


def _wid() -> str:
    return f"7{secrets.randbelow(10**10):010d}@c.us"


# ------------------------------------------------------------------------------ processes


class Stack:
    """What the wirings need, started once for a run of scenarios: one app stub per wiring, the W2 receiver,
    the W3 relay(s) (two behind ``RoundRobinProxy`` with ``relays=2``), one task worker, the W1 sweep loop."""

    def __init__(self, *, emulator_url: str, prefect: PrefectHandle, workdir: Path, wirings=WIRINGS,
                 timing: Timing | None = None, relays: int = 1, green_api_env: dict[str, str] | None = None) -> None:
        self.emulator_url = emulator_url.rstrip("/")
        self.prefect = prefect
        self.workdir = Path(workdir)
        self.wirings = tuple(wirings)
        self.timing = timing or Timing()
        self.relays = relays
        self.green_api_env = {**GREEN_API_ENV, **(green_api_env or {})}
        self.apps: dict[str, AppStub] = {}
        self.receiver = None  # W2
        self.relay_procs: list = []  # W3
        self.relay_ports: list[int] = []
        self.proxy: RoundRobinProxy | None = None
        self.task_worker = None
        self.secret = secrets.token_hex(24)
        self.sweep_ids: set[int] = set()
        self.sweep_passes = 0
        self.sweep_errors: list[str] = []
        self._sweep_task: asyncio.Task | None = None
        self._restore_sweep = None
        self._stack = contextlib.ExitStack()

    # ------------------------------------------------------------------ start and stop
    def _env(self, **extra: str) -> dict[str, str]:
        return {**self.prefect.env, **self.green_api_env,
                "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(self.workdir / "task-storage"), **extra}

    def __enter__(self) -> "Stack":
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def _start(self) -> None:
        from bench.servers import free_port

        self.workdir.mkdir(parents=True, exist_ok=True)
        for wiring in self.wirings:
            app = AppStub(secrets.token_hex(16), name=wiring)
            self._stack.enter_context(app)
            self.apps[wiring] = app
        if "W2" in self.wirings or "W3" in self.wirings:
            self._start_task_worker()
        if "W2" in self.wirings:
            self.receiver = self._start_receiver(free_port(), "w2")
            self.apps["W2"].forward_state_to = (self.receiver.url + WEBHOOK_PATH, self.secret)
        if "W3" in self.wirings:
            self.relay_ports = [free_port() for _ in range(self.relays)]
            app = self.apps["W3"]
            for index, port in enumerate(self.relay_ports):
                self.relay_procs.append(self._start_receiver(port, f"relay{index}", forward_to=app.url,
                                                             forward_token=app.token))
            if self.relays > 1:
                self.proxy = self._stack.enter_context(RoundRobinProxy([f"http://127.0.0.1:{p}" for p in self.relay_ports]))
        if "W1" in self.wirings:
            self._only_w1_instances()

    def _start_task_worker(self) -> None:
        import subprocess

        from bench.servers import CLI, stop_process

        log = (self.workdir / "task-worker.log").open("a")
        process = subprocess.Popen([CLI, "task-worker", "--limit", "20"], env=self._env(), stdout=log, stderr=subprocess.STDOUT,
                                   cwd=self.workdir, start_new_session=True)
        self.task_worker = process
        self._stack.callback(log.close)
        self._stack.callback(stop_process, process, 20)

    def _start_receiver(self, port: int, name: str, *, forward_to: str | None = None, forward_token: str | None = None):
        from bench.servers import Receiver

        extra = {"GREEN_API_RECEIVER_SECRET": self.secret}
        if forward_to:
            extra.update(GREEN_API_RECEIVER_FORWARD_URL=forward_to, GREEN_API_RECEIVER_FORWARD_TOKEN=forward_token or "")
        home = self.workdir / name
        home.mkdir(exist_ok=True)
        receiver = Receiver.start(self._env(**extra), home, "--port", str(port), "--dispatch", "background", timeout=90)
        receiver.name, receiver.extra_env = name, extra
        self._stack.callback(self._stop_receiver, receiver)
        return receiver

    @staticmethod
    def _stop_receiver(receiver) -> None:
        with contextlib.suppress(AssertionError):
            receiver.terminate(timeout=20)

    def restart_relay(self, index: int = 0) -> float:
        """SIGTERM the relay, start it again on the same port; returns the seconds it was not listening."""
        from bench.servers import Receiver

        old = self.relay_procs[index]
        began = time.monotonic()
        self._stop_receiver(old)
        home = self.workdir / old.name
        new = Receiver.start(self._env(**old.extra_env), home, "--port", str(self.relay_ports[index]), "--dispatch",
                             "background", timeout=90)
        new.name, new.extra_env = old.name, old.extra_env
        self.relay_procs[index] = new
        self._stack.callback(self._stop_receiver, new)
        return time.monotonic() - began

    @property
    def relay_url(self) -> str:
        return self.proxy.url if self.proxy else f"http://127.0.0.1:{self.relay_ports[0]}"

    def relay_health(self) -> list[dict]:
        found = []
        for port in self.relay_ports:
            try:
                found.append(httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json())
            except (httpx.HTTPError, ValueError):
                found.append({})
        return found

    def outputs(self) -> str:
        """What the receivers printed (for a failing test's message)."""
        parts = [f"--- {p.name}\n{p.output[-3000:]}" for p in ([self.receiver] if self.receiver else []) + self.relay_procs]
        log = self.workdir / "task-worker.log"
        if log.exists():
            parts.append(f"--- task worker\n{log.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    # ------------------------------------------------------------------ W1: the sweep, over the W1 instances only
    def _only_w1_instances(self) -> None:
        import importlib

        sweep_module = importlib.import_module("flows.sweep_instances")  # flows.sweep_instances is also the flow's name
        everyone = sweep_module.registered_instances

        async def w1_only():
            return [r for r in await everyone() if r.id_instance in self.sweep_ids]

        sweep_module.registered_instances = w1_only
        self._stack.callback(setattr, sweep_module, "registered_instances", everyone)

    async def sweep_loop(self, every: float) -> None:
        from flows.sweep_instances import sweep_instances

        while True:
            if self.sweep_ids:
                try:
                    await asyncio.wait_for(sweep_instances(handle="inline", max_concurrency=5, return_state=True),
                                           timeout=max(60.0, 2 * self.timing.redelivery_pause))
                    self.sweep_passes += 1
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001  (Prefect down: the next pass tries again)
                    self.sweep_errors.append(type(exc).__name__)
            await asyncio.sleep(every)

    async def start_sweeping(self) -> None:
        if "W1" in self.wirings and self._sweep_task is None:
            self._sweep_task = asyncio.create_task(self.sweep_loop(max(1.0, self.timing.s(5))))

    async def stop_sweeping(self) -> None:
        task, self._sweep_task = self._sweep_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def task_worker_ready(self, timeout: float = 90) -> None:
        """The task worker is subscribed on the Prefect server (a report handed over now is run)."""
        if self.task_worker is None:
            return
        from prefect.client.orchestration import get_client

        from flows.reported import handle_reported_change

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.task_worker.poll() is not None:
                raise RuntimeError(f"the task worker exited {self.task_worker.returncode}:\n{self.outputs()}")
            with contextlib.suppress(Exception):
                async with get_client() as client:
                    answer = await client.request("POST", "/task_workers/filter",
                                                  json={"task_worker_filter": {"task_keys": [handle_reported_change.task_key]}})
                    if answer.json():
                        return
            await asyncio.sleep(0.5)
        raise RuntimeError(f"the task worker did not subscribe within {timeout} s:\n{self.outputs()}")


# ------------------------------------------------------------------------------ one scenario, its wirings side by side


class ScenarioRun:
    def __init__(self, stack: Stack, scenario: str, wirings=None, *, pause: str = "webhook_url") -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}")
        self.stack, self.scenario, self.pause = stack, scenario, pause
        self.wirings = tuple(wirings or stack.wirings)
        self.t = stack.timing
        self.cells: dict[str, Cell] = {}
        self.http = httpx.AsyncClient(base_url=stack.emulator_url + "/_emulator", timeout=30)
        self.seq = itertools.count()
        self.notes: dict = {}
        self.traffic_stopped = asyncio.Event()

    # ------------------------------------------------------------------ emulator control
    async def _control(self, verb: str, path: str, body=None) -> dict:
        answer = await self.http.request(verb, path, json=body)
        answer.raise_for_status()
        return answer.json()

    async def enqueue(self, cell: Cell, count: int = 1) -> None:
        answer = await self._control("POST", f"/instances/{cell.id_instance}/notifications", {"count": count})
        now = time.time()
        for item in answer["queued"]:
            cell.enqueued.append(Enqueued(item["idMessage"], item["wid"], next(self.seq), now))

    async def change_state(self, cell: Cell, state: str, wid: str | None = None) -> None:
        body = {"state": state} | ({"wid": wid} if wid else {})
        if wid and wid != cell.old_wid:
            cell.changed_at = time.time()
            cell.new_wid = wid
        cell.note(f"state {state}" + (" (new account)" if wid else ""))
        await self._control("POST", f"/instances/{cell.id_instance}/state", body)

    async def set_webhook_url(self, cell: Cell, url: str) -> None:
        cell.note(f"webhookUrl {'set' if url else 'emptied'}")
        await self._control("PATCH", f"/instances/{cell.id_instance}", {"webhook_url": url})

    async def view(self, cell: Cell) -> dict:
        return await self._control("GET", f"/instances/{cell.id_instance}")

    async def drained(self) -> bool:
        views = await asyncio.gather(*(self.view(c) for c in self.cells.values()))
        return all(v["queue_length"] == 0 and not v.get("delivering") for v in views)

    async def wait_drained(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.drained():
                return True
            await asyncio.sleep(0.1)
        return False

    # ------------------------------------------------------------------ traffic
    async def traffic(self) -> None:
        """Until ``traffic_stopped`` is set; it ends between rounds (a cancelled enqueue the emulator took would be a
        notification the measures never heard of)."""
        period = 1.0 / self.t.rate_per_second
        next_at = time.monotonic()
        while not self.traffic_stopped.is_set():
            cells = [c for c in self.cells.values() if c.traffic]
            if cells:
                await asyncio.gather(*(self.enqueue(c) for c in cells))
            next_at += period
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.traffic_stopped.wait(), max(0.0, next_at - time.monotonic()))

    def traffic_on(self, on: bool = True) -> None:
        for cell in self.cells.values():
            cell.traffic = on

    # ------------------------------------------------------------------ set up, run, measure
    async def setup(self) -> None:
        from bench.servers import register_instance

        stack = self.stack
        for wiring in self.wirings:
            cell = Cell(self.scenario, wiring, next(_ids), secrets.token_hex(25), _wid())
            if wiring == "W3":
                cell.endpoint, cell.hook_token = stack.relay_url + WEBHOOK_PATH, stack.secret
            else:
                app = stack.apps[wiring]
                cell.endpoint, cell.hook_token = app.url, app.token
            self.cells[wiring] = cell
        await self._control("POST", "/instances", [
            {"id_instance": c.id_instance, "api_token": c.api_token, "wid": c.old_wid, "webhook_url": c.endpoint,
             "settings": {"webhookUrlToken": c.hook_token, "stateWebhook": "yes"}} for c in self.cells.values()])
        registered = [c for c in self.cells.values() if c.wiring != "W0"]
        for cell in registered:
            await register_instance(cell.id_instance, cell.api_token, api_url=stack.emulator_url,
                                    name=f"delivery-{cell.id_instance}")
        # The account on each instance announced once (the receiver records the first wid it sees), and for W1
        # one sweep pass that records it.
        await asyncio.gather(*(self.change_state(c, "authorized") for c in self.cells.values()))
        if not await self.wait_drained(30 + 2 * self.t.redelivery_pause):
            self.notes["warm_up_not_drained"] = True
        if "W1" in self.cells:
            passes = stack.sweep_passes
            stack.sweep_ids.add(self.cells["W1"].id_instance)
            await stack.start_sweeping()
            deadline = time.monotonic() + 90
            while stack.sweep_passes < passes + 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)

    async def teardown(self) -> None:
        from prefect.client.orchestration import get_client

        self.stack.sweep_ids.difference_update(c.id_instance for c in self.cells.values())
        with contextlib.suppress(Exception):
            async with get_client() as client:
                for cell in self.cells.values():
                    if cell.wiring != "W0":
                        with contextlib.suppress(Exception):
                            document = await client.read_block_document_by_name(f"delivery-{cell.id_instance}", "greenapi-instance")
                            await client.delete_block_document(document.id)
        await self.http.aclose()

    async def run(self) -> dict[str, Cell]:
        began = time.monotonic()
        await self.setup()
        await self.stack.start_sweeping()
        producer = asyncio.create_task(self.traffic())
        try:
            await getattr(self, f"_scenario_{self.scenario}")()
        finally:
            self.traffic_on(False)
            self.traffic_stopped.set()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(producer, 60)
        drain_timeout = 2 * self.t.redelivery_pause + 60
        self.notes["drained"] = await self.wait_drained(drain_timeout)
        await asyncio.sleep(0.3)
        await self.collect()
        self.notes["wall_seconds"] = round(time.monotonic() - began, 1)
        return self.cells

    async def collect(self) -> None:
        counts = await self._control("GET", "/counts")
        for wiring, cell in self.cells.items():
            app = self.stack.apps[wiring]
            receipts = app.receipts(cell.id_instance)
            cell.result = measure(cell.enqueued, receipts, old_wid=cell.old_wid, new_wid=cell.new_wid,
                                  changed_at=cell.changed_at)
            answered = counts.get("answered_by_instance_method", {}).get(str(cell.id_instance), {})
            view = await self.view(cell)
            cell.extra = {"id_instance": cell.id_instance, "clears": answered.get("clearWebhooksQueue", 0),
                          "get_settings": answered.get("getSettings", 0), "queue_left": view["queue_length"],
                          "events": [(round(at - cell.events[0][0], 2), what) for at, what in cell.events] if cell.events else []}

    # ------------------------------------------------------------------ the scenarios
    async def _steady(self, seconds: float | None = None) -> None:
        self.traffic_on(True)
        await asyncio.sleep(self.t.steady if seconds is None else seconds)

    async def _scenario_i(self) -> None:
        await self._steady()
        self.traffic_on(False)  # a blocked number receives nothing
        await asyncio.gather(*(self.change_state(c, "blocked") for c in self.cells.values()))
        await asyncio.sleep(self.t.s(30))
        # The block's webhook and what came before it delivered: nothing in flight when the account changes.
        self.notes["drained_before_change"] = await self.wait_drained(2 * self.t.redelivery_pause + 30)
        await asyncio.gather(*(self.change_state(c, "authorized", _wid()) for c in self.cells.values()))
        await self._steady()

    async def _pause(self, cell: Cell, paused: bool) -> None:
        if self.pause == "app_down" and cell.wiring != "W3":
            app = self.stack.apps[cell.wiring]
            app.go_down() if paused else app.come_up()
            cell.note("app down" if paused else "app up")
        elif self.pause == "app_down":
            # W3: the relay's app is down: the relay answers GREEN-API non-200, GREEN-API pauses.
            app = self.stack.apps["W3"]
            app.go_down() if paused else app.come_up()
            cell.note("app down" if paused else "app up")
        else:
            await self.set_webhook_url(cell, "" if paused else cell.endpoint)

    async def _scenario_ii(self) -> None:
        await self._steady()
        self.traffic_on(False)
        self.notes["drained_before_pause"] = await self.wait_drained(2 * self.t.redelivery_pause + 30)
        await asyncio.gather(*(self._pause(c, True) for c in self.cells.values()))
        await asyncio.gather(*(self.enqueue(c, 50) for c in self.cells.values()))
        await asyncio.gather(*(self.change_state(c, "authorized", _wid()) for c in self.cells.values()))
        # The new account's notifications queue behind the old ones. Paused at least PAUSE_FLOOR_SECONDS at any
        # scale: a change within the relay's trust window (domain.accounts.TRUST_SECONDS, 2 s, plus the timestamps'
        # 1 s resolution) of its last GetSettings is the relay's documented worst case, not this scenario.
        await self._steady(max(self.t.steady, PAUSE_FLOOR_SECONDS))
        await asyncio.gather(*(self._pause(c, False) for c in self.cells.values()))
        await self._steady()

    async def _scenario_iii(self) -> None:
        await self._steady()
        for cell in self.cells.values():
            self.stack.apps[cell.wiring].fail_for(self.t.s(60), 503)
            cell.note("app answers 503")
        await asyncio.sleep(self.t.s(60))
        for cell in self.cells.values():
            cell.note("app answers 200")
        await self._steady()

    async def _scenario_iv(self) -> None:
        await self._steady()
        relay = asyncio.create_task(asyncio.to_thread(self.stack.restart_relay)) if "W3" in self.cells else None
        apps = [self.stack.apps[c.wiring] for c in self.cells.values() if c.wiring != "W3"]
        for app in apps:
            app.go_down()
        for cell in self.cells.values():
            cell.note("restart begins")
        await asyncio.sleep(self.t.s(5))
        if relay is not None:
            self.notes["relay_restart_seconds"] = round(await relay, 2)
        for app in apps:
            app.come_up()
        for cell in self.cells.values():
            cell.note("restart done")
        await self._steady()

    async def _scenario_v(self) -> None:
        prefect = self.stack.prefect
        if prefect.stop is None or prefect.start is None:
            raise RuntimeError("scenario v needs a Prefect server it can stop and start")
        await self._steady()
        for cell in self.cells.values():
            cell.note("Prefect server stopped")
        await asyncio.to_thread(prefect.stop)
        await asyncio.sleep(self.t.s(30))
        began = time.monotonic()
        await asyncio.to_thread(prefect.start)
        self.notes["prefect_start_seconds"] = round(time.monotonic() - began, 1)
        for cell in self.cells.values():
            cell.note("Prefect server started")
        await self._steady()


async def run_scenario(stack: Stack, scenario: str, wirings=None, **options) -> tuple[dict[str, Cell], dict]:
    """One scenario, its wirings at the same time on separate instances; (cells by wiring, notes)."""
    run = ScenarioRun(stack, scenario, wirings, **options)
    try:
        cells = await run.run()
    finally:
        await run.teardown()
    return cells, run.notes


def configure_emulator(emulator_url: str, timing: Timing) -> None:
    """The scenarios' emulator settings: the test windows and the scaled redelivery pause."""
    httpx.put(f"{emulator_url.rstrip('/')}/_emulator/config",
              json={**EMULATOR_WINDOWS, "redelivery_pause_seconds": timing.redelivery_pause,
                    "delivery_timeout_seconds": 60.0}, timeout=10).raise_for_status()


def cell_row(cell: Cell) -> dict:
    return {"scenario": cell.scenario, "wiring": cell.wiring, **cell.result.as_dict(), **cell.extra}
