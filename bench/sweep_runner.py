"""Runs the product's sweep (inline hand-over) in its own process and prints its measurements as JSON.

`python -m bench.sweep_runner MAX_CONCURRENCY`, with PREFECT_API_URL pointing at the benchmark's server.
The last stdout line: wall, final state, this process's own peak memory (VmHWM), and per instance what the
sweep itself reported: affected, verified (its runbook completed), could not be checked. A Failed sweep
(SweepIncomplete: some instance could not be checked) returns no report, so the findings are then read
from its sweep-report artifact, through Prefect's client (its rows: the instances that needed a look).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time

from bench.memory import own_peak_mb


def _findings_from_report(report) -> list[dict]:
    return [{"id": f.id_instance, "affected": f.reason is not None, "error": f.error, "outcome": str(f.outcome) if f.outcome else None}
            for f in report.findings]


async def _findings_from_artifact(flow_run_id) -> tuple[int, list[dict]]:
    """The sweep-report artifact: how many were checked (its title), and its rows (the instances that needed a look:
    | instance<br>block | finding | action | error | state, wid (before) |)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    async with get_client() as client:
        artifacts = await client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["sweep-report"]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    checked, findings = 0, []
    for artifact in artifacts[:1]:
        lines = str(artifact.data).splitlines()
        title = re.match(r"# Sweep: (\d+) checked, (\d+) could not", lines[0]) if lines else None
        checked = int(title.group(1)) + int(title.group(2)) if title else 0
        for line in lines:
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if len(cells) != 5 or not cells[0][:1].isdigit():
                continue
            finding, action, error = cells[1], visible(cells[2]), visible(cells[3]) or None
            findings.append({"id": int(cells[0].split("<br>")[0]), "affected": finding in ("number_blocked", "account_changed"),
                             "error": error if finding == "not checked" else None,
                             "outcome": action.split(": ", 1)[1] if ": " in action else None})
    return checked, findings


def visible(cell: str) -> str:
    from flows.sweep_instances import visible_lines

    return " ".join(visible_lines(cell)).strip()


def main() -> None:
    max_concurrency = int(sys.argv[1])
    imported = time.perf_counter()
    from flows import sweep_instances
    from flows.sweep_instances import SweepReport

    started = time.perf_counter()
    state = asyncio.run(sweep_instances(max_concurrency=max_concurrency, handle="inline", return_state=True))
    wall = time.perf_counter() - started
    report = state.result(raise_on_failure=False)
    if isinstance(report, SweepReport):
        findings, source = _findings_from_report(report), "result"
        checked = len(findings)
    else:
        checked, findings = asyncio.run(_findings_from_artifact(state.state_details.flow_run_id))
        source = "sweep-report artifact"
    affected = [f for f in findings if f["affected"]]
    errors = sorted({f["error"] for f in findings if f["error"]})
    print(json.dumps({
        "wall_seconds": wall,
        "import_seconds": started - imported,
        "state": state.type.value,
        "state_message": state.message,
        "peak_memory_mb": own_peak_mb(),  # this process's VmHWM
        "findings_from": source,
        "checked": checked,
        "affected": len(affected),
        "verified": sum(1 for f in affected if f["outcome"] == "completed"),
        "affected_ids": sorted(f["id"] for f in affected),
        "not_checked_ids": sorted(f["id"] for f in findings if f["error"]),
        "check_errors": errors[:10],
    }))


if __name__ == "__main__":
    main()
