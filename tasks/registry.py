"""Registering instances: a CSV or JSON file, or a partner account, becomes greenapi-instance blocks.

``parse_instances`` reads a file (every bad row named by its line and field; deleted or expired rows
skipped); ``import_instances`` compares the rows with the blocks that exist (one read) and writes only
what changed, several blocks at once through Prefect's typed client; ``list_instances`` joins the blocks
with what the runs remember; ``remove_instances`` deletes blocks by idInstance. No token is ever in a
message: tokens stay SecretStr until they are written into a block document.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from pydantic import SecretStr

from greenapi import DEFAULT_API_URL, InstanceCredentials, PartnerInstance
from greenapi.errors import api_host
from tasks.blocks import BLOCK_TYPE_SLUG, GreenApiInstance
from tasks.lookup import instance_documents

CSV_FIELDS = ("idInstance", "apiTokenInstance", "apiUrl", "name")
REQUIRED_FIELDS = ("idInstance", "apiTokenInstance")
WRITES_IN_FLIGHT = 16
_BLOCK_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class InstanceRow:
    """One instance to register, and where it came from."""

    line: int
    block_name: str
    credentials: InstanceCredentials
    name_note: str = ""  # how a given name was normalised, or "" when it was used as is / defaulted
    unit: str = "line"


@dataclass(frozen=True)
class RowProblem:
    line: int
    field: str
    message: str
    id_instance: int | None = None
    unit: str = "line"  # "item" for what the Partner API listed

    def __str__(self) -> str:
        return f"{self.unit} {self.line}: {self.field}: {self.message}"


@dataclass
class ParsedInstances:
    rows: list[InstanceRow] = field(default_factory=list)
    refused: list[RowProblem] = field(default_factory=list)
    skipped: list[RowProblem] = field(default_factory=list)  # deleted / expired: not refused, not imported


class InstancesFileError(ValueError):
    """The file as a whole cannot be read (not CSV/JSON, a bad header, not a list)."""


def default_block_name(id_instance: int) -> str:
    return f"greenapi-{id_instance}"


def normalise_block_name(name: str) -> str:
    """Prefect block names: lowercase letters, digits and dashes. Other characters become dashes."""
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9]", "-", name.strip().lower())).strip("-")


# ---------------------------------------------------------------- parsing


def parse_instances_file(path: str | Path, *, default_api_url: str = DEFAULT_API_URL) -> ParsedInstances:
    text = Path(path).read_text(encoding="utf-8-sig")
    return parse_instances_text(text, default_api_url=default_api_url, json_hint=str(path).lower().endswith(".json"))


def parse_instances_text(text: str, *, default_api_url: str = DEFAULT_API_URL, json_hint: bool = False) -> ParsedInstances:
    """A CSV with the header ``idInstance,apiTokenInstance,apiUrl,name`` (the last two optional), or a JSON
    list of objects with those keys (the shape of the partner getInstances answer)."""
    if json_hint or text.lstrip().startswith(("[", "{")):
        items = _json_items(text)
    else:
        items = _csv_items(text)
    return _validate(items, default_api_url)


def parse_partner_instances(listed: Iterable[PartnerInstance], *, default_api_url: str) -> ParsedInstances:
    """What the Partner API listed, as rows (item numbers stand for lines)."""
    items = []
    for number, item in enumerate(listed, start=1):
        items.append((number, {"idInstance": item.id_instance, "apiTokenInstance": item.api_token_instance,
                               "apiUrl": item.api_url, "name": item.name, "deleted": item.deleted,
                               "isExpired": item.is_expired}))
    return _validate(items, default_api_url, unit="item")


def _csv_items(text: str) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise InstancesFileError("line 1: the file is empty; expected the header idInstance,apiTokenInstance,apiUrl,name")
    reader.fieldnames = header
    unknown = [h for h in header if h not in CSV_FIELDS]
    missing = [h for h in REQUIRED_FIELDS if h not in header]
    if unknown or missing:
        parts = ([f"unknown column(s) {', '.join(unknown)}"] if unknown else []) + \
                ([f"missing column(s) {', '.join(missing)}"] if missing else [])
        raise InstancesFileError(f"line 1: header: {'; '.join(parts)} (expected idInstance,apiTokenInstance,apiUrl,name)")
    items = []
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise InstancesFileError(f"line {reader.line_num}: not valid CSV ({exc})") from None
        if not any((v or "").strip() for k, v in row.items() if k is not None):
            continue  # a blank line
        items.append((reader.line_num, row))
    return items


def _json_items(text: str) -> list[tuple[int, dict[str, Any]]]:
    """Each element of the top-level list, with the line it starts on."""
    decoder = json.JSONDecoder()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InstancesFileError(f"line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if isinstance(data, dict) and "code" in data:
        raise InstancesFileError(f"line 1: a partner error answer, not a list of instances (code {data.get('code')})")
    if not isinstance(data, list):
        raise InstancesFileError("line 1: expected a JSON list of objects with idInstance and apiTokenInstance")
    items, index = [], text.index("[") + 1
    for element in data:
        while text[index] in " \t\r\n,":
            index += 1
        line = text.count("\n", 0, index) + 1
        _, index = decoder.raw_decode(text, index)
        items.append((line, element))
    return items


def _validate(items: list[tuple[int, Any]], default_api_url: str, unit: str = "line") -> ParsedInstances:
    parsed = ParsedInstances()
    seen_ids: dict[int, int] = {}
    seen_names: dict[str, int] = {}
    for line, item in items:
        def refuse(field_name: str, message: str, id_instance: int | None = None) -> None:
            parsed.refused.append(RowProblem(line, field_name, message, id_instance, unit))

        if not isinstance(item, dict):
            refuse("row", f"expected an object, got a JSON {type(item).__name__}")
            continue
        if item.get(None):  # csv: more cells than columns
            refuse("row", f"{len(item[None])} cell(s) more than the header's columns")
            continue
        raw_id = item.get("idInstance")
        id_instance = _as_id(raw_id)
        if id_instance is None:
            refuse("idInstance", "missing" if raw_id in (None, "") else "must be an integer of 1 to 10 digits")
            continue
        if _truthy(item.get("deleted")) or _truthy(item.get("isExpired")):
            why = "deleted" if _truthy(item.get("deleted")) else "isExpired"
            parsed.skipped.append(RowProblem(line, why, f"instance {id_instance} is {'deleted' if why == 'deleted' else 'expired'}: skipped", id_instance, unit))
            continue
        token = item.get("apiTokenInstance")
        token = token if isinstance(token, SecretStr) else SecretStr(token.strip()) if isinstance(token, str) else None
        if token is None or not token.get_secret_value():
            refuse("apiTokenInstance", "missing", id_instance)
            continue
        api_url = item.get("apiUrl")
        api_url = api_url.strip() if isinstance(api_url, str) and api_url.strip() else default_api_url
        try:
            credentials = InstanceCredentials(api_url=api_url, id_instance=id_instance, api_token_instance=token)
        except ValueError as exc:
            first = exc.errors()[0] if hasattr(exc, "errors") else {"loc": ("row",), "msg": str(exc)}
            where = {"api_url": "apiUrl", "api_token_instance": "apiTokenInstance", "id_instance": "idInstance"}.get(
                str(first["loc"][0]) if first.get("loc") else "", "row")
            refuse(where, str(first["msg"]).removeprefix("Value error, "), id_instance)
            continue
        given = item.get("name")
        given = given.strip() if isinstance(given, str) else ""
        note = ""
        if given:
            block_name = normalise_block_name(given)
            if not block_name:
                refuse("name", f"{given!r} has no letter or digit to make a block name of", id_instance)
                continue
            if block_name != given:
                note = f"name {given!r} stored as block {block_name!r} (block names: lowercase letters, digits, dashes)"
        else:
            block_name = default_block_name(id_instance)
        if id_instance in seen_ids:
            refuse("idInstance", f"{id_instance} already on {unit} {seen_ids[id_instance]}", id_instance)
            continue
        if block_name in seen_names:
            refuse("name", f"block name {block_name!r} already used on {unit} {seen_names[block_name]}", id_instance)
            continue
        seen_ids[id_instance], seen_names[block_name] = line, block_name and line
        parsed.rows.append(InstanceRow(line, block_name, credentials, note, unit))
    return parsed


def _as_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        return None
    return number if 1 <= number <= 9_999_999_999 else None


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"))


# ---------------------------------------------------------------- importing


@dataclass
class ImportResult:
    created: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    refused: list[RowProblem] = field(default_factory=list)
    skipped: list[RowProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # The block each created, updated or unchanged row went to, by idInstance (a row that named none may have
    # gone to a block registered under another name: the output says which).
    blocks: dict[int, str] = field(default_factory=dict)
    # The rows that went to a block under another name than the row's own (the default greenapi-<id>).
    elsewhere: set[int] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.refused

    def block_of(self, id_instance: int) -> str | None:
        return self.blocks.get(id_instance)


def _data_of(row: InstanceRow) -> dict[str, Any]:
    # The one place an imported token is unwrapped: into the block document's data, as Block.asave writes it.
    return {"api_url": row.credentials.api_url, "id_instance": row.credentials.id_instance,
            "api_token_instance": row.credentials.api_token_instance.get_secret_value()}


def plan_import(rows: list[InstanceRow], documents: list, schema_id: Any, result: ImportResult) -> list[tuple[str, InstanceRow, Any]]:
    """What to write: ("create", row, None) or ("update", row, document). Unchanged rows and conflicts go into
    ``result`` (``unchanged``, ``refused``). ``documents``: the existing blocks, with their secrets."""
    by_name = {d.name: d for d in documents}
    by_id: dict[int, list] = {}
    for d in documents:
        value = (d.data or {}).get("id_instance")
        if isinstance(value, int):
            by_id.setdefault(value, []).append(d)
    plan: list[tuple[str, InstanceRow, Any]] = []
    for row in rows:
        id_instance = row.credentials.id_instance
        target = by_name.get(row.block_name)
        same_id = by_id.get(id_instance, [])
        if target is None and same_id:
            if row.block_name == default_block_name(id_instance) and len(same_id) == 1:
                target = same_id[0]
            else:
                names = ", ".join(sorted(d.name for d in same_id))
                result.refused.append(RowProblem(row.line, "name", f"idInstance {id_instance} is already registered "
                                                 f"as block {names}: use that name, or remove it first", id_instance, row.unit))
                continue
        if target is not None and (target.data or {}).get("id_instance") != id_instance:
            result.refused.append(RowProblem(row.line, "name", f"block {row.block_name!r} holds idInstance "
                                             f"{(target.data or {}).get('id_instance')}, not {id_instance}", id_instance, row.unit))
            continue
        result.blocks[id_instance] = target.name if target is not None else row.block_name
        if target is not None and target.name != row.block_name:
            result.elsewhere.add(id_instance)
        if target is None:
            plan.append(("create", row, None))
        elif dict(target.data or {}) == _data_of(row) and target.block_schema_id == schema_id:
            result.unchanged.append(id_instance)
        else:
            plan.append(("update", row, target))
    return plan


async def import_instances(parsed: ParsedInstances, *, progress: Callable[[int], None] | None = None,
                           writes_in_flight: int = WRITES_IN_FLIGHT) -> ImportResult:
    """Create or update a greenapi-instance block per row; an identical block is left alone.

    A row whose idInstance is registered under another block name updates that block when the row named
    no block (the default name), and is refused when it names another one; a row naming a block that holds
    another idInstance is refused. ``progress(n)`` is called as rows are done."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import BlockDocumentCreate, BlockDocumentUpdate

    result = ImportResult(refused=list(parsed.refused), skipped=list(parsed.skipped))
    result.notes = [f"{r.unit} {r.line}: {r.name_note}" for r in parsed.rows if r.name_note]
    await GreenApiInstance.aregister_type_and_schema()
    async with get_client() as client:
        block_type = await client.read_block_type_by_slug(BLOCK_TYPE_SLUG)
        schema = await client.read_block_schema_by_checksum(GreenApiInstance._calculate_schema_checksum())
        documents = await instance_documents(client, include_secrets=True)
        plan = plan_import(parsed.rows, documents, schema.id, result)
        if progress and (parsed.rows and len(parsed.rows) != len(plan)):
            progress(len(parsed.rows) - len(plan))

        async def write(action: str, row: InstanceRow, target: Any) -> None:
            try:
                await write_one(action, row, target)
            except Exception as exc:  # one failed write must not lose what the others did; the message holds no data
                status = getattr(getattr(exc, "response", None), "status_code", None)
                result.refused.append(RowProblem(row.line, "block", f"{action} of block {row.block_name!r} failed: "
                                                 f"{type(exc).__name__}{f' (HTTP {status})' if status else ''}",
                                                 row.credentials.id_instance, row.unit))

        async def write_one(action: str, row: InstanceRow, target: Any) -> None:
            if action == "create":
                await client.create_block_document(BlockDocumentCreate(
                    name=row.block_name, data=_data_of(row), block_type_id=block_type.id, block_schema_id=schema.id))
                result.created.append(row.credentials.id_instance)
            else:
                await client.update_block_document(target.id, BlockDocumentUpdate(
                    block_schema_id=schema.id, data=_data_of(row), merge_existing_data=False))
                result.updated.append(row.credentials.id_instance)
            if progress:
                progress(1)

        if plan:
            # The first write alone: on a fresh PostgreSQL database, concurrent first writes of secret data race
            # on the creation of the server's encryption key.
            await write(*plan[0])
            slots = asyncio.Semaphore(max(1, writes_in_flight))

            async def bounded(step: tuple[str, InstanceRow, Any]) -> None:
                async with slots:
                    await write(*step)

            await asyncio.gather(*(bounded(step) for step in plan[1:]))
    for ids in (result.created, result.updated, result.unchanged):
        ids.sort()
    result.refused.sort(key=lambda p: p.line)
    return result


