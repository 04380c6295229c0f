"""``greenapi-migrate emulator`` and ``python -m emulator``: the GREEN-API emulator in the foreground."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from emulator import EmulatorConfig, EmulatorServer, EmulatorState, InstanceSeed, load_seed_file
from serving import serve_until_signalled

_SEED_FORMAT = """seed file (--seed): {"config": {...}, "instances": [{...}, ...]}
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
  settings {...}                      initial settings values
  settings_apply_delay_seconds S      setSettings applies its values S seconds later
  name, deleted, is_expired           what the partner endpoint lists for the instance
webhooks: while an instance's webhookUrl is set, its queue is POSTed there oldest first, one at a time
  (Authorization: Bearer <webhookUrlToken> when set); only a 200 removes a notification, anything else
  sends the same one again after redelivery_pause_seconds; log: GET /_emulator/deliveries; an account change
  that queues its stateInstanceChanged: POST /_emulator/instances/{id}/state (a PATCH queues nothing)
partner API: GET /partner/getInstances/{partnerToken} lists every instance (GREEN-API's shape, tokens
  included); with a wrong token, or no --partner-token, HTTP 200 {"code": 401, "description": "Unauthorized"}
every option, with an example seed file: emulator/README.md ("Seed file")"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="greenapi-migrate emulator",
        # Raw text (the epilog is a table): the description is wrapped by hand.
        description="A local GREEN-API emulator for tests and demos: the queue, account and receiving methods with\n"
                    "GREEN-API's timing (a clear window of a minute, the count refreshed every 10 s), its reported bugs\n"
                    "on request, and the partner endpoint. Instances come from a JSON seed file (--seed, below).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_SEED_FORMAT,
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


def _state_from_args(args: argparse.Namespace) -> tuple[EmulatorState, list[InstanceSeed]]:
    """The seed file's config and instances, with the flags over its config."""
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
        state, seeds = _state_from_args(args)
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
    serve_until_signalled(server)
    print("emulator stopped", flush=True)
    return 0
