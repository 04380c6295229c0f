"""Runs the product's sweep (inline hand-over) in its own process and prints its measurements as JSON."""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time


def main() -> None:
    max_concurrency = int(sys.argv[1])
    imported = time.perf_counter()
    from flows import sweep_instances

    started = time.perf_counter()
    state = asyncio.run(sweep_instances(max_concurrency=max_concurrency, handle="inline", return_state=True))
    wall = time.perf_counter() - started
    report = state.result(raise_on_failure=False)
    findings = getattr(report, "findings", [])
    print(json.dumps({
        "wall_seconds": wall,
        "import_seconds": started - imported,
        "state": state.type.value,
        "state_message": state.message,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "affected": sum(1 for f in findings if f.reason),
        "verified": sum(1 for f in findings if f.outcome == "completed"),
    }))


if __name__ == "__main__":
    main()
