"""Rows to register: a CSV or JSON file, or what a partner account lists, read into instances to import.

Every bad row is named by its line (or item) and field; deleted or expired rows are skipped. No token is ever
in a message: tokens stay SecretStr until the importer writes them into a block document (cli/importer.py).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, NamedTuple

from pydantic import SecretStr

from greenapi import DEFAULT_API_URL, InstanceCredentials, PartnerInstance
from greenapi.credentials import ID_INSTANCE_MAX, ID_INSTANCE_MIN

CSV_FIELDS = ("idInstance", "apiTokenInstance", "apiUrl", "name")
REQUIRED_FIELDS = ("idInstance", "apiTokenInstance")


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
    """Each item read as a row; the rows that repeat an idInstance or a block name of an earlier one refused."""
    parsed = ParsedInstances()
    seen_ids: dict[int, int] = {}
    seen_names: dict[str, int] = {}
    for line, item in items:
        row = _read_row(line, item, default_api_url, unit, parsed)
        if row is None:
            continue
        id_instance = row.credentials.id_instance
        if id_instance in seen_ids:
            parsed.refused.append(RowProblem(line, "idInstance", f"{id_instance} already on {unit} {seen_ids[id_instance]}",
                                             id_instance, unit))
        elif row.block_name in seen_names:
            parsed.refused.append(RowProblem(line, "name", f"block name {row.block_name!r} already used on {unit} "
                                             f"{seen_names[row.block_name]}", id_instance, unit))
        else:
            seen_ids[id_instance], seen_names[row.block_name] = line, line
            parsed.rows.append(row)
    return parsed


class _Wrong(NamedTuple):
    """A field of a row, and what is wrong with it (never its value)."""

    field: str
    message: str


def _read_row(line: int, item: Any, default_api_url: str, unit: str, parsed: ParsedInstances) -> InstanceRow | None:
    """One item as a row to import; None once why not is in ``parsed`` (refused, or skipped: deleted or expired)."""
    def refuse(field_name: str, message: str, id_instance: int | None = None) -> None:
        parsed.refused.append(RowProblem(line, field_name, message, id_instance, unit))

    if not isinstance(item, dict):
        return refuse("row", f"expected an object, got a JSON {type(item).__name__}")
    if item.get(None):  # csv: more cells than columns
        return refuse("row", f"{len(item[None])} cell(s) more than the header's columns")
    raw_id = item.get("idInstance")
    id_instance = _as_id(raw_id)
    if id_instance is None:
        return refuse("idInstance", "missing" if raw_id in (None, "") else "must be an integer of 1 to 10 digits")
    if _truthy(item.get("deleted")) or _truthy(item.get("isExpired")):
        why = "deleted" if _truthy(item.get("deleted")) else "isExpired"
        parsed.skipped.append(RowProblem(line, why, f"instance {id_instance} is {'deleted' if why == 'deleted' else 'expired'}: "
                                         "skipped", id_instance, unit))
        return None
    credentials = _credentials(item, id_instance, default_api_url)
    if isinstance(credentials, _Wrong):
        return refuse(*credentials, id_instance)
    named = _block_name(item, id_instance)
    if isinstance(named, _Wrong):
        return refuse(*named, id_instance)
    block_name, note = named
    return InstanceRow(line, block_name, credentials, note, unit)


def _credentials(item: dict[str, Any], id_instance: int, default_api_url: str) -> InstanceCredentials | _Wrong:
    """The row's credentials (its apiUrl, or the default one), or which field is wrong."""
    token = item.get("apiTokenInstance")
    token = token if isinstance(token, SecretStr) else SecretStr(token.strip()) if isinstance(token, str) else None
    if token is None or not token.get_secret_value():
        return _Wrong("apiTokenInstance", "missing")
    api_url = item.get("apiUrl")
    api_url = api_url.strip() if isinstance(api_url, str) and api_url.strip() else default_api_url
    try:
        return InstanceCredentials(api_url=api_url, id_instance=id_instance, api_token_instance=token)
    except ValueError as exc:
        first = exc.errors()[0] if hasattr(exc, "errors") else {"loc": ("row",), "msg": str(exc)}
        where = {"api_url": "apiUrl", "api_token_instance": "apiTokenInstance", "id_instance": "idInstance"}.get(
            str(first["loc"][0]) if first.get("loc") else "", "row")
        return _Wrong(where, str(first["msg"]).removeprefix("Value error, "))


def _block_name(item: dict[str, Any], id_instance: int) -> tuple[str, str] | _Wrong:
    """The block the row goes to (its name normalised, or greenapi-<id>) and how its name was normalised ("" if not)."""
    given = item.get("name")
    given = given.strip() if isinstance(given, str) else ""
    if not given:
        return default_block_name(id_instance), ""
    block_name = normalise_block_name(given)
    if not block_name:
        return _Wrong("name", f"{given!r} has no letter or digit to make a block name of")
    if block_name == given:
        return block_name, ""
    return block_name, f"name {given!r} stored as block {block_name!r} (block names: lowercase letters, digits, dashes)"


def _as_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        return None
    return number if ID_INSTANCE_MIN <= number <= ID_INSTANCE_MAX else None


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"))
