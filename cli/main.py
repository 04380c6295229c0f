"""``greenapi-migrate``: the one command in front of the demo, a real run and the emulator."""

from __future__ import annotations

import argparse
import os
import sys

from cli.serve import DEFAULT_POLL_SECONDS, add_dispatch_argument
from domain import Reason


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="greenapi-migrate",
        description="Clear and verify a GREEN-API instance's incoming notification queue after a block or an account change.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for add in (_add_demo, _add_run, _add_serve_and_worker, _add_local, _add_automations):
        add(commands)

    from cli.instances import add_parser as add_instances_parser

    add_instances_parser(commands)

    commands.add_parser(
        "emulator", add_help=False,
        help="run the GREEN-API emulator in the foreground (options: greenapi-migrate emulator --help)",
    )
    commands.add_parser(
        "receiver", add_help=False,
        help="run the receiver (authenticated HTTP -> Prefect events) in the foreground (options: greenapi-migrate receiver --help)",
    )
    return parser


def _add_demo(commands) -> None:
    demo = commands.add_parser(
        "demo", help="run the flow against the bundled emulator on Prefect's local server",
        description="Start the bundled GREEN-API emulator on loopback (short windows) and run handle-account-change on "
                    "three emulated instances at once: a blocked number, a clear that must wait out leftTime, and a count "
                    "that wrongly says 0. Prints a summary per instance and where to look in the Prefect UI. No credentials.",
    )
    demo.add_argument("--json", action="store_true", help="print the results as one JSON object")


def _add_run(commands) -> None:
    run = commands.add_parser(
        "run", help="run the flow on the configured instance (GREEN_API_* settings or a block)",
        description="Clear and verify one instance's incoming queue: count, clear (waiting out leftTime), then peek while "
                    "the count snapshot refreshes (about 10 s on the happy path) and count again. With a webhookUrl set "
                    "no peek is possible: it verifies by the count only and says so, unless --detach-webhook.",
    )
    run.add_argument("--reason", required=True, choices=[r.value for r in Reason], help="why the queue is reset")
    run.add_argument("--block", metavar="NAME", help="a greenapi-instance block name, or an idInstance (the block registered "
                                                      "for it); default: the GREEN_API_* settings")
    run.add_argument("--clear-outgoing", action=argparse.BooleanOptionalAction, default=None,
                     help="also clear the outgoing message queue (default: after a block yes, after an account change no)")
    run.add_argument(
        "--detach-webhook", action="store_true",
        help="with a webhookUrl set (no peek possible, and clears reported to fail, GREEN-API #1107): remember the "
             "webhookUrl and webhookUrlToken (a Prefect Secret block), SetSettings an empty webhookUrl, clear, verify "
             "with a peek, then SetSettings both back, whatever happens in between; a crashed run's are put back by the "
             "next run. SetSettings restarts the instance and takes up to 5 minutes to apply",
    )
    run.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")


def _add_serve_and_worker(commands) -> None:
    serve = commands.add_parser(
        "serve", help="serve the deployments of prefect.yaml and the webhook receiver",
        description="Against the Prefect server in PREFECT_API_URL: register and serve the deployments of prefect.yaml "
                    "(handle-account-change and the sweep, with their schedule and event triggers) with Prefect's runner, "
                    "run a task worker for the receiver's reports, and run the receiver (GREEN_API_RECEIVER_SECRET required).",
    )
    serve.add_argument("--no-receiver", action="store_true", help="serve the deployments only")
    serve.add_argument("--limit", type=int, default=None, help="flow runs executed at the same time (default: no limit)")
    serve.add_argument("--poll-seconds", type=float, default=DEFAULT_POLL_SECONDS,
                       help=f"how often to look for scheduled runs (default {DEFAULT_POLL_SECONDS:g} s)")
    serve.add_argument("--task-limit", type=int, default=50,
                       help="reports from the receiver handled at once by this process's task worker (default 50)")
    add_dispatch_argument(serve, default="background")

    worker = commands.add_parser(
        "task-worker", help="handle the reports the receiver hands over (a Prefect task worker; run any number)",
        description="Run a Prefect task worker for the background task handle-reported-change: each report the receiver "
                    "hands over becomes a handle-account-change run in this process, with no new process per run.",
    )
    worker.add_argument("--limit", type=int, default=50, help="reports handled at once (default 50)")


