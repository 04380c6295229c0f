"""``greenapi-migrate instances``: register instances (a file or a partner account), list them, remove them.

Works on whatever Prefect server the environment names, or on Prefect's embedded default. No token is
ever printed: rows are reported by line, idInstance and block name.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from cli.prefect_logging import set_up_prefect_logging
from greenapi import ConfigurationError, PartnerAPIError, get_settings

EXIT_OK, EXIT_REFUSED, EXIT_ERROR = 0, 1, 2


def _err(message: str) -> None:
    print(f"greenapi-migrate instances: {message}", file=sys.stderr)


class _Progress:
    """A rich progress bar on a terminal (stderr); nothing otherwise."""

    def __init__(self, total: int) -> None:
        self._bar = None
        if total and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 transient=False, console=_console(sys.stderr))
            self._task = self._bar.add_task("import", total=total)
            self._bar.start()

    def advance(self, count: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, count)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _console(stream):
    from rich.console import Console

    return Console(file=stream, highlight=False)


def import_command(*, path: str | None, partner: bool, partner_block: str | None, as_json: bool) -> int:
    from cli.instance_rows import InstancesFileError, parse_instances_file

    try:
        settings = get_settings()
        if partner:
            parsed, source = asyncio.run(_from_partner(partner_block, settings)), "the partner account"
        else:
            parsed, source = parse_instances_file(path, default_api_url=settings.api_url), path
    except (ConfigurationError, PartnerAPIError, InstancesFileError) as exc:
        _err(str(exc))
        return EXIT_ERROR
    except OSError as exc:
        _err(f"cannot read {path}: {exc.strerror or exc}")
        return EXIT_ERROR
    return _import(parsed, source, as_json)


async def _from_partner(block: str | None, settings):
    from instances.lookup import resolve_partner
    from cli.instance_rows import parse_partner_instances

    account = await resolve_partner(block, settings)
    async with account.get_client(timeout_seconds=settings.timeout_seconds + 15) as client:
        listed = await client.get_instances()
    return parse_partner_instances(listed, default_api_url=account.api_url)


def _import(parsed, source: str, as_json: bool) -> int:
    from cli.importer import import_instances

    progress = _Progress(len(parsed.rows))
    try:
        result = asyncio.run(import_instances(parsed, progress=progress.advance))
    finally:
        progress.stop()
    if as_json:
        print(json.dumps({
            "created": result.created, "updated": result.updated, "unchanged": result.unchanged,
            "refused": [{"line": p.line, "field": p.field, "message": p.message, "idInstance": p.id_instance} for p in result.refused],
            "skipped": [{"line": p.line, "reason": p.field, "idInstance": p.id_instance} for p in result.skipped],
            "notes": result.notes,
            # The block each row went to; "elsewhere": registered under another name than the row's own.
            "blocks": [{"idInstance": id_instance, "block": name, "action": _action_of(result, id_instance),
                        "elsewhere": id_instance in result.elsewhere} for id_instance, name in sorted(result.blocks.items())
                       if _action_of(result, id_instance)],
        }))
    else:
        print(f"imported from {source}: {len(result.created)} created, {len(result.updated)} updated, "
              f"{len(result.unchanged)} unchanged; {len(result.refused)} refused, {len(result.skipped)} skipped")
        for note in result.notes:
            print(f"  note: {note}")
        # Each updated row, and any row that went to a block under another name, says which block it went to.
        for id_instance in result.updated:
            print(f"  updated: {id_instance} -> block {result.blocks.get(id_instance)}")
        for id_instance in result.unchanged:
            if id_instance in result.elsewhere:
                print(f"  unchanged: {id_instance} -> block {result.blocks.get(id_instance)}")
        for problem in result.skipped:
            print(f"  skipped {problem}")
        for problem in result.refused:
            print(f"  refused {problem}")
        if result.refused:
            print("refused rows were not imported; the others were.")
    return EXIT_OK if result.ok else EXIT_REFUSED


def _action_of(result, id_instance: int) -> str | None:
    for action in ("created", "updated", "unchanged"):
        if id_instance in getattr(result, action):
            return action
    return None  # planned, but its write failed: it is among the refused


def list_command(*, as_json: bool) -> int:
    from cli.registered import list_instances

    listed = asyncio.run(list_instances())
    if as_json:
        print(json.dumps([item.as_json() for item in listed]))
        return EXIT_OK
    columns = ("idInstance", "name", "API host", "last state", "since (UTC)", "last wid", "last reset", "when (UTC)",
               "held back")
    rows = [(str(i.id_instance), i.block_name, i.api_url, i.last_state or "—", _when(i.last_state_since),
             i.last_wid or "—", i.last_outcome or "—", _when(i.last_reset_at), str(i.held_back)) for i in listed]
    if sys.stdout.isatty():
        from rich.table import Table

        table = Table(*columns, title=f"{len(rows)} registered instance(s)")
        for row in rows:
            table.add_row(*row)
        _console(sys.stdout).print(table)
    else:
        widths = [max([len(c)] + [len(r[n]) for r in rows]) for n, c in enumerate(columns)]
        for row in [columns, *rows]:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return EXIT_OK


def _when(value: str | None) -> str:
    return value.replace("T", " ")[:19] if value else "—"


def remove_command(*, ids: list[int], as_json: bool) -> int:
    from cli.registered import remove_instances

    result = asyncio.run(remove_instances(ids))
    if as_json:
        print(json.dumps({"removed": {str(k): v for k, v in result.removed.items()}, "not_found": result.not_found}))
    else:
        for id_instance, names in result.removed.items():
            print(f"removed {id_instance} (block {', '.join(names)})")
        for id_instance in result.not_found:
            print(f"not registered: {id_instance}")
    return EXIT_OK if not result.not_found else EXIT_REFUSED


def add_parser(commands: Any) -> None:
    instances = commands.add_parser(
        "instances", help="register GREEN-API instances (a CSV/JSON file or a partner account), list, remove",
        description="Register GREEN-API instances as greenapi-instance blocks on the Prefect server (or Prefect's "
                    "embedded default), list them with what the runs last saw, remove them. Tokens are never printed.",
    )
    sub = instances.add_subparsers(dest="instances_command", required=True, metavar="ACTION")
    imp = sub.add_parser(
        "import", help="create/update a block per instance; a second import changes nothing",
        description="FILE: a CSV with the header idInstance,apiTokenInstance,apiUrl,name (apiUrl and name optional; "
                    "apiUrl defaults to GREEN_API_API_URL, name to greenapi-<idInstance>, normalised to lowercase "
                    "letters, digits and dashes), or a JSON list of objects with those keys (the Partner API's "
                    "getInstances answer; rows with deleted or isExpired true are skipped). --partner: straight "
                    "from GET {GREEN_API_API_URL}/partner/getInstances/{GREEN_API_PARTNER_TOKEN} (or a "
                    "greenapi-partner block). Reports created / updated / unchanged; a bad row is refused by line "
                    "and field, the others imported. Exit 0: all imported, 1: some refused, 2: nothing could be read.",
    )
    source = imp.add_mutually_exclusive_group(required=True)
    source.add_argument("file", nargs="?", metavar="FILE", help="a .csv or .json file")
    source.add_argument("--partner", action="store_true", help="list the instances of the partner account")
    imp.add_argument("--partner-block", metavar="NAME", help="a greenapi-partner block (default: GREEN_API_PARTNER_TOKEN)")
    imp.add_argument("--json", action="store_true", help="print the outcome as one JSON object")
    lst = sub.add_parser("list", help="a table: id, name, API host, last state and wid seen, last reset outcome and when, notifications the relay held back",
                         description="Every greenapi-instance block, with the wid the runs last recorded and how the last "
                                     "queue reset ended (a table on a terminal, plain columns otherwise).")
    lst.add_argument("--json", action="store_true", help="a JSON list of objects with idInstance")
    rm = sub.add_parser("remove", help="delete the blocks of these idInstances", description="Delete every "
                        "greenapi-instance block registered for each idInstance. Exit 1 when one is not registered.")
    rm.add_argument("ids", nargs="+", type=int, metavar="ID", help="idInstance")
    rm.add_argument("--json", action="store_true", help="print the outcome as one JSON object")


def run(args) -> int:
    set_up_prefect_logging()
    if args.instances_command == "import":
        if args.partner_block and not args.partner:
            _err("--partner-block goes with --partner")
            return EXIT_ERROR
        return import_command(path=args.file, partner=args.partner, partner_block=args.partner_block, as_json=args.json)
    if args.instances_command == "list":
        return list_command(as_json=args.json)
    return remove_command(ids=args.ids, as_json=args.json)
