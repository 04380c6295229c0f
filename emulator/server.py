"""Run the emulator: in a background thread (tests, demo, benchmarks) or in the foreground
(``python -m emulator``)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from typing import Any, Sequence

import uvicorn

from .app import build_app
from .config import EmulatorConfig, InstanceSeed, load_seed_file
from .delivery import Deliverer
from .state import EmulatorState


class EmulatorServer:
    """uvicorn serving the emulator in a daemon thread, and the webhook deliverer in another.

    ``EmulatorServer(state_or_config=None, host="127.0.0.1", port=0)``; ``start()`` returns once
    the socket is listening; ``url`` then holds the real address (port 0 picks a free port).
    Usable as a context manager.
    """

    def __init__(
        self,
        state_or_config: EmulatorState | EmulatorConfig | dict | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        start_timeout: float = 10.0,
    ) -> None:
        if isinstance(state_or_config, EmulatorState):
            self.state = state_or_config
        else:
            self.state = EmulatorState(state_or_config)
        self.host = host
        self.port = port
        self.start_timeout = start_timeout
        self.app = build_app(self.state)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._bound_port: int | None = None
        self.deliverer = Deliverer(self.state)

    @property
    def url(self) -> str:
        if self._bound_port is None:
            raise RuntimeError("the emulator server is not running; call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._bound_port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "EmulatorServer":
        """Listen, and start delivering webhooks; returns once both run."""
        if self.running:
            return self
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            access_log=False,  # the access log would print URLs, and URLs carry the token
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=2,
            # Clients (tests, benchmarks) keep connections idle for seconds between bursts: uvicorn's 5 s default
            # closes them under a request about to be sent on them (a ReadError for the client).
            timeout_keep_alive=60,
        )
        self.app.state.stopping = False
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="greenapi-emulator", daemon=True)
        thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"emulator failed to start on {self.host}:{self.port}")
            if time.monotonic() > deadline:
                server.should_exit = True
                raise RuntimeError("emulator did not start listening in time")
            time.sleep(0.01)
        sockets = [sock for srv in (server.servers or []) for sock in srv.sockets]
        self._bound_port = sockets[0].getsockname()[1] if sockets else self.port
        self._server, self._thread = server, thread
        try:
            self.deliverer.start()
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop delivering (in-flight POSTs are cancelled), then serving."""
        self.deliverer.stop()
        if self._server is not None:
            self.app.state.stopping = True
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = self._thread = None
        self._bound_port = None

    def __enter__(self) -> "EmulatorServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="greenapi-migrate emulator",
        # Raw text (the epilog is a table): the description is wrapped by hand.
        description="A local GREEN-API emulator for tests and demos: the queue, account and receiving methods with\n"
                    "GREEN-API's timing (a clear window of a minute, the count refreshed every 10 s), its reported bugs\n"
                    "on request, and the partner endpoint. Instances come from a JSON seed file (--seed, below).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""seed file (--seed): {"config": {...}, "instances": [{...}, ...]}
config: clear_window_seconds (60), count_refresh_seconds (10), max_receive_wait_seconds, rate_limits_per_second,
  call_log_limit, partner_token (the --clear-window, --count-refresh, --max-receive-wait and
  --partner-token flags override them);
  webhook delivery: deliver_webhooks (true), delivery_interval_seconds (0.02), redelivery_pause_seconds (60),
  delivery_timeout_seconds (180), notification_ttl_seconds (86400), delivery_log_limit (10000).
  Each instance:
  id_instance, api_token (required); state, wid, webhook_url, notifications, outgoing_messages,
  cleared_seconds_ago, cleared_before_first_call_seconds, count_snapshot, arrival_rate_per_second, cyrillic_count,
  refuse_clears {"reason", "times"};
  reported behaviours (off by default):
  count_zero_at N                     getWebhooksCount answers 0 while >= N are queued (#1108)
  webhook_url_unreachable true        deliveries fail; getWebhooksCount answers 0 while a webhookUrl is set (#1100)
  clear_fails_with_webhook_url true|"reason"
                                      clearWebhooksQueue fails while a webhookUrl is set (#1107)
  type_instance "v3", v3_prefix_required
                                      MAX: answers under /v3/waInstance... too (or only there)
  strict_receive_timeout true         receiveTimeout outside 5-60 -> 400
  settings_fields "documented"        GetSettings answers every documented field
  settings {...}                      initial settings values
  settings_apply_delay_seconds S      setSettings applies its values S seconds later
  name, deleted, is_expired           what the partner endpoint lists for the instance
webhooks: while an instance's webhookUrl is set, its queue is POSTed there oldest first, one at a time
  (Authorization: Bearer <webhookUrlToken> when set); only a 200 removes a notification, anything else
  sends the same one again after redelivery_pause_seconds; log: GET /_emulator/deliveries; an account change
  that queues its stateInstanceChanged: POST /_emulator/instances/{id}/state (a PATCH queues nothing)
partner API: GET /partner/getInstances/{partnerToken} lists every instance (GREEN-API's shape, tokens
  included); with a wrong token, or no --partner-token, HTTP 200 {"code": 401, "description": "Unauthorized"}
every option, with an example seed file: emulator/README.md ("Seed file")""",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    p.add_argument("--seed", help='JSON seed file: {"config": {...}, "instances": [...]}')
    p.add_argument("--clear-window", type=float, help="seconds between allowed clearWebhooksQueue calls")
    p.add_argument("--count-refresh", type=float, help="seconds between getWebhooksCount snapshots")
    p.add_argument("--max-receive-wait", type=float, help="cap on the receiveNotification long-poll")
    p.add_argument("--partner-token", help="the token GET /partner/getInstances/{partnerToken} accepts "
                                           "(also config.partner_token; default: none, every token is refused)")
    return p


def build_state_from_args(args: argparse.Namespace) -> tuple[EmulatorState, list[InstanceSeed]]:
    config = EmulatorConfig()
    seeds: list[InstanceSeed] = []
    if args.seed:
        seed_file = load_seed_file(args.seed)
        config, seeds = seed_file.config, seed_file.instances
    overrides: dict[str, Any] = {}
    if args.clear_window is not None:
        overrides["clear_window_seconds"] = args.clear_window
    if args.count_refresh is not None:
        overrides["count_refresh_seconds"] = args.count_refresh
    if args.max_receive_wait is not None:
        overrides["max_receive_wait_seconds"] = args.max_receive_wait
    if args.partner_token:
        overrides["partner_token"] = args.partner_token
    if overrides:
        config = EmulatorConfig.model_validate({**config.model_dump(), **overrides})
    state = EmulatorState(config)
    state.add_instances(seeds)
    return state, seeds


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator in the foreground until Ctrl-C / SIGTERM. Prints its URL, never tokens."""
    args = _parser().parse_args(argv)
    try:
        state, seeds = build_state_from_args(args)
    except Exception as exc:  # bad seed file or flags: say what, without a traceback
        print(f"emulator: cannot start: {exc}", file=sys.stderr)
        return 2
    server = EmulatorServer(state, host=args.host, port=args.port)
    try:
        server.start()
    except RuntimeError as exc:
        print(f"emulator: {exc}", file=sys.stderr)
        return 1
    print(f"emulator listening on {server.url}", flush=True)
    ids = ", ".join(str(s.id_instance) for s in seeds) or "none"
    print(f"emulator seeded instances: {ids}", flush=True)

    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)  # also when started with SIGINT ignored (e.g. `&`)
    try:
        while not stop.is_set() and server.running:
            stop.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        print("emulator stopped", flush=True)
    return 0
