"""`instances list` and `instances remove`: the registered greenapi-instance blocks, joined with what the runs
remember (the last check, the last reset, what the relay held back), and deleting them by idInstance."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Iterable

from cli.importer import WRITES_IN_FLIGHT
from greenapi import DEFAULT_API_URL
from greenapi.errors import api_host
from instances.lookup import instance_documents



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

    from domain.changes import LastReset
    from instances.memory import held_back_many, last_resets, last_seen_many

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
        reset, check = resets.get(id_instance) or LastReset(), seen.get(id_instance)
        out.append(ListedInstance(
            id_instance=id_instance, block_name=name, api_url=api_host(api_url),
            last_state=(check.state if check else None) or reset.state_instance or None,
            last_state_since=check.since.isoformat() if check and check.since else None,
            last_wid=(check.wid if check else None) or reset.wid or None,
            last_outcome=reset.outcome.value if reset.outcome else None,
            last_reset_at=reset.finished_at.isoformat() if reset.finished_at else None,
            held_back=held.get(id_instance, {}).get("total", 0),
        ))
    return out



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