def _add_local(commands) -> None:
    local = commands.add_parser(
        "local", help="the whole loop on this machine: Prefect server, emulated fleet imported, serve; Ctrl-C stops it",
        description="Start `prefect server start` (or use the server PREFECT_API_URL names), the GREEN-API emulator "
                    "with a seeded fleet of 3 instances (imported as greenapi-instance blocks local-<idInstance>), and "
                    "`greenapi-migrate serve` with a generated receiver secret; print the Prefect UI's URL and the "
                    "curl line that blocks a number. Ctrl-C stops everything it started and removes the blocks.",
    )
    local.add_argument("--prefect-port", type=int, default=4200, help="port of the Prefect server it starts (default 4200; 0: a free one)")
    local.add_argument("--receiver-port", type=int, default=8787, help="the receiver's port (default 8787; 0: a free one)")
    local.add_argument("--emulator-port", type=int, default=8080, help="the emulator's port (default 8080; 0: a free one)")


def _add_automations(commands) -> None:
    automations = commands.add_parser(
        "automations", help="apply the project's Prefect automations (needed after `prefect deploy --all`)",
        description="The project's automations, declared in deploy/automations.py: greenapi-crashed-runs, and the "
                    "failure notifications through a Prefect notification block. `serve` and `task-worker` apply "
                    "greenapi-crashed-runs; `prefect deploy --all` applies none.",
    )
    automations_sub = automations.add_subparsers(dest="automations_command", required=True, metavar="ACTION")
    apply = automations_sub.add_parser(
        "apply", help="create or update them by name (idempotent); the failure notifications only with --notify-block",
        description="Create or update, by name, greenapi-crashed-runs and (with --notify-block naming a notification "
                    "block) greenapi-notify-queue-reset-failed and greenapi-notify-sweep-failed; without a usable block "
                    "the notification ones are removed. Prints what it did. Exit 0: applied; 2: the block named cannot "
                    "be used (one line on stderr; the rest applied).",
    )
    apply.add_argument("--notify-block", metavar="SLUG/NAME",
                       help="the Prefect notification block failures go through, as block-type-slug/block-name "
                            "(e.g. slack-webhook/ops); without it, no failure notifications")


TEMPORARY_SERVER_START_SECONDS = 120
# Settings that became command-line options, and what replaces each: said in one line rather than silently ignored.
REMOVED_SETTINGS = {
    "GREEN_API_NOTIFY_BLOCK": "`greenapi-migrate automations apply --notify-block SLUG/NAME`",
    "GREEN_API_RECEIVER_DISPATCH": "the --dispatch option of `greenapi-migrate receiver` and `serve`",
}


def _removed_setting_in_environment() -> str | None:
    """One line naming a removed setting still set in the environment and its replacement, or None."""
    for name, replacement in REMOVED_SETTINGS.items():
        if name in os.environ:
            return f"greenapi-migrate: {name} is no longer read: use {replacement} instead, and unset it"
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["emulator"]:
        from cli.emulator import main as emulator_main

        return emulator_main(argv[1:]) or 0
    if problem := _removed_setting_in_environment():
        print(problem, file=sys.stderr)
        return 2
    if argv[:1] == ["receiver"]:
        from cli.receiver import run_receiver

        return run_receiver(argv[1:])
    args = _parser().parse_args(argv)
    if args.command in ("serve", "task-worker"):
        # The receiver's background task logs outside any flow run, which Prefect's API log handler cannot send:
        # without this it warns "attempted to send logs to the API without a flow run id", which no operator can act on.
        os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    # Prefect gives its temporary server 20 s to start; a first start (its database migrations) on a busy machine takes
    # longer, and the demo or a first `run` would fail on it. Set before Prefect is imported; an operator's value wins.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(TEMPORARY_SERVER_START_SECONDS))
    return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from cli.demo import run_demo

        return run_demo(as_json=args.json)
    if args.command == "serve":
        from cli.serve import serve_all

        return serve_all(with_receiver=not args.no_receiver, limit=args.limit, poll_seconds=args.poll_seconds,
                         task_limit=args.task_limit, dispatch=args.dispatch)
    if args.command == "local":
        from cli.local import run_local

        return run_local(prefect_port=args.prefect_port, receiver_port=args.receiver_port, emulator_port=args.emulator_port)
    if args.command == "instances":
        from cli.instances import run as run_instances

        return run_instances(args)
    if args.command == "automations":
        from cli.automations import apply_command

        return apply_command(args.notify_block)
    if args.command == "task-worker":
        from cli.task_worker import run_task_worker

        return run_task_worker(limit=args.limit)
    from cli.run import run_once

    return run_once(reason=Reason(args.reason), block=args.block, clear_outgoing=args.clear_outgoing,
                    detach_webhook=args.detach_webhook, as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
