"""What the operator's app receives, end to end (issue 20, item 5): the emulator POSTs webhooks over loopback,
the relay is a `greenapi-migrate receiver` subprocess with a forward URL, account changes go to a
`greenapi-migrate task-worker`, on a real Prefect server. The same runner as bench/delivery.py
(scenarios/runner.py), at a small time scale (SCALE: the 30 s, the minute and GREEN-API's 60 s redelivery
pause shrink; scenario (ii)'s pause stays 4 s, longer than the relay's trust window).

The relay's targets: 0 stale notifications in (i)-(v), 0 fresh ones lost in (iii)-(v), order kept. One cell
of another wiring shows the harm the relay prevents (nothing installed, scenario (ii): the old account's
backlog reaches the app), so the comparison can fail for a real reason. Definitions: scenarios/measure.py.
"""

from __future__ import annotations

import pytest

from scenarios.runner import GREEN_API_ENV, PrefectHandle, Stack, Timing, configure_emulator, run_scenario
from tests.e2e.conftest import on_sqlite_only

pytestmark = [pytest.mark.e2e, on_sqlite_only]

SCALE = 0.05
TIMING = Timing(scale=SCALE, rate_per_second=5.0, steady_seconds=20.0)  # 1 s of traffic before and after each event


@pytest.fixture(scope="module")
def stack(sqlite_prefect_server, tmp_path_factory):
    """The W0 app, the relay (W3) in front of its app, one task worker: for the whole module."""
    server = sqlite_prefect_server.server
    prefect = PrefectHandle(api_url=server.api_url, env=server.client_env, stop=server.stop, start=server.start)
    with Stack(emulator_url="http://unused", prefect=prefect, workdir=tmp_path_factory.mktemp("delivery"),
               wirings=("W0", "W3"), timing=TIMING) as started:
        yield started


@pytest.fixture
async def scenario(stack, prefect_server, emulator, monkeypatch):
    """Runs one scenario on this test's (freshly reset) emulator; returns (cells by wiring, notes)."""
    for name, value in GREEN_API_ENV.items():
        monkeypatch.setenv(name, value)
    stack.emulator_url = emulator.url
    configure_emulator(emulator.url, TIMING)
    await stack.task_worker_ready()

    async def _run(name: str, wirings=("W3",)):
        cells, notes = await run_scenario(stack, name, wirings)
        assert notes["drained"], f"the queues did not drain: {notes}\n{stack.outputs()}"
        return cells, notes

    return _run


def _no_stale_and_in_order(cell, stack) -> None:
    r = cell.result
    why = f"{cell.wiring} in ({cell.scenario}): {r.as_dict()} {cell.extra}\n{stack.outputs()}"
    assert r.stale_got == 0, why
    assert r.order_kept, why
    assert r.unauthorized == 0 and r.unknown == 0, why


async def test_ii_the_relay_holds_back_the_old_backlog_that_reaches_an_app_without_it(scenario, stack):
    cells, _ = await scenario("ii", ("W0", "W3"))
    relay, bare = cells["W3"], cells["W0"]
    _no_stale_and_in_order(relay, stack)
    assert relay.result.old_never_got == 50  # held back: the old account's backlog
    # and no clear: the new account's notifications queued behind the backlog all reach the app
    assert relay.result.fresh_lost == 0 and relay.extra["clears"] == 0, relay.result.as_dict()
    # Nothing installed: GREEN-API's FIFO hands the whole backlog of the old account to the app, after the change.
    assert bare.result.stale_got == 50, bare.result.as_dict()
    assert bare.result.fresh_lost == 0


async def test_i_block_then_a_new_account(scenario, stack):
    cells, _ = await scenario("i")
    _no_stale_and_in_order(cells["W3"], stack)
    assert cells["W3"].result.fresh_got > 0


@pytest.mark.parametrize("name", ["iii", "iv", "v"])
async def test_the_relay_loses_nothing(scenario, stack, name):
    """(iii) the app answers 503 for a while; (iv) the relay restarted mid-stream; (v) the Prefect server down."""
    cells, _ = await scenario(name)
    cell = cells["W3"]
    _no_stale_and_in_order(cell, stack)
    assert cell.result.fresh_got > 0 and cell.result.fresh_lost == 0, f"{cell.result.as_dict()} {cell.extra}\n{stack.outputs()}"
