"""The ASGI app: GREEN-API routes (``/waInstance{id}/{method}/{token}``) and the control API
under ``/_emulator``. Rules live in ``state.py`` and the modules it names; this module only speaks HTTP."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from .config import EmulatorConfig
from .outcome import Outcome
from .records import summarise
from .state import EmulatorState
from .world import ControlError

RAW_SEND_KEY = "emulator.raw_send"
_POLL_STEP_SECONDS = 0.02
_ALL_VERBS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# ---------------------------------------------------------------- GREEN-API side


class _DropConnection(Response):
    """Close the TCP connection without sending anything.

    uvicorn gives no public way to do this, so we reach the transport through uvicorn's own
    ``send`` callable (a bound method of its request/response cycle, captured before Starlette
    wraps it). If that is not possible we raise, and uvicorn answers a bare 500 instead.
    """

    def __init__(self) -> None:
        super().__init__(content=b"", status_code=500)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_send = scope.get(RAW_SEND_KEY)
        cycle = getattr(raw_send, "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is None or not hasattr(cycle, "disconnected"):
            raise RuntimeError("emulator: disconnect fault not supported by this server; answering 500")
        transport.close()
        cycle.disconnected = True  # so uvicorn does not try to write a 500 on the closed socket
        await asyncio.sleep(0)


def _to_response(out: Outcome) -> Response:
    if out.disconnect:
        return _DropConnection()
    if out.text is not None:
        body = out.text.encode("utf-8")
    else:
        body = _json_bytes(out.payload)
    return Response(content=body, status_code=out.status, headers=out.headers, media_type=out.content_type)


def _summary(out: Outcome) -> Any:
    if out.disconnect:
        return None
    if out.text is not None:
        return {"content_type": out.content_type, "text_length": len(out.text)}
    return summarise(out.payload)


def _stopping(request: Request) -> bool:
    return bool(getattr(request.app.state, "stopping", False))


async def _sleep(request: Request, seconds: float, ended: Callable[[], bool] = lambda: False) -> None:
    """Sleep, but wake early when ``ended()`` says so, or the server is shutting down (so stop() is quick and quiet)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not _stopping(request) and not ended():
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            return
        await asyncio.sleep(min(0.05, left))


