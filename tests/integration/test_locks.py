"""tasks.locks against the session's Prefect server: one slot per instance, and a batch's slots in one lease."""

from __future__ import annotations

import itertools

import pytest

from tasks.locks import instance_limit_name, instance_lock, instances_locked_together
from tasks.quick_api import QuickPrefectAPI

LEASE = 60.0
_ids = itertools.count(4_100_000_001)


async def _is_free(id_instance: int) -> bool:
    """Take and give back the instance's slot at once; False when someone holds it."""
    async with QuickPrefectAPI() as api:
        try:
            lease = await api.acquire_slot(instance_limit_name(id_instance), lease_seconds=LEASE, timeout_seconds=0, holder=None)
        except TimeoutError:
            return False
        await api.release_slot(lease)
        return True


@pytest.fixture
def ids(prefect_server):
    return [next(_ids) for _ in range(3)]


async def test_a_batch_is_locked_in_one_lease_and_released_together(ids):
    async with instance_lock(ids[0], timeout_seconds=5, lease_seconds=LEASE):
        pass  # the limit exists from now on; the batch must cope with existing and new limits alike

    async with instances_locked_together(ids, lease_seconds=LEASE) as locked:
        assert locked is True
        assert [await _is_free(i) for i in ids] == [False, False, False]

    assert [await _is_free(i) for i in ids] == [True, True, True]


async def test_one_busy_instance_leaves_the_batch_to_lock_each_on_its_own(ids):
    async with instance_lock(ids[1], timeout_seconds=5, lease_seconds=LEASE):
        async with instances_locked_together(ids, lease_seconds=LEASE) as locked:
            assert locked is False
            # All or none: the free ones were not taken, so each can now be locked on its own.
            assert await _is_free(ids[0]) and await _is_free(ids[2])
            assert not await _is_free(ids[1])


async def test_an_empty_batch_locks_nothing():
    async with instances_locked_together([], lease_seconds=LEASE) as locked:
        assert locked is False
