"""Registering instances on a real Prefect server: import is idempotent (nothing written when nothing changed),
list joins what the runs recorded, remove deletes; the partner account as a source, and as the sweep's fleet."""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import datetime, timedelta, timezone

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import BlockSchemaCreate
from prefect.variables import Variable

from cli.instances import import_command
from flows import sweep_instances
from instances import GreenApiInstance
from instances.memory import (
    last_reset, last_reset_variable_name, next_clear_allowed_at, next_clear_variable_name, record_next_clear_allowed, record_wid,
)
from cli.importer import BlockWriter, ImportResult, block_type_and_schema, import_instances
from cli.instance_rows import parse_instances_text
from cli.registered import list_instances, remove_instances
from tests.helpers import clear_registry

pytestmark = pytest.mark.usefixtures("prefect_server")

PARTNER = "CANARYintpartner" + "7c" * 16
CANARY = "CANARYimport" + "5e" * 20  # a token that no message may hold


async def _documents() -> dict[str, object]:
    await GreenApiInstance.aregister_type_and_schema()
    async with get_client() as client:
        return {d.name: d for d in await client.read_block_documents_by_type("greenapi-instance", include_secrets=False)}


def _csv(rows: list[tuple[int, str, str]]) -> str:
    return "idInstance,apiTokenInstance,apiUrl,name\n" + "".join(f"{i},{t},http://127.0.0.1:9,{n}\n" for i, t, n in rows)


async def test_a_second_import_changes_only_what_changed_and_a_third_writes_nothing():
    await clear_registry()
    tokens = {i: secrets.token_hex(20) for i in range(3_100_000_001, 3_100_000_006)}
    rows = [(i, t, "") for i, t in tokens.items()]

    first = await import_instances(parse_instances_text(_csv(rows)))
    assert (len(first.created), first.updated, first.unchanged, first.refused) == (5, [], [], [])

    changed_id = rows[1][0]
    rows[1] = (changed_id, secrets.token_hex(20), "")
    new_id = 3_100_000_009
    rows.append((new_id, secrets.token_hex(20), "Late Comer"))
    before = await _documents()
    second = await import_instances(parse_instances_text(_csv(rows)))
    assert (second.created, second.updated, len(second.unchanged)) == ([new_id], [changed_id], 4)
    assert any("late-comer" in note for note in second.notes)
    after = await _documents()
    changed_name = f"greenapi-{changed_id}"
    assert after[changed_name].updated > before[changed_name].updated
    assert all(after[n].updated == before[n].updated for n in before if n != changed_name)
    assert (await GreenApiInstance.aload(changed_name)).api_token_instance.get_secret_value() == rows[1][1]
    assert (await GreenApiInstance.aload("late-comer")).id_instance == new_id

    third = await import_instances(parse_instances_text(_csv(rows)))
    assert (third.created, third.updated, len(third.unchanged)) == ([], [], 6)
    final = await _documents()
    assert {n: d.updated for n, d in final.items()} == {n: d.updated for n, d in after.items()}


async def test_conflicting_names_are_refused_not_written():
    await clear_registry()
    token = secrets.token_hex(20)
    await import_instances(parse_instances_text(_csv([(3_100_000_101, token, "shop")])))
    result = await import_instances(parse_instances_text(_csv([(3_100_000_101, token, "other"), (3_100_000_102, token, "shop")])))
    assert (result.created, result.updated) == ([], [])
    assert [(p.line, p.field) for p in result.refused] == [(2, "name"), (3, "name")]
    assert "already registered as block shop" in result.refused[0].message
    assert set(await _documents()) == {"shop"}


async def _write(plan) -> ImportResult:
    """The planned writes as import_instances makes them, the plan given (as if the blocks changed after the read)."""
    result = ImportResult()
    async with get_client() as client:
        block_type_id, schema_id = await block_type_and_schema(client)
        await BlockWriter(client, block_type_id, schema_id, result, progress=None).write_all(plan, in_flight=4)
    return result