async def _green_api(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    started = state.clock.wall()
    out = Outcome(status=500, payload={"error": "emulator error"})
    try:
        body = await request.body() if request.method == "POST" else b""
        out = state.api.dispatch(request.method, request.url.path, dict(request.query_params), body)
        if out.delay_seconds > 0:
            await _sleep(request, out.delay_seconds, ended=lambda: state.api.delay_ended(out))
            out = state.api.answer(out)
        if out.poll_until is not None and out.instance is not None:
            while True:
                found = state.api.poll_notification(out.instance)
                if found is not None:
                    out.payload = found
                    break
                remaining = out.poll_until - state.clock.now()
                if remaining <= 0 or _stopping(request):
                    break
                await asyncio.sleep(min(_POLL_STEP_SECONDS, remaining))
        return _to_response(out)
    finally:
        state.records.record_call(
            instance=out.instance,
            method=out.method,
            verb=request.method,
            status=None if out.disconnect else out.status,
            started_at=started,
            finished_at=state.clock.wall(),
            token_ok=out.token_ok,
            fault=out.fault,
            body_summary=_summary(out),
        )


async def _partner_get_instances(request: Request) -> Response:
    """GREEN-API's partner ``getInstances``: HTTP 200 with the instances, or with ``{"code": 401, ...}``."""
    return Response(content=_json_bytes(_st(request).partner_instances(request.path_params["partner_token"])),
                    status_code=200, media_type="application/json")


# ---------------------------------------------------------------- control side


async def _body(request: Request, *, required: bool = True) -> Any:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise ControlError(400, "a JSON body is required")
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ControlError(400, f"body is not valid JSON: {exc}") from None


def _instance_id(request: Request) -> int:
    text = request.path_params["id_instance"]
    if not text.isdigit():
        raise ControlError(400, f"instance id must be an integer, got {text!r}")
    return int(text)


def _st(request: Request) -> EmulatorState:
    return request.app.state.emulator


async def _health(request: Request) -> Response:
    return JSONResponse({"status": "ok", "instances": len(_st(request).instances())})


async def _reset(request: Request) -> Response:
    body = await _body(request, required=False)
    config = None
    if body is not None:
        if not isinstance(body, dict):
            raise ControlError(400, "reset body must be a config object")
        config = EmulatorConfig.model_validate(body.get("config", body))
    _st(request).reset(config)
    return JSONResponse({"reset": True, "config": _st(request).config.model_dump()})


async def _get_config(request: Request) -> Response:
    return JSONResponse(_st(request).config.model_dump())


async def _put_config(request: Request) -> Response:
    body = await _body(request)
    if not isinstance(body, dict):
        raise ControlError(400, "config must be a JSON object")
    return JSONResponse(_st(request).set_config(body).model_dump())


async def _list_instances(request: Request) -> Response:
    return JSONResponse(_st(request).instances())


async def _create_instances(request: Request) -> Response:
    body = await _body(request)
    seeds = body if isinstance(body, list) else [body]
    if not all(isinstance(s, dict) for s in seeds):
        raise ControlError(400, "body must be an InstanceSeed object or a list of them")
    return JSONResponse(_st(request).add_instances(seeds), status_code=201)


async def _get_instance(request: Request) -> Response:
    return JSONResponse(_st(request).instance(_instance_id(request)))


async def _get_settings(request: Request) -> Response:
    return JSONResponse(_st(request).settings(_instance_id(request)))


async def _patch_instance(request: Request) -> Response:
    body = await _body(request)
    if not isinstance(body, dict):
        raise ControlError(400, "patch must be a JSON object")
    return JSONResponse(_st(request).patch_instance(_instance_id(request), body))


async def _change_state(request: Request) -> Response:
    body = await _body(request)
    if not isinstance(body, dict):
        raise ControlError(400, 'body must be {"state": ..., "wid": ... (optional)}')
    return JSONResponse(_st(request).change_state(_instance_id(request), body))


async def _queue_notifications(request: Request) -> Response:
    body = await _body(request, required=False)
    if body is not None and not isinstance(body, dict):
        raise ControlError(400, 'body must be {"count": n, "type_webhook": ... (optional)}')
    return JSONResponse(_st(request).queue_notifications(_instance_id(request), body or {}), status_code=201)


async def _get_deliveries(request: Request) -> Response:
    filters: dict[str, int | None] = {}
    for name in ("instance", "after_seq"):
        text = request.query_params.get(name) or None
        if text is not None and not text.isdigit():
            raise ControlError(400, f"{name} filter must be a non-negative integer")
        filters[name] = int(text) if text else None
    return JSONResponse(_st(request).deliveries(**filters))


async def _delete_deliveries(request: Request) -> Response:
    _st(request).clear_deliveries()
    return JSONResponse({"cleared": True})


async def _add_faults(request: Request) -> Response:
    body = await _body(request)
    rules = body if isinstance(body, list) else [body]
    if not all(isinstance(r, dict) for r in rules):
        raise ControlError(400, "body must be a fault rule object or a list of them")
    return JSONResponse(_st(request).add_faults(_instance_id(request), rules), status_code=201)


async def _clear_faults(request: Request) -> Response:
    return JSONResponse(_st(request).clear_faults(_instance_id(request)))


async def _get_calls(request: Request) -> Response:
    instance = request.query_params.get("instance") or None
    if instance is not None and not instance.isdigit():
        raise ControlError(400, "instance filter must be an integer")
    method = request.query_params.get("method") or None
    return JSONResponse(_st(request).calls(int(instance) if instance else None, method))


async def _get_counts(request: Request) -> Response:
    return JSONResponse(_st(request).counts())


async def _delete_calls(request: Request) -> Response:
    _st(request).clear_calls()
    return JSONResponse({"cleared": True})


async def _get_violations(request: Request) -> Response:
    return JSONResponse(_st(request).violations(request.query_params.get("kind") or None))


async def _delete_violations(request: Request) -> Response:
    _st(request).clear_violations()
    return JSONResponse({"cleared": True})


async def _advance_clock(request: Request) -> Response:
    body = await _body(request)
    seconds = body.get("seconds") if isinstance(body, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise ControlError(422, 'body must be {"seconds": <non-negative number>}')
    offset = _st(request).advance_clock(float(seconds))
    return JSONResponse({"advanced": float(seconds), "offset_seconds": offset})


async def _control_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ControlError)
    return JSONResponse({"error": exc.message}, status_code=exc.status)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    details = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors(include_url=False, include_input=False)
    ]
    return JSONResponse({"error": "invalid input", "details": details}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


_CONTROL_ROUTES = [
    Route("/health", _health, methods=["GET"]),
    Route("/reset", _reset, methods=["POST"]),
    Route("/config", _get_config, methods=["GET"]),
    Route("/config", _put_config, methods=["PUT"]),
    Route("/instances", _list_instances, methods=["GET"]),
    Route("/instances", _create_instances, methods=["POST"]),
    Route("/instances/{id_instance}", _get_instance, methods=["GET"]),
    Route("/instances/{id_instance}", _patch_instance, methods=["PATCH"]),
    Route("/instances/{id_instance}/settings", _get_settings, methods=["GET"]),
    Route("/instances/{id_instance}/state", _change_state, methods=["POST"]),
    Route("/instances/{id_instance}/notifications", _queue_notifications, methods=["POST"]),
    Route("/instances/{id_instance}/faults", _add_faults, methods=["POST"]),
    Route("/instances/{id_instance}/faults", _clear_faults, methods=["DELETE"]),
    Route("/calls", _get_calls, methods=["GET"]),
    Route("/calls", _delete_calls, methods=["DELETE"]),
    Route("/counts", _get_counts, methods=["GET"]),
    Route("/deliveries", _get_deliveries, methods=["GET"]),
    Route("/deliveries", _delete_deliveries, methods=["DELETE"]),
    Route("/violations", _get_violations, methods=["GET"]),
    Route("/violations", _delete_violations, methods=["DELETE"]),
    Route("/clock/advance", _advance_clock, methods=["POST"]),
]


class EmulatorApp(Starlette):
    """Starlette, plus: remembers the server's own ``send`` (needed by the disconnect fault)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[RAW_SEND_KEY] = send
        await super().__call__(scope, receive, send)


def build_app(state: EmulatorState | None = None) -> EmulatorApp:
    """The emulator as a Starlette app; ``app.state.emulator`` is the EmulatorState."""
    state = state or EmulatorState()
    app = EmulatorApp(
        routes=[
            Mount("/_emulator", routes=_CONTROL_ROUTES),
            Route("/partner/getInstances/{partner_token}", _partner_get_instances, methods=["GET"]),
            Route("/{path:path}", _green_api, methods=_ALL_VERBS),
        ],
        exception_handlers={
            ControlError: _control_error,
            ValidationError: _validation_error,
            HTTPException: _http_error,
        },
    )
    app.state.emulator = state
    app.state.stopping = False  # set by EmulatorServer.stop(): long-polls and delays end early
    return app
