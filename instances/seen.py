"""What the last check saw on each instance (state, since when, last account), on a ``greenapi-seen`` block per instance.

The sweep reads these records for a whole fleet in the same pages as the greenapi-instance blocks
(``instances.lookup.fleet_documents``): no read per instance, which paced a 10,000-instance sweep at the Prefect
server's speed (bench/NOTES.md, session 13). The receiver and ``instances list`` read and write the same records. A
Variable ``greenapi-seen-<idInstance>`` written by an earlier version is still read where an instance has no block yet,
and moved onto one the next time the sweep checks the instance.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable
from uuid import UUID

from prefect.blocks.core import Block
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.actions import BlockDocumentCreate, BlockDocumentUpdate
from prefect.client.schemas.objects import BlockDocument
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.variables import Variable
from pydantic import Field, ValidationError

from domain.changes import AUTHORIZED, SeenAccount, next_seen
from greenapi.credentials import ID_INSTANCE_MAX, ID_INSTANCE_MIN
from instances.memory import read_each

SEEN_BLOCK_TYPE_SLUG = "greenapi-seen"


class GreenApiSeen(Block):
    """What the last check saw on one instance. Written by the sweep and the receiver, only when it changes."""

    _block_type_name = "GREEN-API Last Check"
    _block_type_slug = SEEN_BLOCK_TYPE_SLUG
    _description = ("What the last check saw on one GREEN-API instance: its state, since when, and the last account "
                    "authorized on it. Written by the sweep and the receiver; no secret.")

    id_instance: int = Field(ge=ID_INSTANCE_MIN, le=ID_INSTANCE_MAX, description="idInstance.")
    state: str | None = Field(default=None, description="stateInstance at the last check.")
    since: datetime | None = Field(default=None, description="Since when the instance has been in that state, as far as known.")
    wid: str | None = Field(default=None, description="The last account (wid) seen authorized on the instance.")


def seen_block_name(id_instance: int) -> str:
    return f"instance-{id_instance}"


def legacy_seen_variable_name(id_instance: int) -> str:
    """Where versions before the greenapi-seen block kept the record."""
    return f"greenapi-seen-{id_instance}"


@dataclass(frozen=True)
class SeenRecord:
    """A record as read: the account, and the id of the block it is on (None: read from an earlier version's Variable)."""

    account: SeenAccount
    document_id: UUID | None = None


def seen_record_of(document: BlockDocument) -> tuple[int, SeenRecord] | None:
    """The instance and record a greenapi-seen block document holds; None when it does not read as one."""
    data = document.data or {}
    id_instance = data.get("id_instance")
    if not isinstance(id_instance, int) or isinstance(id_instance, bool):
        return None
    try:
        account = SeenAccount.model_validate({key: data.get(key) for key in ("state", "since", "wid")})
    except ValidationError:
        return None
    return id_instance, SeenRecord(account, document.id)


async def read_seen(id_instance: int) -> SeenRecord | None:
    """The instance's record as it is now: its block, else an earlier version's Variable; None when there is none."""
    async with get_client() as client:
        try:
            document = await client.read_block_document_by_name(seen_block_name(id_instance), SEEN_BLOCK_TYPE_SLUG,
                                                                include_secrets=False)
        except ObjectNotFound:  # no such block, or the block type is not registered yet
            return await _legacy(id_instance)
    found = seen_record_of(document)
    return found[1] if found else None


async def read_seen_many(ids: Iterable[int], slots: asyncio.Semaphore | None = None) -> dict[int, SeenRecord]:
    """:func:`read_seen` of each instance, a few at a time (``slots``, when several callers share one bound); the
    instances with no record are left out."""
    return await read_each(ids, read_seen, slots)


async def legacy_seen_many(ids: Iterable[int], slots: asyncio.Semaphore | None = None) -> dict[int, SeenRecord]:
    """Earlier versions' records (Variables) of instances that have no block: read once, moved by the next write."""
    return await read_each(ids, _legacy, slots)


async def _legacy(id_instance: int) -> SeenRecord | None:
    value = await Variable.aget(legacy_seen_variable_name(id_instance), default=None)
    try:
        return SeenRecord(SeenAccount.model_validate(value)) if isinstance(value, dict) else None
    except ValidationError:
        return None


async def record_seen(id_instance: int, seen: SeenAccount, before: SeenRecord | None = None) -> None:
    """Write the instance's record: an update of its block when ``before`` names one (one request), else the block
    is found or made. A record that came from an earlier version's Variable is moved: the Variable is removed."""
    data = {"id_instance": id_instance, **seen.model_dump(mode="json")}
    async with get_client() as client:
        document_id = before.document_id if before is not None else None
        if document_id is None:
            with contextlib.suppress(ObjectNotFound):
                document_id = (await client.read_block_document_by_name(
                    seen_block_name(id_instance), SEEN_BLOCK_TYPE_SLUG, include_secrets=False)).id
        if document_id is None or not await _update(client, document_id, data):
            await _create(client, id_instance, data)
    if before is not None and before.document_id is None:
        await Variable.aunset(legacy_seen_variable_name(id_instance))


async def _update(client: PrefectClient, document_id: UUID, data: dict) -> bool:
    """False when the block is gone (removed since it was read)."""
    try:
        await client.update_block_document(document_id, BlockDocumentUpdate(data=data, merge_existing_data=False))
    except ObjectNotFound:
        return False
    return True


async def _create(client: PrefectClient, id_instance: int, data: dict) -> None:
    type_id, schema_id = await _block_type_and_schema(client)
    name = seen_block_name(id_instance)
    try:
        await client.create_block_document(BlockDocumentCreate(name=name, data=data, block_type_id=type_id,
                                                               block_schema_id=schema_id))
    except ObjectAlreadyExists:  # another writer made it since it was looked for: the last write wins
        document = await client.read_block_document_by_name(name, SEEN_BLOCK_TYPE_SLUG, include_secrets=False)
        await _update(client, document.id, data)


_SCHEMAS: dict[str, tuple[UUID, UUID]] = {}  # per Prefect API: the block type and schema, registered once per process


async def _block_type_and_schema(client: PrefectClient) -> tuple[UUID, UUID]:
    key = str(client.api_url)
    if key not in _SCHEMAS:
        try:
            await GreenApiSeen.aregister_type_and_schema(client=client)
        except ObjectAlreadyExists:  # another writer registered it meanwhile: registering again finds it
            await GreenApiSeen.aregister_type_and_schema(client=client)
        block_type = await client.read_block_type_by_slug(SEEN_BLOCK_TYPE_SLUG)
        schema = await client.get_most_recent_block_schema_for_block_type(block_type.id)
        if schema is None:
            raise RuntimeError(f"the {SEEN_BLOCK_TYPE_SLUG} block type has no schema on the Prefect server")
        _SCHEMAS[key] = (block_type.id, schema.id)
    return _SCHEMAS[key]


async def last_seen_wid(id_instance: int) -> str | None:
    """The last account authorized on the instance, as any check recorded it."""
    record = await read_seen(id_instance)
    return record.account.wid if record else None


async def record_wid(id_instance: int, wid: str) -> None:
    """Remember ``wid`` as the instance's account (it is authorized with it). Empty wids are not recorded."""
    if wid:
        before = await read_seen(id_instance)
        changed = next_seen(before.account if before else None, AUTHORIZED, wid, datetime.now(timezone.utc))
        if changed is not None or (before is not None and before.document_id is None):
            await record_seen(id_instance, changed or before.account, before)  # type: ignore[union-attr]
