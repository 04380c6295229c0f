"""`instances import`: the rows read from a file or a partner account become greenapi-instance blocks.

``import_instances`` compares the rows with the blocks that exist (one read) and writes only what changed,
several blocks at once through Prefect's typed client. A token is unwrapped in one place, into the block
document's data; no message holds one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable

from cli.instance_rows import InstanceRow, ParsedInstances, RowProblem, default_block_name
from instances.blocks import BLOCK_TYPE_SLUG, GreenApiInstance
from instances.lookup import instance_documents

# Blocks written at once. Prefect's server writes every block in its one process (15-24 ms of its CPU each, the
# import's floor): on PostgreSQL 1, 2, 4, 8 and 16 in flight cost it the same per block and 4 was never slower;
# past the client's 8 kept-alive connections each write would open a new one (bench/NOTES.md, session 8).
WRITES_IN_FLIGHT = 4


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


async def block_type_and_schema(client: Any) -> tuple[Any, Any]:
    """The ids of the greenapi-instance block type and of this code's schema of it, registered first if new."""
    await GreenApiInstance.aregister_type_and_schema(client=client)
    block_type = await client.read_block_type_by_slug(BLOCK_TYPE_SLUG)
    fields = GreenApiInstance.model_json_schema()  # what a schema of this code holds (Block.save registers it so)
    newest = await client.get_most_recent_block_schema_for_block_type(block_type.id)
    if newest is None or newest.fields != fields:  # another version of this code registered its schema since
        newest = next(schema for schema in await client.read_block_schemas()
                      if schema.block_type_id == block_type.id and schema.fields == fields)
    return block_type.id, newest.id


class BlockWriter:
    """Writes the planned blocks through one client, ``in_flight`` at a time; a failed write is a refused row."""

    def __init__(self, client: Any, block_type_id: Any, schema_id: Any, result: ImportResult,
                 progress: Callable[[int], None] | None) -> None:
        self.client, self.block_type_id, self.schema_id = client, block_type_id, schema_id
        self.result, self.progress = result, progress

    async def write_all(self, plan: list[tuple[str, InstanceRow, Any]], in_flight: int) -> None:
        if not plan:
            return
        # The first write alone: on a fresh database without PREFECT_SERVER_ENCRYPTION_KEY, concurrent first
        # writes of secret data race on the creation of the server's encryption key.
        await self.write(*plan[0])
        steps = iter(plan[1:])

        async def lane() -> None:
            for step in steps:  # the lanes share one iterator: each step is taken once
                await self.write(*step)

        await asyncio.gather(*(lane() for _ in range(in_flight)))

    async def write(self, action: str, row: InstanceRow, target: Any) -> None:
        try:
            await self._write(action, row, target)
        except Exception as exc:  # one failed write must not lose what the others did; the message holds no data
            status = _http_status(exc)
            self.result.refused.append(RowProblem(row.line, "block", f"{action} of block {row.block_name!r} failed: "
                                                  f"{type(exc).__name__}{f' (HTTP {status})' if status else ''}",
                                                  row.credentials.id_instance, row.unit))

    async def _write(self, action: str, row: InstanceRow, target: Any) -> None:
        from prefect.client.schemas.actions import BlockDocumentCreate, BlockDocumentUpdate

        if action == "create":
            await self.client.create_block_document(BlockDocumentCreate(
                name=row.block_name, data=_data_of(row), block_type_id=self.block_type_id,
                block_schema_id=self.schema_id))
            self.result.created.append(row.credentials.id_instance)
        else:
            await self.client.update_block_document(target.id, BlockDocumentUpdate(
                block_schema_id=self.schema_id, data=_data_of(row), merge_existing_data=False))
            self.result.updated.append(row.credentials.id_instance)
        if self.progress:
            self.progress(1)


def _http_status(exc: Exception) -> int | None:
    # Prefect's client raises ObjectNotFound / ObjectAlreadyExists for a 404 / 409, the HTTP error inside.
    http_error = getattr(exc, "http_exc", exc)
    return getattr(getattr(http_error, "response", None), "status_code", None)


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
    another idInstance is refused.

    Args:
        parsed: the rows read from a file or a partner account, with those already refused or skipped.
        progress: called with a number of rows as they are done (unchanged ones at once, then each write).
        writes_in_flight: how many blocks are written at once.

    Returns:
        What was created, updated, left unchanged, refused (by line) and skipped, and the block of each row."""
    from prefect.client.orchestration import get_client

    result = ImportResult(refused=list(parsed.refused), skipped=list(parsed.skipped))
    result.notes = [f"{r.unit} {r.line}: {r.name_note}" for r in parsed.rows if r.name_note]
    async with get_client() as client:
        block_type_id, schema_id = await block_type_and_schema(client)
        documents = await instance_documents(client, include_secrets=True)
        plan = plan_import(parsed.rows, documents, schema_id, result)
        if progress and len(parsed.rows) != len(plan):
            progress(len(parsed.rows) - len(plan))
        writer = BlockWriter(client, block_type_id, schema_id, result, progress)
        await writer.write_all(plan, max(1, writes_in_flight))
    for ids in (result.created, result.updated, result.unchanged):
        ids.sort()
    result.refused.sort(key=lambda p: p.line)
    return result
