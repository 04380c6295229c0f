"""The receiver's HTTP side: authenticate, read and validate the body, ask the service, answer.

Order of checks on the POST routes: bearer token (401, the body is not read), body size (413),
JSON (400), schema (422), then the service's decision (200 on the GREEN-API endpoint, 202 on the
other; 503 + Retry-After when Prefect did not take it). Error bodies never echo the request's values
(an unknown instance is named by its validated idInstance).
"""

from __future__ import annotations

import hmac
import json
from dataclasses import asdict
from typing import Annotated, Any, TypeVar, Union

from fastapi import APIRouter, Depends, HTTPException, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError

from receiver import models
from receiver.service import Accepted, Decision, Ignored, ReportService, Unavailable, Unregistered
from instances.blocks import BLOCK_TYPE_SLUG

M = TypeVar("M", bound=BaseModel)

RETRY_AFTER_SECONDS = "5"

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": models.ErrorBody, "description": "The body is not JSON."},
    401: {"model": models.ErrorBody, "description": "Missing or wrong bearer token (nothing was read or emitted)."},
    413: {"model": models.ErrorBody, "description": "The body is larger than the receiver accepts."},
    422: {"model": models.ErrorBody, "description": "The body does not match the schema; each error names the field, never its value."},
    503: {"model": models.ErrorBody, "description": "Prefect did not take the event; re-send (the event id stays the same)."},
}

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    description="`Authorization: Bearer <GREEN_API_RECEIVER_SECRET>`; GREEN-API sends its webhookUrlToken this way.",
)


async def require_bearer(request: Request, credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> None:
    secret = request.app.state.settings.require_secret()
    # Header values arrive latin-1 decoded; encoding back gives the bytes that were sent.
    supplied = credentials.credentials.encode("latin-1", "replace") if credentials is not None else b""
    if not hmac.compare_digest(supplied, secret):
        raise HTTPException(status_code=401, detail="missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


async def _service(request: Request) -> ReportService:  # async: a plain def would cost a thread hop per request
    return request.app.state.service


Service = Annotated[ReportService, Depends(_service)]


async def read_body(request: Request, max_body: int) -> bytes:
    """The body, refused (413) as soon as it is known to exceed ``max_body``: declared or read."""
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
    return bytes(body)


def parse_json(body: bytes) -> Any:
    try:
        data = json.loads(body.decode("utf-8"))
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


async def read_model(request: Request, model: type[M]) -> M:
    """The body as ``model``: 413, 400 or 422 (each error names the field, never its value) otherwise."""
    data = parse_json(await read_body(request, request.app.state.limits.max_body_bytes))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
            for error in exc.errors(include_input=False, include_url=False, include_context=False)
        ]
        raise HTTPException(status_code=422, detail=errors) from None


def answer(decision: Decision, *, accepted_status: int) -> JSONResponse:
    """The HTTP answer to a decision; Unregistered is answered by each route itself."""
    if isinstance(decision, Accepted):
        report = decision.report
        body = models.Accepted(eventId=report.event_id, event=report.event, idInstance=report.id_instance, reason=report.reason,
                               duplicate=decision.duplicate, taskRunId=report.task_run_id)
        return JSONResponse(status_code=accepted_status, content=body.model_dump(mode="json", exclude_none=True))
    if isinstance(decision, Ignored):
        return JSONResponse(status_code=200, content=models.Ignored(why=decision.why).model_dump(mode="json"))
    if isinstance(decision, Unavailable):
        return unavailable(decision.what)
    raise TypeError(f"no answer for {decision!r}")


def unavailable(what: str) -> JSONResponse:
    """503 with Retry-After: not taken now, the sender re-sends."""
    return JSONResponse(status_code=503, content={"detail": f"{what}; re-send later"}, headers={"Retry-After": RETRY_AFTER_SECONDS})


def _json_body_of(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
        }
    }


router = APIRouter()


