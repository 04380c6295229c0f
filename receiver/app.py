"""The receiver's ASGI app: authenticated, validated HTTP in, one Prefect event out.

Routes (receiver/routes.py; the decisions behind them are receiver/service.py)
- ``POST /webhooks/greenapi``   GREEN-API webhook bodies, forwarded as-is.
- ``POST /events/queue-reset``  other systems: ``{"idInstance", "reason", "source", "note", "deliveryId"}``.
- ``GET  /health``              no authentication.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Callable

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from receiver.dedup import TTLCache
from receiver.dispatch import BackgroundDispatcher
from receiver.emitter import Emitter, PrefectEventEmitter
from receiver.models import GreenApiWebhook, QueueResetRequest
from receiver.registry import InstanceRegistry, PrefectInstanceRegistry
from receiver.routes import router
from receiver.service import ReportService, WidStore
from receiver.settings import ReceiverSettings

__all__ = ["create_app", "WidStore"]

DESCRIPTION = (
    "Turns authenticated, validated HTTP into Prefect events (`greenapi.instance.number-blocked`, "
    "`greenapi.instance.account-changed`) on the resource `greenapi.instance.<idInstance>`. "
    "Deployment triggers turn those events into runs of `handle-account-change`."
)


def create_app(
    settings: ReceiverSettings,
    *,
    emitter: Emitter | None = None,
    wid_store: WidStore | None = None,
    clock: Callable[[], float] | None = None,
    dispatcher: BackgroundDispatcher | None = None,
    registry: InstanceRegistry | None = None,
) -> FastAPI:
    """Build the receiver. ``settings.secret`` is required (ReceiverConfigurationError otherwise).

    ``emitter`` defaults to a :class:`PrefectEventEmitter` (opened in the lifespan, using the
    PREFECT_API_URL in effect); ``wid_store`` to Prefect Variables; ``clock`` (monotonic seconds)
    drives the duplicate cache's expiry. With ``settings.dispatch == "background"``, ``dispatcher``
    (default: a :class:`BackgroundDispatcher`) hands each report to a task worker. ``registry`` says which
    instances are registered (default: the greenapi-instance blocks on the Prefect server, cached for
    ``settings.registry_ttl_seconds``); reports for any other instance start nothing.
    """
    settings.require_secret()
    emitter = emitter if emitter is not None else PrefectEventEmitter()
    if settings.dispatch != "background":
        dispatcher = None
    elif dispatcher is None:
        dispatcher = BackgroundDispatcher()
    service = ReportService(
        emitter=emitter,
        wids=wid_store or WidStore(),
        registry=registry if registry is not None else PrefectInstanceRegistry(ttl_seconds=settings.registry_ttl_seconds),
        seen=TTLCache(settings.dedup_ttl_seconds, settings.dedup_max_entries, **({"clock": clock} if clock else {})),
        dispatcher=dispatcher,
    )
    app = FastAPI(title="greenapi-queue-reset receiver", version="1", description=DESCRIPTION,
                  lifespan=_lifespan, docs_url=None, redoc_url=None)
    app.state.settings, app.state.service = settings, service
    app.include_router(router)
    app.openapi = partial(_openapi, app)  # type: ignore[method-assign]
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI):
    emitter = app.state.service.emitter
    await emitter.start()
    try:
        yield
    finally:
        await emitter.close()


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
