"""The receiver's ASGI app: authenticated, validated HTTP in, one Prefect event out.

Routes (receiver/routes.py; the decisions behind them are receiver/service.py)
- ``POST /webhooks/greenapi``   GREEN-API webhook bodies, forwarded as-is.
- ``POST /events/queue-reset``  other systems: ``{"idInstance", "reason", "source", "note", "deliveryId"}``.
- ``GET  /health``              no authentication.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Awaitable, Callable

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from receiver.dedup import TTLCache
from receiver.dispatch import BackgroundDispatcher
from receiver.emitter import Emitter, PrefectEventEmitter
from receiver.models import GreenApiWebhook, QueueResetRequest
from receiver.registry import InstanceRegistry, PrefectCredentials, PrefectInstanceRegistry
from receiver.relay import AccountChecker, AccountWatch, Forwarder, HeldBackLedger, Relay, RelayAnswer, RelayCounters
from receiver.routes import router, unavailable
from receiver.service import ReportService, Unavailable, WidStore
from receiver.settings import ReceiverLimits, ReceiverSettings

__all__ = ["create_app", "WidStore"]

logger = logging.getLogger("greenapi.receiver")

DESCRIPTION = (
    "Turns authenticated, validated HTTP into Prefect events (`greenapi.instance.number-blocked`, "
    "`greenapi.instance.account-changed`) on the resource `greenapi.instance.<idInstance>`. "
    "Deployment triggers turn those events into runs of `handle-account-change`."
)


def create_app(
    settings: ReceiverSettings,
    *,
    limits: ReceiverLimits = ReceiverLimits(),
    emitter: Emitter | None = None,
    wid_store: WidStore | None = None,
    clock: Callable[[], float] | None = None,
    dispatcher: BackgroundDispatcher | None = None,
    registry: InstanceRegistry | None = None,
    account_checker: AccountChecker | None = None,
    held_back_flush: Callable[[int, int], Awaitable[None]] | None = None,
) -> FastAPI:
    """Build the receiver. ``settings.secret`` is required (ReceiverConfigurationError otherwise).

    ``emitter`` defaults to a :class:`PrefectEventEmitter` (opened in the lifespan, using the
    PREFECT_API_URL in effect); ``wid_store`` to Prefect Variables; ``clock`` (monotonic seconds)
    drives the duplicate cache's expiry. ``dispatcher`` (``--dispatch background``) hands each report to a task
    worker; without one the event alone is emitted and the deployment's trigger starts the run. ``registry`` says which
    instances are registered (default: the greenapi-instance blocks on the Prefect server, cached for
    ``limits.registry_ttl_seconds``); reports for any other instance start nothing.

    With ``settings.forward_url`` the GREEN-API endpoint is a relay (receiver/relay.py): ``account_checker`` asks
    GetSettings (default: the instance's greenapi-instance block), ``held_back_flush(id, count)`` records held-back
    counts (default: an event and the instance's Variable on the Prefect server).
    """
    settings.require_secret()
    emitter = emitter if emitter is not None else PrefectEventEmitter()
    service = ReportService(
        emitter=emitter,
        wids=wid_store or WidStore(),
        registry=registry if registry is not None else PrefectInstanceRegistry(ttl_seconds=limits.registry_ttl_seconds),
        seen=TTLCache(limits.dedup_ttl_seconds, limits.dedup_max_entries, **({"clock": clock} if clock else {})),
        dispatcher=dispatcher,
        relay=settings.forward_url is not None,
    )
    app = FastAPI(title="greenapi-queue-reset receiver", version="1", description=DESCRIPTION,
                  lifespan=_lifespan, docs_url=None, redoc_url=None)
    app.state.settings, app.state.limits, app.state.service = settings, limits, service
    app.state.relay = _relay(settings, limits, service, account_checker, held_back_flush) if settings.forward_url else None
    app.include_router(router)
    app.add_middleware(_StoppingAnswers503)
    app.openapi = partial(_openapi, app)  # type: ignore[method-assign]
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI):
    emitter = app.state.service.emitter
    await emitter.start()
    # Everything loaded by now (Prefect, FastAPI: hundreds of thousands of objects) lives as long as the process:
    # out of the collector's sight, a full collection no longer walks it, a pause of tens of ms at a notification.
    gc.freeze()
    try:
        yield
    finally:
        if app.state.relay is not None:
            await app.state.relay.close()
        await emitter.close()


class _StoppingAnswers503:
    """A request still running when the server's shutdown grace ends is cancelled, and uvicorn would answer it 500.
    It is answered 503 with Retry-After instead, as any report Prefect did not take: the sender re-sends it, and a
    re-send of one that got through is a duplicate with the same event id."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def watched_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except asyncio.CancelledError:
            if started:
                raise
            logger.warning("receiver: stopping: a request still running was answered 503 (its sender re-sends it)")
            await unavailable("the receiver is stopping")(scope, receive, send)


def _relay(settings: ReceiverSettings, limits: ReceiverLimits, service: ReportService, checker: AccountChecker | None,
           flush: Callable[[int, int], Awaitable[None]] | None) -> Relay:
    counters = RelayCounters()

    async def on_new_account(id_instance: int, wid: str) -> bool:
        counters.prefect_calls += 1
        return not isinstance(await service.account_observed(id_instance, wid), Unavailable)

    async def state_webhook(hook: GreenApiWebhook) -> RelayAnswer | None:
        decision = await service.webhook(hook)
        if isinstance(decision, Unavailable):  # not forwarded either: GREEN-API sends it again, the app gets it once
            return RelayAnswer(503, {"detail": f"{decision.what}; re-send later"})
        return None

    watch = AccountWatch(checker or _block_checker(counters), counters, on_new_account=on_new_account)
    ledger = HeldBackLedger(flush or partial(_record_held_back, service.emitter), counters)
    forwarder = Forwarder(settings.forward_url, settings.forward_token, limits.forward_timeout_seconds)
    return Relay(forwarder, watch, ledger, counters, state_webhook)


def _block_checker(counters: RelayCounters) -> AccountChecker:
    """GetSettings with each instance's greenapi-instance block: a short timeout, one retry, a connection of its own
    per instance (one pool for all would be scanned whole on every request), one TLS context for all."""
    import httpx

    from greenapi import ClientConfig, GreenAPIClient

    credentials = PrefectCredentials()
    config = ClientConfig(max_retries=1, timeout_seconds=10.0)
    tls = httpx.create_ssl_context()

    async def credentials_of(id_instance: int):
        before = credentials.reads
        try:
            return await credentials.get(id_instance)
        finally:
            counters.prefect_calls += credentials.reads - before

    return AccountChecker(credentials_of, lambda found: GreenAPIClient(
        found, config, transport=httpx.AsyncHTTPTransport(verify=tls, limits=httpx.Limits(max_connections=1))))


async def _record_held_back(emitter: Emitter, id_instance: int, count: int) -> None:
    from uuid import uuid4

    from prefect.events import Event

    from instances.events import instance_resource
    from instances.memory import add_held_back

    total = await add_held_back(id_instance, count)
    await emitter.emit(Event(id=uuid4(), event="greenapi.relay.held-back", resource=instance_resource(id_instance),
                             payload={"id_instance": id_instance, "held_back": count, "total": total}))


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's description, with the request bodies' schemas (read by hand, so not derived from a parameter)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (GreenApiWebhook, QueueResetRequest):
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, definition in model_schema.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components[model.__name__] = model_schema
        app.openapi_schema = schema
    return app.openapi_schema
