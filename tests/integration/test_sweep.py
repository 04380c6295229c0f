"""The fleet sweep in-process (start_runs off): bounded fan-out, one slow instance fails alone, artifacts."""

from __future__ import annotations

import time

import pytest
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows import sweep_instances
from flows.sweep_instances import SweepIncomplete, visible_lines
from instances.memory import last_seen_wid
from tests.helpers import clear_registry, register_seeded, task_runs_of

pytestmark = pytest.mark.usefixtures("prefect_server")


async def _only_these_registered(emulator, instances) -> None:
    await clear_registry()
    for seeded in instances:
        await register_seeded(seeded, emulator, name=f"sweep-{seeded.id_instance}")


async def _artifact(key: str):
    async with get_client() as client:
        (latest,) = await client.read_latest_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    return latest


async def test_a_slow_instance_fails_alone_and_the_rest_are_swept(emulator, seed_instance, greenapi_env):
    # Timing settings (the sweep itself reads the blocks); no retries, so the slow instance's own time is 1 s.
    greenapi_env(seed_instance(), max_retries="0")
    healthy = [seed_instance(wid=f"7955500000{i}@c.us") for i in range(6)]
    blocked = seed_instance(state="blocked")
    slow = seed_instance()
    emulator.state.add_faults(slow.id_instance, [{"method": "getStateInstance", "fault": {"kind": "delay", "seconds": 8}, "times": None}])
    await _only_these_registered(emulator, [*healthy, blocked, slow])

    started = time.monotonic()
    state = await sweep_instances(max_concurrency=2, check_timeout_seconds=1, start_runs=False, return_state=True)
    elapsed = time.monotonic() - started

    assert state.is_failed()
    with pytest.raises(SweepIncomplete, match="1 of 8 instance"):
        await state.aresult()
    assert elapsed < 8  # the slow instance did not hold the sweep for its 8 s
    report = await _artifact("sweep-report")
    assert report.data.startswith("# Sweep: 7 checked, 1 could not be checked")
    rows = [line for line in report.data.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert rows[0].startswith(f"| {slow.id_instance}<br>sweep-{slow.id_instance} | not checked |")  # failed first, the answer first
    assert f"| {blocked.id_instance}<br>sweep-{blocked.id_instance} | number_blocked | — |  | blocked<br>" in report.data
    cells = [cell.strip() for cell in rows[0].strip("|").split(" | ")]
    error = " ".join(visible_lines(cells[3]))
    assert "timed out" in error.lower() and len(error) <= 80
    # The batch holding the slow instance shows Failed in the UI; the other batches Completed.
    batches = await task_runs_of(state.state_details.flow_run_id)
    by_state = {run.name: run.state.type.value for run in batches if run.name.startswith("check-instances-")}
    assert sorted(by_state.values()) == ["COMPLETED"] * 3 + ["FAILED"]
    assert [name for name, value in by_state.items() if value == "FAILED"] == [f"check-instances-{blocked.id_instance}-to-{slow.id_instance}"]
    # The healthy ones are one line, not a row each (a fleet of 10,000 stays readable in the UI).
    assert "**6 with nothing to do** (same account as recorded, not blocked): 6 authorized." in report.data
    assert not any(f"| {h.id_instance}<br>" in report.data for h in healthy)
    progress = await _artifact("sweep-progress")
    assert progress.data == 100.0
    # Healthy instances cost exactly 2 API calls each.
    for seeded in healthy:
        assert [c["method"] for c in emulator.state.calls(instance=seeded.id_instance)] == ["getStateInstance", "getSettings"]
        assert await last_seen_wid(seeded.id_instance) is not None


async def test_fan_out_never_exceeds_max_concurrency(emulator, seed_instance, greenapi_env):
    greenapi_env(seed_instance())
    fleet = [seed_instance() for _ in range(9)]
    for seeded in fleet:  # each check takes ~0.5 s, so overlap is measurable
        emulator.state.add_faults(seeded.id_instance, [{"method": "getStateInstance", "fault": {"kind": "delay", "seconds": 0.5}, "times": 1}])
    await _only_these_registered(emulator, fleet)

    report = await sweep_instances(max_concurrency=3, start_runs=False)

    assert report.checked == 9 and report.not_checked == 0 and report.affected == 0
    spans = [(c["started_at"], c["finished_at"]) for s in fleet for c in emulator.state.calls(instance=s.id_instance, method="getStateInstance")]
    peak = max(sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans)
    assert 2 <= peak <= 3


async def test_inline_handling_resets_affected_queues_and_says_what_it_removed(emulator, seed_instance, greenapi_env):
    from instances.memory import record_wid

    greenapi_env(seed_instance())
    healthy = [seed_instance(notifications=3) for _ in range(3)]
    blocked = seed_instance(state="blocked", notifications=6)
    changed = seed_instance(notifications=4, wid="79444444444@c.us")
    hooked = seed_instance(state="blocked", notifications=2, webhook_url="https://hooks.example/x")
    await _only_these_registered(emulator, [*healthy, blocked, changed, hooked])
    await record_wid(changed.id_instance, "79000000000@c.us")

    report = await sweep_instances(max_concurrency=4, handle="inline")

    outcomes = {f.id_instance: (f.reason and f.reason.value, f.handled_by, str(f.outcome)) for f in report.findings}
    assert outcomes[blocked.id_instance] == ("number_blocked", "inline", "completed")
    assert outcomes[changed.id_instance] == ("account_changed", "inline", "completed")
    assert outcomes[hooked.id_instance] == ("number_blocked", "inline", "completed")
    # The sweep's inspection stands, the queue is still counted before the clear (what it removed); after a
    # block the outgoing queue is counted (and cleared when not empty) too; no peek with a webhookUrl.
    check, count, outgoing = ["getStateInstance", "getSettings"], ["getWebhooksCount"], ["getMessagesCount"]
    for seeded, before_clear, expected, removed in ((blocked, check + count + outgoing, 7, 6), (changed, check + count, 6, 4),
                                                    (hooked, check + count + outgoing, 6, 2)):
        methods = [c["method"] for c in emulator.state.calls(instance=seeded.id_instance)]
        assert len(methods) == expected, methods
        assert methods[:len(before_clear) + 1] == before_clear + ["clearWebhooksQueue"]
        assert emulator.state.instance(seeded.id_instance)["queue_length"] == 0
        artifact = (await _artifact(f"queue-reset-{seeded.id_instance}")).data
        assert f"**Removed:** {removed} notification(s); count before the clear: {removed}, after: 0" in artifact
    for seeded in healthy:
        assert len(emulator.state.calls(instance=seeded.id_instance)) == 2
        assert emulator.state.instance(seeded.id_instance)["queue_length"] == 3


async def test_the_registry_reads_more_than_one_page_of_blocks(emulator):
    from instances.lookup import registered_instances
    from cli.importer import import_instances
    from cli.instance_rows import parse_instances_text

    await clear_registry()
    await Secret(value="not an instance").save("registry-page-other-type", overwrite=True)  # another block type, left out
    rows = "".join(f"{5_000_000_000 + index},t{index:04d},{emulator.url},page-{index:03d}\n" for index in range(205))
    # Two writes at a time: this tests the read; SQLite refuses some of 16 concurrent creates on a loaded machine.
    imported = await import_instances(parse_instances_text("idInstance,apiTokenInstance,apiUrl,name\n" + rows), writes_in_flight=2)
    assert len(imported.created) == 205  # more than one page of 200

    found = await registered_instances()

    assert [r.id_instance for r in found] == [5_000_000_000 + i for i in range(205)]
    assert found[7].credentials.api_token_instance.get_secret_value() == "t0007"


async def test_the_sweep_acts_on_changes_only(emulator, seed_instance, greenapi_env):
    """A block is handled once (again only while no reset verified it empty); a new wid afterwards is an account change."""
    greenapi_env(seed_instance())
    number = seed_instance(wid="79111111111@c.us")
    refused = seed_instance(state="blocked", notifications=2,
                            refuse_clears={"reason": "The system could not process the request", "times": None})
    await _only_these_registered(emulator, [number, refused])

    def calls(seeded) -> int:
        return len(emulator.state.calls(instance=seeded.id_instance))

    def next_schedule() -> None:
        """Sweeps come a schedule apart, not back to back: the emulator's clock moves past GREEN-API's once a
        second on the last checks."""
        emulator.state.advance_clock(1.0)

    first = await sweep_instances(max_concurrency=4, handle="inline", return_state=True)
    assert first.is_failed()  # the refused instance's reset failed
    emulator.state.patch_instance(number.id_instance, {"state": "blocked", "add_notifications": 3, "add_outgoing": 2})

    next_schedule()
    state = await sweep_instances(max_concurrency=4, handle="inline", return_state=True)
    assert state.is_failed()
    after_block_calls = calls(number)
    inst = emulator.state.instance(number.id_instance)
    assert (inst["queue_length"], inst["outgoing_messages"]) == (0, 0)  # outgoing cleared too, after a block

    refused_calls = calls(refused)
    next_schedule()
    state = await sweep_instances(max_concurrency=4, handle="inline", return_state=True)
    report = await _artifact("sweep-report")
    number_row = next(line for line in report.data.splitlines() if line.startswith(f"| {number.id_instance}<br>"))
    assert "was blocked<br>from " in number_row and "reset verified empty" in " ".join(visible_lines(number_row))
    assert calls(number) - after_block_calls == 2  # checked only: this block was handled
    assert [c["method"] for c in emulator.state.calls(instance=refused.id_instance)][refused_calls:].count("clearWebhooksQueue") >= 1

    emulator.state.patch_instance(number.id_instance, {"state": "authorized", "wid": "79222222222@c.us", "add_notifications": 1})
    next_schedule()
    state = await sweep_instances(max_concurrency=4, handle="inline", return_state=True)
    report = await _artifact("sweep-report")
    number_row = next(line for line in report.data.splitlines() if line.startswith(f"| {number.id_instance}<br>"))
    assert "account_changed" in number_row and "inline: completed" in number_row
    assert emulator.state.instance(number.id_instance)["queue_length"] == 0
    assert await last_seen_wid(number.id_instance) == "79222222222@c.us"


async def test_outgoing_is_left_alone_after_a_block_when_turned_off(emulator, seed_instance, greenapi_env):
    greenapi_env(seed_instance())
    blocked = seed_instance(state="blocked", notifications=2, outgoing_messages=3)
    await _only_these_registered(emulator, [blocked])

    report = await sweep_instances(handle="inline", clear_outgoing_after_block=False)

    assert [str(f.outcome) for f in report.findings] == ["completed"]
    inst = emulator.state.instance(blocked.id_instance)
    assert (inst["queue_length"], inst["outgoing_messages"]) == (0, 3)