@router.post(
    "/webhooks/greenapi",
    summary="Receive a GREEN-API webhook",
    description=(
        "Point the instance's `webhookUrl` here and set `webhookUrlToken` to the receiver's secret. "
        "`stateInstanceChanged` with `blocked` emits `greenapi.instance.number-blocked`; with `authorized` and "
        "another account (`instanceData.wid`) than last recorded, `greenapi.instance.account-changed`. "
        "Every webhook GREEN-API sends is answered **200** (GREEN-API re-sends anything else every minute for 24 h): "
        "the `Accepted` body when it was handed over, `ignored` when it needs no action, the instance is not "
        "registered (a warning is logged), or the type is one this receiver does not act on. "
        "As a relay (`GREEN_API_RECEIVER_FORWARD_URL` set) every body, even one that is not JSON, goes on unchanged to "
        "the app: 200 `{\"status\": \"forwarded\"}` once the app answered 2xx, 502 (the app refused or is unreachable) "
        "or 504 (no answer in time) otherwise, so GREEN-API sends it again; 200 `{\"status\": \"held_back\"}` for a "
        "notification of an account no longer on the instance (not forwarded)."
    ),
    status_code=200,
    response_model=Union[models.Accepted, models.Ignored],
    responses={
        200: {"description": "Accepted (handed over, or before: `duplicate`), or `ignored` (nothing started)."},
        **ERROR_RESPONSES,
    },
    dependencies=[Depends(require_bearer)],
    openapi_extra=_json_body_of(models.GreenApiWebhook),
    tags=["events"],
)
async def greenapi_webhook(request: Request, service: Service):
    relay = request.app.state.relay
    if relay is not None:  # every body goes on to the app; GREEN-API hears the app's answer (receiver/relay.py)
        body = await read_body(request, request.app.state.limits.max_body_bytes)
        relayed = await relay.handle(body, request.headers.get("content-type"))
        return JSONResponse(status_code=relayed.status, content=relayed.body)
    decision = await service.webhook(await read_model(request, models.GreenApiWebhook))
    if isinstance(decision, Unregistered):
        # 200 all the same: GREEN-API would re-send anything else for 24 hours.
        decision = Ignored(f"instance not registered (no {BLOCK_TYPE_SLUG} block): nothing started")
    # GREEN-API re-sends every minute for 24 h whatever is not answered 200 (a 202 included).
    return answer(decision, accepted_status=200)


@router.post(
    "/events/queue-reset",
    summary="Ask for an instance's notification queue to be reset",
    description=(
        "Emits `greenapi.instance.number-blocked` or `greenapi.instance.account-changed` for `idInstance`. "
        "Re-sending the same request (same `deliveryId`, or the same body without one) returns the same `eventId` "
        "with `duplicate: true` and emits nothing."
    ),
    status_code=202,
    response_model=models.Accepted,
    responses={202: {"model": models.Accepted, "description": "Emitted (or emitted before: `duplicate`)."}, **ERROR_RESPONSES},
    dependencies=[Depends(require_bearer)],
    openapi_extra=_json_body_of(models.QueueResetRequest),
    tags=["events"],
)
async def queue_reset(request: Request, service: Service):
    decision = await service.queue_reset(await read_model(request, models.QueueResetRequest))
    if isinstance(decision, Unregistered):
        # The idInstance is a validated integer: naming it echoes nothing a caller could inject.
        return JSONResponse(status_code=422, content={"detail": [{
            "loc": ["idInstance"], "type": "unknown_instance",
            "msg": f"instance {decision.id_instance} is not registered (no {BLOCK_TYPE_SLUG} block)",
        }]})
    return answer(decision, accepted_status=202)


@router.get("/health", response_model=models.Health, response_model_exclude_none=True, summary="Liveness; no authentication", tags=["health"])
async def health(request: Request, service: Service) -> models.Health:
    relay = request.app.state.relay
    return models.Health(prefect_events="connected" if service.events_connected else "disconnected",
                         relay=asdict(relay.counters) if relay is not None else None)