# ---------------------------------------------------------------- listing, removing


@dataclass(frozen=True)
class ListedInstance:
    id_instance: int
    block_name: str
    api_url: str
    last_state: str | None
    last_state_since: str | None
    last_wid: str | None
    last_outcome: str | None
    last_reset_at: str | None
    held_back: int = 0  # notifications of an old account the relay kept from the app

    def as_json(self) -> dict[str, Any]:
        return {"idInstance": self.id_instance, "name": self.block_name, "apiUrl": self.api_url,
                "lastState": self.last_state, "lastStateSince": self.last_state_since, "lastWid": self.last_wid,
                "lastOutcome": self.last_outcome, "lastResetAt": self.last_reset_at, "heldBack": self.held_back}


async def list_instances() -> list[ListedInstance]:
    """Every greenapi-instance block (secrets not read), with what the last check saw, how the last reset ended and
    how many notifications of an old account the relay held back."""
    from prefect.client.orchestration import get_client

    from tasks.memory import held_back_many, last_resets, last_seen_many

    async with get_client() as client:
        documents = await instance_documents(client, include_secrets=False)
    blocks = []
    for d in documents:
        value = (d.data or {}).get("id_instance")
        if isinstance(value, int):
            blocks.append((value, d.name, str((d.data or {}).get("api_url") or DEFAULT_API_URL)))
    ids = sorted({i for i, _, _ in blocks})
    seen, resets, held = await asyncio.gather(last_seen_many(ids), last_resets(ids), held_back_many(ids))
    out = []
    for id_instance, name, api_url in sorted(blocks):
        reset, check = resets.get(id_instance, {}), seen.get(id_instance)
        out.append(ListedInstance(
            id_instance=id_instance, block_name=name, api_url=api_host(api_url),
            last_state=(check.state if check else None) or _str(reset.get("state_instance")),
            last_state_since=check.since.isoformat() if check and check.since else None,
            last_wid=(check.wid if check else None) or _str(reset.get("wid")),
            last_outcome=_str(reset.get("outcome")), last_reset_at=_str(reset.get("finished_at")),
            held_back=held.get(id_instance, {}).get("total", 0),
        ))
    return out


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass
class RemoveResult:
    removed: dict[int, list[str]] = field(default_factory=dict)
    not_found: list[int] = field(default_factory=list)


async def remove_instances(ids: Iterable[int]) -> RemoveResult:
    """Delete every greenapi-instance block registered for these idInstances."""
    from prefect.client.orchestration import get_client

    wanted = list(dict.fromkeys(ids))
    result = RemoveResult()
    async with get_client() as client:
        documents = await instance_documents(client, include_secrets=False)
        slots = asyncio.Semaphore(WRITES_IN_FLIGHT)

        async def delete(document) -> None:
            async with slots:
                await client.delete_block_document(document.id)

        doomed = []
        for id_instance in wanted:
            matches = [d for d in documents if (d.data or {}).get("id_instance") == id_instance]
            if not matches:
                result.not_found.append(id_instance)
                continue
            result.removed[id_instance] = sorted(d.name for d in matches)
            doomed.extend(matches)
        await asyncio.gather(*(delete(d) for d in doomed))
    return result
