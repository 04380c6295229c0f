"""The fleet sweep in-process (start_runs off): bounded fan-out, one slow instance fails alone, artifacts."""

from __future__ import annotations

import time

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows import sweep_instances
from flows.sweep_instances import SweepIncomplete
from tasks import GreenApiInstance
from tasks.accounts import last_seen_wid

pytestmark = pytest.mark.usefixtures("prefect_server")


async def _only_these_registered(emulator, instances) -> None:
    await GreenApiInstance.aregister_type_and_schema()
    async with get_client() as client:
        for document in await client.read_block_documents_by_type("greenapi-instance", include_secrets=False):
            await client.delete_block_document(document.id)
    for seeded in instances:
        await GreenApiInstance(api_url=emulator.url, id_instance=seeded.id_instance, api_token_instance=seeded.token).asave(
            f"sweep-{seeded.id_instance}", overwrite=True
        )


async def _artifact(key: str):
    async with get_client() as client:
        (latest,) = await client.read_latest_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    return latest


async def test_a_slow_instance_fails_alone_and_the_rest_are_swept(emulator, seed_instance, greenapi_env):
    greenapi_env(seed_instance())  # timing settings; the sweep itself reads the blocks
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
    assert f"| {blocked.id_instance} | sweep-{blocked.id_instance} | blocked |" in report.data
    assert f"| {slow.id_instance} | sweep-{slow.id_instance} | — | — | — | check failed" in report.data
    assert all(f"| {h.id_instance} |" in report.data for h in healthy)
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

    assert report.checked == 9 and report.failed_checks == 0 and report.affected == 0
    spans = [(c["started_at"], c["finished_at"]) for s in fleet for c in emulator.state.calls(instance=s.id_instance, method="getStateInstance")]
    peak = max(sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans)
    assert 2 <= peak <= 3


async def test_inline_handling_resets_affected_queues_within_five_calls_each(emulator, seed_instance, greenapi_env):
    from tasks.accounts import record_wid

    greenapi_env(seed_instance())
    healthy = [seed_instance(notifications=3) for _ in range(3)]
    blocked = seed_instance(state="blocked", notifications=6)
    changed = seed_instance(notifications=4, wid="79444444444@c.us")
    hooked = seed_instance(state="blocked", notifications=2, webhook_url="https://hooks.example/x")
    await _only_these_registered(emulator, [*healthy, blocked, changed, hooked])
    await record_wid(changed.id_instance, "79000000000@c.us")

    report = await sweep_instances(max_concurrency=4, handle="inline")

    outcomes = {f.id_instance: (f.reason and f.reason.value, f.handled_by, f.outcome) for f in report.findings}
    assert outcomes[blocked.id_instance] == ("number_blocked", "inline", "completed")
    assert outcomes[changed.id_instance] == ("account_changed", "inline", "completed")
    assert outcomes[hooked.id_instance] == ("number_blocked", "inline", "completed")
    for seeded, expected in ((blocked, 5), (changed, 5), (hooked, 4)):  # 4: no peek with a webhookUrl
        methods = [c["method"] for c in emulator.state.calls(instance=seeded.id_instance)]
        assert len(methods) == expected, methods
        assert methods[:3] == ["getStateInstance", "getSettings", "clearWebhooksQueue"]
        assert emulator.state.instance(seeded.id_instance)["queue_length"] == 0
    for seeded in healthy:
        assert len(emulator.state.calls(instance=seeded.id_instance)) == 2
        assert emulator.state.instance(seeded.id_instance)["queue_length"] == 3


async def test_the_registry_reads_more_than_one_page_of_blocks(emulator):
    from tasks.credentials import registered_instances

    await GreenApiInstance.aregister_type_and_schema()
    async with get_client() as client:
        for document in await client.read_block_documents_by_type("greenapi-instance", include_secrets=False):
            await client.delete_block_document(document.id)
    for index in range(205):  # more than one page of 200
        await GreenApiInstance(api_url=emulator.url, id_instance=5_000_000_000 + index, api_token_instance=f"t{index:04d}").asave(
            f"page-{index:03d}", overwrite=True
        )

    found = await registered_instances()

    assert [r.id_instance for r in found] == [5_000_000_000 + i for i in range(205)]
    assert found[7].credentials.api_token_instance.get_secret_value() == "t0007"
