"""The receiver's ASGI app: authenticated, validated HTTP in, one Prefect event out.

Routes
- ``POST /webhooks/greenapi``   GREEN-API webhook bodies, forwarded as-is.
- ``POST /events/queue-reset``  other systems: ``{"idInstance", "reason", "source", "note", "deliveryId"}``.
- ``GET  /health``              no authentication.

Order of checks on the POST routes: bearer token (401, the body is not read), body size (413),
JSON (400), schema (422), whether the instance is registered (a greenapi-instance block), then the
decision and the emit (200 on the GREEN-API endpoint, 202 on the other; 503 when Prefect did not take it).
Error bodies never echo the request's values (an unknown instance is named by its validated idInstance).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import uuid as uuid_module
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable, TypeVar, Union

from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError

from receiver.dedup import TTLCache
from receiver.dispatch import BackgroundDispatcher, DispatchError
from receiver.emitter import Emitter, EmitError, PrefectEventEmitter
from receiver.events import EVENT_NAMES, build_event, event_id_for, request_key, webhook_key
from receiver.models import Accepted, ErrorBody, GreenApiWebhook, Health, Ignored, QueueResetRequest
from receiver.registry import InstanceRegistry, PrefectInstanceRegistry
from receiver.settings import ReceiverSettings
from domain.changes import reason_for
from tasks import accounts
from domain import Reason
from tasks.credentials import BLOCK_TYPE_SLUG

logger = logging.getLogger("greenapi.receiver")

M = TypeVar("M", bound=BaseModel)

STATE_INSTANCE_CHANGED = "stateInstanceChanged"
RETRY_AFTER_SECONDS = "5"


@dataclass
class WidStore:
    """What the receiver remembers per instance, on the Prefect server by default (Variables, tasks.accounts):
    the last account (wid), and the reports already handed over, so a re-delivery after a restart starts nothing."""

    last_seen: Callable[[int], Awaitable[str | None]] = accounts.last_seen_wid
    record: Callable[[int, str], Awaitable[None]] = accounts.record_wid
    report_handled: Callable[[int, str], Awaitable[bool]] = accounts.report_already_handled
    remember_report: Callable[[int, str], Awaitable[None]] = accounts.remember_report
    forget_report: Callable[[int, str], Awaitable[None]] = accounts.forget_report


@dataclass(frozen=True)
class _Seen:
    event: str
    id_instance: int
    reason: Reason
    task_run_id: str | None = None


class _Unavailable(Exception):
    """Prefect did not answer; the sender should re-send (503)."""


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body is not JSON."},
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token (nothing was read or emitted)."},
    413: {"model": ErrorBody, "description": "The body is larger than `max_body_bytes`."},
    422: {"model": ErrorBody, "description": "The body does not match the schema; each error names the field, never its value."},
    503: {"model": ErrorBody, "description": "Prefect did not take the event; re-send (the event id stays the same)."},
}


def _json_body_of(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
        }
    }


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
    secret = settings.require_secret()
    emitter = emitter if emitter is not None else PrefectEventEmitter()
    wids = wid_store or WidStore()
    registry = registry if registry is not None else PrefectInstanceRegistry(ttl_seconds=settings.registry_ttl_seconds)
    if settings.dispatch == "background" and dispatcher is None:
        dispatcher = BackgroundDispatcher()
    elif settings.dispatch != "background":
        dispatcher = None
    seen: TTLCache[_Seen] = TTLCache(settings.dedup_ttl_seconds, settings.dedup_max_entries, **({"clock": clock} if clock else {}))
    decide_lock = asyncio.Lock()  # one decision at a time: duplicate check, wid read, emit, wid record
    max_body = settings.max_body_bytes

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await emitter.start()
        try:
            yield
        finally:
            await emitter.close()

    app = FastAPI(
        title="greenapi-queue-reset receiver",
        version="1",
        description=(
            "Turns authenticated, validated HTTP into Prefect events (`greenapi.instance.number-blocked`, "
            "`greenapi.instance.account-changed`) on the resource `greenapi.instance.<idInstance>`. "
            "Deployment triggers turn those events into runs of `handle-account-change`."
        ),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.emitter = emitter
    app.state.seen = seen

    bearer = HTTPBearer(
        auto_error=False,
        scheme_name="bearerAuth",
        description="`Authorization: Bearer <GREEN_API_RECEIVER_SECRET>`; GREEN-API sends its webhookUrlToken this way.",
    )

    async def require_bearer(credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> None:
        # Header values arrive latin-1 decoded; encoding back gives the bytes that were sent.
        supplied = credentials.credentials.encode("latin-1", "replace") if credentials is not None else b""
        if not hmac.compare_digest(supplied, secret):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    async def read_json(request: Request) -> Any:
        length = request.headers.get("content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                raise HTTPException(status_code=400, detail="invalid Content-Length") from None
            if declared > max_body:
                raise HTTPException(status_code=413, detail=f"body larger than {max_body} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                raise HTTPException(status_code=413, detail=f"body larger than {max_body} bytes")
        try:
            data = json.loads(bytes(body).decode("utf-8"))
            # JSON may escape a lone UTF-16 surrogate ("\ud800"): not text, and it cannot be encoded on
            # (an event id, an error body, Prefect's JSON), so the body is refused here like invalid UTF-8.
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeDecodeError:
            raise HTTPException(status_code=400, detail="malformed JSON: the body is not UTF-8") from None
        except UnicodeEncodeError:
            raise HTTPException(status_code=400, detail="malformed JSON: a string holds an unpaired surrogate escape") from None
        except json.JSONDecodeError as exc:
            raise HTTPException(status_code=400, detail=f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        except RecursionError:
            raise HTTPException(status_code=400, detail="malformed JSON: nested too deeply") from None
        except ValueError:  # e.g. an integer literal longer than Python converts (4300 digits)
            raise HTTPException(status_code=400, detail="malformed JSON: a number is too long") from None
        return data

    def validate(model: type[M], data: Any) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            errors = [
                {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
                for error in exc.errors(include_input=False, include_url=False, include_context=False)
            ]
            raise HTTPException(status_code=422, detail=errors) from None

    def accepted(event_id: str, seen_as: _Seen, duplicate: bool, status_code: int = 202) -> JSONResponse:
        body = Accepted(eventId=event_id, event=seen_as.event, idInstance=seen_as.id_instance, reason=seen_as.reason,
                        duplicate=duplicate, taskRunId=seen_as.task_run_id)
        return JSONResponse(status_code=status_code, content=body.model_dump(mode="json", exclude_none=True))

    def webhook_accepted(event_id: str, seen_as: _Seen, duplicate: bool) -> JSONResponse:
        # GREEN-API re-sends every minute for 24 h whatever is not answered 200 (a 202 included).
        return accepted(event_id, seen_as, duplicate, status_code=200)

    async def registered(id_instance: int) -> bool:
        return await prefect_call(registry.is_registered(id_instance), "reading the registered instances")

    def ignored(why: str) -> JSONResponse:
        return JSONResponse(status_code=200, content=Ignored(why=why).model_dump(mode="json"))

    def unavailable(what: str) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": f"{what}; re-send later"}, headers={"Retry-After": RETRY_AFTER_SECONDS})

    async def emit(event_id: str, event, seen_as: _Seen) -> None:
        try:
            await emitter.emit(event)
        except EmitError as exc:
            logger.warning("receiver: event %s for instance %s not emitted: %s", event_id, seen_as.id_instance, exc)
            raise _Unavailable("Prefect did not take the event") from None
        logger.info("receiver: emitted %s %s for instance %s", seen_as.event, event_id, seen_as.id_instance)

    async def report(event_id: uuid_module.UUID, seen_as: _Seen, **event_fields: Any) -> _Seen | None:
        """Hand the report over (to a task worker, or to the trigger through the event); None when it was
        handed over before, by this process or another one since."""
        id_instance, key = seen_as.id_instance, str(event_id)
        if await prefect_call(wids.report_handled(id_instance, key), "reading the reports handled"):
            return None
        task_run_id = None
        if dispatcher is not None:
            # Remembered first: a re-delivery racing this one must find it. Forgotten again if the hand-over fails.
            await prefect_call(wids.remember_report(id_instance, key), "remembering the report")
            try:
                task_run_id = await dispatcher.dispatch(event_id=event_id, id_instance=id_instance, reason=seen_as.reason)
            except DispatchError as exc:
                logger.warning("receiver: report for instance %s not handed over: %s", id_instance, exc)
                await prefect_call(wids.forget_report(id_instance, key), "forgetting the report")
                raise _Unavailable("Prefect did not take the report") from None
        event = build_event(event_id=event_id, id_instance=id_instance, reason=seen_as.reason, task_run_id=task_run_id, **event_fields)
        done = replace(seen_as, event=event.event, task_run_id=str(task_run_id) if task_run_id else None)
        await emit(key, event, done)
        if dispatcher is None:  # the trigger starts the run once the event is in: remembered only now
            await prefect_call(wids.remember_report(id_instance, key), "remembering the report")
        return done

    async def prefect_call(awaitable: Awaitable, what: str):
        try:
            return await awaitable
        except Exception as exc:
            logger.warning("receiver: %s failed: %s", what, type(exc).__name__)
            raise _Unavailable(f"Prefect did not answer ({what})") from None

    responses_post = {202: {"model": Accepted, "description": "Emitted (or emitted before: `duplicate`)."}, **_ERROR_RESPONSES}

    @app.post(
        "/webhooks/greenapi",
        summary="Receive a GREEN-API webhook",
        description=(
            "Point the instance's `webhookUrl` here and set `webhookUrlToken` to the receiver's secret. "
            "`stateInstanceChanged` with `blocked` emits `greenapi.instance.number-blocked`; with `authorized` and "
            "another account (`instanceData.wid`) than last recorded, `greenapi.instance.account-changed`. "
            "Every webhook GREEN-API sends is answered **200** (GREEN-API re-sends anything else every minute for 24 h): "
            "the `Accepted` body when it was handed over, `ignored` when it needs no action, the instance is not "
            "registered (a warning is logged), or the type is one this receiver does not act on."
        ),
        status_code=200,
        response_model=Union[Accepted, Ignored],
        responses={
            200: {"description": "Accepted (handed over, or before: `duplicate`), or `ignored` (nothing started)."},
            **{code: value for code, value in _ERROR_RESPONSES.items()},
        },
        dependencies=[Depends(require_bearer)],
        openapi_extra=_json_body_of(GreenApiWebhook),
        tags=["events"],
    )
    async def greenapi_webhook(request: Request):
        hook = validate(GreenApiWebhook, await read_json(request))
        if hook.typeWebhook != STATE_INSTANCE_CHANGED:
            return ignored(f"only {STATE_INSTANCE_CHANGED} webhooks are acted on")
        state, id_instance, wid = hook.stateInstance, hook.instanceData.idInstance, hook.instanceData.wid
        if state not in ("blocked", "authorized"):
            return ignored("only the blocked and authorized states are acted on")
        if state == "authorized" and not wid:
            return ignored("authorized without an account (instanceData.wid)")
        uuid = event_id_for(webhook_key(hook))
        event_id = str(uuid)
        try:
            if not await registered(id_instance):
                # 200 all the same: GREEN-API would re-send anything else for 24 hours.
                logger.warning("receiver: %s webhook (%s) for instance %s ignored: no %s block is registered for it",
                               STATE_INSTANCE_CHANGED, state, id_instance, BLOCK_TYPE_SLUG)
                return ignored(f"instance not registered (no {BLOCK_TYPE_SLUG} block): nothing started")
            async with decide_lock:
                before = seen.get(event_id)
                if before is not None:
                    return webhook_accepted(event_id, before, duplicate=True)
                if state == "blocked":
                    reason = Reason.number_blocked
                else:
                    recorded = await prefect_call(wids.last_seen(id_instance), "reading the last account")
                    reason = reason_for(state, wid, recorded)
                    if reason is None:
                        await prefect_call(wids.record(id_instance, wid), "recording the account")
                        return ignored("first account seen on this instance: recorded" if recorded is None else "account unchanged")
                first = _Seen(EVENT_NAMES[reason], id_instance, reason)
                seen_as = await report(uuid, first, delivery="greenapi-webhook", source="green-api", wid=wid, state_instance=state)
                if seen_as is None:
                    seen.add(event_id, first)
                    return webhook_accepted(event_id, first, duplicate=True)
                if state == "authorized":
                    # After the emit: a failed emit must leave the old account recorded, or the re-sent
                    # webhook would look unchanged. A failure here answers 503; the re-sent webhook
                    # carries the same event id, which Prefect's server de-duplicates.
                    await prefect_call(wids.record(id_instance, wid), "recording the account")
                seen.add(event_id, seen_as)
                return webhook_accepted(event_id, seen_as, duplicate=False)
        except _Unavailable as exc:
            return unavailable(str(exc))

    @app.post(
        "/events/queue-reset",
        summary="Ask for an instance's notification queue to be reset",
        description=(
            "Emits `greenapi.instance.number-blocked` or `greenapi.instance.account-changed` for `idInstance`. "
            "Re-sending the same request (same `deliveryId`, or the same body without one) returns the same `eventId` "
            "with `duplicate: true` and emits nothing."
        ),
        status_code=202,
        response_model=Accepted,
        responses=responses_post,
        dependencies=[Depends(require_bearer)],
        openapi_extra=_json_body_of(QueueResetRequest),
        tags=["events"],
    )
    async def queue_reset(request: Request):
        body = validate(QueueResetRequest, await read_json(request))
        uuid = event_id_for(request_key(body))
        event_id = str(uuid)
        seen_as = _Seen(EVENT_NAMES[body.reason], body.idInstance, body.reason)
        try:
            if not await registered(body.idInstance):
                logger.warning("receiver: queue-reset request for instance %s refused: no %s block is registered for it",
                               body.idInstance, BLOCK_TYPE_SLUG)
                # The idInstance is a validated integer: naming it echoes nothing a caller could inject.
                return JSONResponse(status_code=422, content={"detail": [{
                    "loc": ["idInstance"], "type": "unknown_instance",
                    "msg": f"instance {body.idInstance} is not registered (no {BLOCK_TYPE_SLUG} block)",
                }]})
            async with decide_lock:
                before = seen.get(event_id)
                if before is not None:
                    return accepted(event_id, before, duplicate=True)
                done = await report(uuid, seen_as, delivery="api", source=body.source, note=body.note)
                if done is None:
                    seen.add(event_id, seen_as)
                    return accepted(event_id, seen_as, duplicate=True)
                seen_as = done
                seen.add(event_id, seen_as)
                return accepted(event_id, seen_as, duplicate=False)
        except _Unavailable as exc:
            return unavailable(str(exc))

    @app.get("/health", response_model=Health, summary="Liveness; no authentication", tags=["health"])
    async def health() -> Health:
        return Health(prefect_events="connected" if emitter.connected else "disconnected")

    def openapi() -> dict[str, Any]:
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

    app.openapi = openapi  # type: ignore[method-assign]
    return app