async def test_blocks_are_written_with_this_codes_schema_when_another_version_registered_one_since():
    async with get_client() as client:
        block_type_id, schema_id = await block_type_and_schema(client)
        fields = GreenApiInstance.model_json_schema()
        later = {**fields, "properties": {**fields["properties"], "label": {"title": "Label", "type": "string"}}}
        other = await client.create_block_schema(BlockSchemaCreate(
            block_type_id=block_type_id, fields=later, capabilities=[], version=GreenApiInstance.get_block_schema_version()))
        assert (await client.get_most_recent_block_schema_for_block_type(block_type_id)).id == other.id

        assert await block_type_and_schema(client) == (block_type_id, schema_id)
        saved = await GreenApiInstance(id_instance=3_100_000_141, api_token_instance=secrets.token_hex(20)).asave(
            "schema-probe", overwrite=True)  # Prefect's own save: the schema this code's blocks are written with
        assert (await client.read_block_document(saved)).block_schema_id == schema_id


async def test_a_create_the_server_refuses_is_a_refused_row_the_others_written_and_no_token_said():
    await clear_registry()
    taken, free = 3_100_000_151, 3_100_000_152
    await import_instances(parse_instances_text(_csv([(taken, secrets.token_hex(20), "")])))
    rows = parse_instances_text(_csv([(taken, CANARY, ""), (free, CANARY + "2", "")])).rows

    result = await _write([("create", row, None) for row in rows])  # the first block was created since the read

    assert result.created == [free]
    [problem] = result.refused
    assert (problem.line, problem.field, problem.id_instance) == (2, "block", taken)
    assert problem.message == f"create of block 'greenapi-{taken}' failed: ObjectAlreadyExists (HTTP 409)"
    assert (await GreenApiInstance.aload(f"greenapi-{taken}")).api_token_instance.get_secret_value() != CANARY


async def test_an_update_of_a_block_removed_since_the_read_is_a_refused_row():
    await clear_registry()
    gone = 3_100_000_161
    await import_instances(parse_instances_text(_csv([(gone, secrets.token_hex(20), "")])))
    [document] = (await _documents()).values()
    await remove_instances([gone])
    [row] = parse_instances_text(_csv([(gone, CANARY, "")])).rows

    result = await _write([("update", row, document)])

    assert (result.updated, [str(p) for p in result.refused]) == (
        [], [f"line 2: block: update of block 'greenapi-{gone}' failed: ObjectNotFound (HTTP 404)"])
    assert await _documents() == {}


async def test_list_shows_what_the_runs_recorded_and_remove_deletes():
    await clear_registry()
    ids = [3_100_000_201, 3_100_000_202]
    await import_instances(parse_instances_text(_csv([(i, secrets.token_hex(20), "") for i in ids])))
    await record_wid(ids[0], "79990001111@c.us")
    # A record as versions before the typed LastReset wrote it (a plain dict): still read.
    await Variable.aset(last_reset_variable_name(ids[0]), {
        "reason": "number_blocked", "outcome": "cleared", "verified_empty": True, "finished_at": "2026-01-02T03:04:05+00:00",
        "state_instance": "blocked", "wid": "79990001111@c.us"}, overwrite=True)

    listed = {item.id_instance: item for item in await list_instances()}
    assert set(listed) == set(ids)
    # The last check's state (the account recorded as authorized) wins over the state the last reset saw.
    assert (listed[ids[0]].last_state, listed[ids[0]].last_wid, listed[ids[0]].last_outcome, listed[ids[0]].last_reset_at) == (
        "authorized", "79990001111@c.us", "cleared", "2026-01-02T03:04:05+00:00")
    assert listed[ids[0]].last_state_since is not None and listed[ids[1]].last_state is None
    assert (listed[ids[1]].last_outcome, listed[ids[1]].api_url) == (None, "127.0.0.1:9")

    removed = await remove_instances([ids[0], 3_100_000_299])
    assert removed.removed == {ids[0]: [f"greenapi-{ids[0]}"]} and removed.not_found == [3_100_000_299]
    assert [item.id_instance for item in await list_instances()] == [ids[1]]


