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
from tasks.blocks import BLOCK_TYPE_SLUG, GreenApiInstance
from tasks.lookup import instance_documents

WRITES_IN_FLIGHT = 16



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
