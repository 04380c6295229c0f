"""``greenapi-migrate demo``: the flow on three emulated instances, no credentials needed.

The bundled emulator plays GREEN-API on loopback with shortened windows; the runs go to
Prefect's local server (the one PREFECT_API_URL names, or the ephemeral one in PREFECT_HOME).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from dataclasses import dataclass

from emulator import EmulatorConfig, EmulatorServer, InstanceSeed
from greenapi.timings import EMULATOR_TIMINGS_ENV, GreenApiTimings

# The emulator's shortened GREEN-API windows, so the leftTime path shows and the demo ends in seconds.
DEMO_TIMINGS = GreenApiTimings(count_refresh_seconds=3, clear_interval_seconds=10)


@dataclass(frozen=True)
class DemoCase:
    story: str
    reason: str
    seed: InstanceSeed
    clear_outgoing: bool = False
    faults: tuple[dict, ...] = ()


def demo_cases() -> list[DemoCase]:
    token = lambda: secrets.token_hex(25)  # noqa: E731 - fresh, never printed
    return [
        DemoCase(
            "number blocked, 25 stale notifications and 3 unsent messages",
            "number_blocked",
            InstanceSeed(id_instance=1101000001, api_token=token(), state="blocked", wid="79001234567@c.us",
                         notifications=25, outgoing_messages=3),
            clear_outgoing=True,
        ),
        DemoCase(
            "account changed, queue cleared 1 s ago: GREEN-API answers leftTime",
            "account_changed",
            InstanceSeed(id_instance=1101000002, api_token=token(), wid="79007654321@c.us", notifications=12,
                         cleared_before_first_call_seconds=1),  # however long the run takes to start
        ),
        DemoCase(
            "account changed, the count is wrong (says 0, 9 queued): the peek catches it",
            "account_changed",
            InstanceSeed(id_instance=1101000003, api_token=token(), wid="79005550000@c.us", notifications=9),
            # GREEN-API has been reported to answer 0 with notifications still queued.
            faults=({"method": "getWebhooksCount", "fault": {"kind": "json", "body": {"count": 0}}, "times": 1},),
        ),
    ]


def demo_emulator_config() -> EmulatorConfig:
    """The emulator with the demo's short windows (also `greenapi-migrate local`'s)."""
    return EmulatorConfig(clear_window_seconds=DEMO_TIMINGS.clear_interval_seconds,
                          count_refresh_seconds=DEMO_TIMINGS.count_refresh_seconds, max_receive_wait_seconds=0.5)


def _tell_runs_the_emulators_windows() -> None:
    """The runs learn the emulator's windows from the tests' and demo's variable (greenapi/timings.py), never from settings."""
    os.environ[EMULATOR_TIMINGS_ENV] = DEMO_TIMINGS.env()[EMULATOR_TIMINGS_ENV]


async def _run_all(server: EmulatorServer, cases: list[DemoCase]):
    from flows import handle_account_change
    from instances.blocks import GreenApiInstance

    for case in cases:
        await GreenApiInstance(
            api_url=server.url, id_instance=case.seed.id_instance, api_token_instance=case.seed.api_token
        ).asave(f"demo-{case.seed.id_instance}", overwrite=True)
    for case in cases:
        server.state.add_instance(case.seed)
        server.state.add_faults(case.seed.id_instance, case.faults)
    try:
        return await asyncio.gather(
            *(
                handle_account_change(
                    reason=case.reason, instance=f"demo-{case.seed.id_instance}",
                    clear_outgoing=case.clear_outgoing, return_state=True,
                )
                for case in cases
            )
        )
    finally:
        # The emulator goes away with the demo: blocks left pointing at it would fail every later sweep.
        for case in cases:
            await GreenApiInstance.adelete(f"demo-{case.seed.id_instance}")


def _ui_hint() -> str:
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    if PREFECT_API_URL.value():
        return f"See the runs, their task steps and the 'queue-reset-*' artifacts at {PREFECT_UI_URL.value() or PREFECT_API_URL.value()}/runs"
    return ("The runs went to the local Prefect database. To browse them: `.venv/bin/prefect server start`, then "
            "open http://127.0.0.1:4200/runs (each run has its task steps, logs and a 'queue-reset-*' artifact).")


def run_demo(as_json: bool = False) -> int:
    from cli.run import _report_of

    _tell_runs_the_emulators_windows()
    cases = demo_cases()
    with EmulatorServer(demo_emulator_config()) as server:
        print(f"GREEN-API emulator on {server.url} (clear window {DEMO_TIMINGS.clear_interval_seconds:.0f} s, "
              f"count refresh {DEMO_TIMINGS.count_refresh_seconds:.0f} s); starting {len(cases)} runs...", file=sys.stderr)
        states = asyncio.run(_run_all(server, cases))
        queues = {case.seed.id_instance: server.state.instance(case.seed.id_instance)["queue_length"] for case in cases}

    reports = [_report_of(state)[0] for state in states]
    if as_json:
        print(json.dumps([r.model_dump(mode="json") if r else None for r in reports]))
    else:
        print("\nQueue reset demo")
        for case, state, report in zip(cases, states, reports):
            print(f"\n- instance {case.seed.id_instance}: {case.story}")
            if report is None:
                print(f"  run {state.type.value}: {state.message}")
                continue
            print(f"  {state.type.value}: {report.outcome.value}: {report.message}")
            print(f"  count before {report.count_before}, after {report.count_after} ({report.verified_by}); "
                  f"{report.clear_attempts} clear call(s), waited {report.waited_seconds:.1f} s; "
                  f"emulator queue now {queues[case.seed.id_instance]}")
            for step in report.steps:
                print(f"    {step.step:<22} {step.result}  ({step.seconds:.2f} s)")
        print("\n" + _ui_hint())
    return 0 if all(r is not None and r.verified_empty for r in reports) else 1