async def test_writers_racing_to_create_a_record_all_succeed_and_a_later_write_overwrites_it():
    """A record is updated in place, else created: writers that find none at once all create it, and those that
    lose that race update it instead of failing."""
    id_instance = 3_100_000_301
    await Variable.aunset(next_clear_variable_name(id_instance))
    moments = [datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=n) for n in range(8)]
    await asyncio.gather(*(record_next_clear_allowed(id_instance, at) for at in moments))
    assert await next_clear_allowed_at(id_instance) in moments

    later = moments[-1] + timedelta(minutes=1)
    await record_next_clear_allowed(id_instance, later)
    assert await next_clear_allowed_at(id_instance) == later


async def test_import_from_the_partner_account_and_its_errors(emulator, seed_instance, greenapi_env, capsys, monkeypatch):
    await clear_registry()
    emulator.state.set_config({"partner_token": PARTNER})
    kept = seed_instance(name="Partner Shop")
    seed_instance(deleted=True)
    greenapi_env(kept)
    monkeypatch.setenv("GREEN_API_PARTNER_TOKEN", PARTNER)

    # Called from the running event loop's thread: the command runs its own loop, so give it a thread.
    import asyncio

    code = await asyncio.to_thread(import_command, path=None, partner=True, partner_block=None, as_json=True)
    out = capsys.readouterr()
    assert code == 0, out.err
    result = json.loads(out.out)
    assert result["created"] == [kept.id_instance] and [s["reason"] for s in result["skipped"]] == ["deleted"]
    block = await GreenApiInstance.aload("partner-shop")
    assert (block.api_url, block.id_instance, block.api_token_instance.get_secret_value()) == (emulator.url, kept.id_instance, kept.token)

    monkeypatch.setenv("GREEN_API_PARTNER_TOKEN", PARTNER + "wrong")
    code = await asyncio.to_thread(import_command, path=None, partner=True, partner_block=None, as_json=False)
    out = capsys.readouterr()
    assert code == 2 and "code 401" in out.err and "Unauthorized" in out.err
    assert PARTNER not in out.out + out.err and kept.token not in out.out + out.err


async def test_the_sweep_takes_its_fleet_from_the_partner_account(emulator, seed_instance, greenapi_env, monkeypatch):
    await clear_registry()  # no block at all: the partner account is the fleet
    emulator.state.set_config({"partner_token": PARTNER})
    healthy = seed_instance()
    blocked = seed_instance(state="blocked", notifications=4)
    gone = seed_instance(state="blocked", notifications=2, deleted=True)
    greenapi_env(healthy)
    monkeypatch.setenv("GREEN_API_PARTNER_TOKEN", PARTNER)

    report = await sweep_instances(max_concurrency=4, fleet="partner")

    assert [f.id_instance for f in report.findings] == [healthy.id_instance, blocked.id_instance]
    by_id = {f.id_instance: f for f in report.findings}
    assert by_id[blocked.id_instance].reason.value == "number_blocked"
    assert (by_id[blocked.id_instance].handled_by, str(by_id[blocked.id_instance].outcome)) == ("inline", "completed")
    assert by_id[healthy.id_instance].reason is None
    assert emulator.state.instance(blocked.id_instance)["queue_length"] == 0
    assert emulator.state.instance(gone.id_instance)["queue_length"] == 2  # deleted: not swept
    assert emulator.state.calls(instance=gone.id_instance) == []
    record = await last_reset(blocked.id_instance)
    assert (record.outcome.value, record.verified_empty, record.state_instance) == ("cleared", True, "blocked")


async def test_a_partner_sweep_with_a_refused_token_fails_with_the_partner_error(emulator, seed_instance, greenapi_env, monkeypatch):
    from greenapi import PartnerAuthenticationError

    emulator.state.set_config({"partner_token": PARTNER})
    instance = seed_instance(state="blocked", notifications=1)
    greenapi_env(instance)
    monkeypatch.setenv("GREEN_API_PARTNER_TOKEN", PARTNER + "x")

    state = await sweep_instances(max_concurrency=2, fleet="partner", return_state=True)

    assert state.is_failed()
    with pytest.raises(PartnerAuthenticationError, match="code 401") as raised:
        await state.aresult()
    assert PARTNER not in str(raised.value)
    assert emulator.state.calls(instance=instance.id_instance) == []
