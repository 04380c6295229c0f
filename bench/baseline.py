"""What an operator would write without Prefect: plain asyncio + httpx, the same API calls, the same bound.

`python -m bench.baseline SPEC.json`. Checks every instance (GetStateInstance, GetSettings); for each blocked or changed one: clear (waiting
out leftTime), wait for the count refresh, verify (GetWebhooksCount, and a peek when no webhookUrl).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx

COUNT_REFRESH_SECONDS = 10.0
LEFT_TIME_MARGIN_SECONDS = 0.5


async def sweep(api_url: str, instances: list[dict], recorded_wids: dict[int, str], max_concurrency: int) -> dict:
    slots = asyncio.Semaphore(max_concurrency)
    limits = httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:

        async def call(verb: str, id_instance: int, token: str, method: str, **params):
            async with slots:
                response = await http.request(verb, f"{api_url}/waInstance{id_instance}/{method}/{token}", params=params or None)
            response.raise_for_status()
            return response.json()

        async def one(instance: dict) -> dict:
            iid, token = instance["id_instance"], instance["api_token"]
            try:
                state = (await call("GET", iid, token, "getStateInstance"))["stateInstance"]
                settings = await call("GET", iid, token, "getSettings")
            except httpx.HTTPError as exc:  # this instance could not be checked; the others go on
                return {"id": iid, "affected": False, "error": type(exc).__name__}
            recorded = recorded_wids.get(iid)
            affected = state == "blocked" or (state == "authorized" and recorded and settings["wid"] != recorded)
            if not affected:
                return {"id": iid, "affected": False}
            while True:
                answer = await call("DELETE", iid, token, "clearWebhooksQueue")
                if answer.get("isCleared"):
                    break
                if answer.get("leftTime") is None:
                    return {"id": iid, "affected": True, "verified": False}
                await asyncio.sleep(answer["leftTime"] + LEFT_TIME_MARGIN_SECONDS)
            await asyncio.sleep(COUNT_REFRESH_SECONDS)
            count = (await call("GET", iid, token, "getWebhooksCount"))["count"]
            peeked_empty = True
            if not settings.get("webhookUrl"):
                peeked_empty = (await call("GET", iid, token, "receiveNotification", receiveTimeout=5)) is None
            return {"id": iid, "affected": True, "verified": count == 0 and peeked_empty}

        started = time.perf_counter()
        results = await asyncio.gather(*(one(i) for i in instances))
        return {"wall_seconds": time.perf_counter() - started, "results": results}


def main() -> None:
    spec = json.load(open(sys.argv[1]))
    outcome = asyncio.run(sweep(spec["api_url"], spec["instances"], {int(k): v for k, v in spec["recorded_wids"].items()}, spec["max_concurrency"]))
    from bench.memory import own_peak_mb

    outcome["peak_memory_mb"] = own_peak_mb()  # this process's VmHWM
    results = outcome.pop("results")
    affected = [r for r in results if r["affected"]]
    outcome.update(affected=len(affected), verified=sum(1 for r in affected if r["verified"]),
                   affected_ids=sorted(r["id"] for r in affected),
                   not_checked_ids=sorted(r["id"] for r in results if r.get("error")))
    print(json.dumps(outcome))


if __name__ == "__main__":
    main()
