"""instances.locks against the session's Prefect server: one slot per instance, taken through Prefect's concurrency."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from prefect.client.orchestration import get_client

from instances.locks import instance_lock
from tests.helpers import instance_limit_name, slots_taken

LEASE = 60.0
_ids = itertools.count(4_100_000_001)


@pytest.fixture
def id_instance(prefect_server):
    return next(_ids)


async def test_the_slot_is_held_inside_the_block_and_free_after(id_instance):
    async with instance_lock(id_instance, timeout_seconds=5, lease_seconds=LEASE):
        assert await slots_taken(id_instance) == 1
    assert await slots_taken(id_instance) == 0


async def test_a_second_holder_times_out_while_the_first_holds_it(id_instance):
    async with instance_lock(id_instance, timeout_seconds=5, lease_seconds=LEASE):
        with pytest.raises(TimeoutError):
            async with instance_lock(id_instance, timeout_seconds=1.5, lease_seconds=LEASE):
                pytest.fail("two holders of one instance's slot")


async def test_runs_racing_for_a_new_instance_take_turns(id_instance):
    inside, most_inside = 0, 0

    async def hold() -> None:
        nonlocal inside, most_inside
        # Generous: on SQLite, racing slot increments are answered 503 and Prefect's client backs off 2, 4, 8 s.
        async with instance_lock(id_instance, timeout_seconds=90, lease_seconds=LEASE):
            inside += 1
            most_inside = max(most_inside, inside)
            await asyncio.sleep(0.2)
            inside -= 1

    await asyncio.wait_for(asyncio.gather(*(hold() for _ in range(4))), 120)
    assert most_inside == 1
    async with get_client() as client:
        limit = await client.read_global_concurrency_limit_by_name(instance_limit_name(id_instance))
    assert (limit.limit, limit.active_slots) == (1, 0)


async def test_a_batch_is_locked_together_and_released_together(prefect_server):
    from instances.locks import instances_locked_together

    ids = [next(_ids) for _ in range(3)]
    async with instances_locked_together(ids, lease_seconds=LEASE) as locked:
        assert locked is True
        assert [await slots_taken(i) for i in ids] == [1, 1, 1]
    assert [await slots_taken(i) for i in ids] == [0, 0, 0]


async def test_one_busy_instance_leaves_each_of_the_batch_to_its_own_lock(prefect_server):
    from instances.locks import instances_locked_together

    ids = [next(_ids) for _ in range(3)]
    async with instance_lock(ids[1], timeout_seconds=5, lease_seconds=LEASE):
        async with instances_locked_together(ids, lease_seconds=LEASE) as locked:
            assert locked is False
            # All or none: the free ones were not taken, the busy one is still the other holder's.
            assert [await slots_taken(i) for i in ids] == [0, 1, 0]
