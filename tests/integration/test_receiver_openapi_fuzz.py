"""schemathesis against the receiver's own OpenAPI description (``/openapi.json``).

Positive and negative cases for every operation, with the right bearer token, with a wrong one and
with none: never a 5xx, status codes, content types, headers and bodies as described, schema-valid
bodies accepted, schema-invalid ones refused, nothing emitted unless answered 202 (not duplicate),
nothing at all without the secret. The bulk runs in-process (schemathesis' ASGI client, a recording
emitter, an in-memory wid store); a bounded sample runs over loopback against the session's real
Prefect server. The secret never comes back in a response.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from receiver.app import create_app
from tests.helpers import MemoryRegistry, MemoryWidStore, RecordingEmitter
from receiver.server import ReceiverServer
from receiver.settings import ReceiverLimits, get_receiver_settings

CANARY = "CANARYfuzz" + "f022" * 8
SETTINGS = get_receiver_settings(_env_file=None, secret=CANARY)
LIMITS = ReceiverLimits(max_body_bytes=8192)
GOOD = {"Authorization": f"Bearer {CANARY}"}
WRONG = {"Authorization": f"Bearer {CANARY[:-1]}0"}
CONFORMANCE = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance, response_schema_conformance]
POST_PATHS = {"/webhooks/greenapi", "/events/queue-reset"}


EMITTER, WIDS = RecordingEmitter(), MemoryWidStore()
APP = create_app(SETTINGS, limits=LIMITS, emitter=EMITTER, wid_store=WIDS.store(), registry=MemoryRegistry())  # every instance registered
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])

STATS: dict[str, dict[int, int]] = {}
TEXTS: list[str] = []  # every response body and its headers, for the canary


def _record(name: str, response) -> None:
    STATS.setdefault(name, {})
    STATS[name][response.status_code] = STATS[name].get(response.status_code, 0) + 1
    TEXTS.append(response.text + json.dumps(dict(response.headers)))


def _mode(case) -> GenerationMode | None:
    meta = getattr(case, "meta", None)
    return getattr(getattr(meta, "generation", None), "mode", None)


FUZZ = settings(max_examples=120, deadline=None, database=None, suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])


@schema.parametrize()
@FUZZ
def test_with_the_secret_no_5xx_and_responses_conform(case):
    before, writes = len(EMITTER.events), WIDS.writes
    response = case.call(headers=GOOD)
    _record("secret", response)
    assert response.status_code < 500, (response.status_code, response.text[:300])
    mode = _mode(case)
    extra = [positive_data_acceptance] if mode == GenerationMode.POSITIVE else [negative_data_rejection] if mode == GenerationMode.NEGATIVE else []
    case.validate_response(response, checks=CONFORMANCE + extra)
    emitted = len(EMITTER.events) - before
    if response.status_code in (200, 202) and "eventId" in response.json():  # accepted (200 on the GREEN-API endpoint)
        assert emitted == (0 if response.json()["duplicate"] else 1), response.text
    else:
        assert emitted == 0, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert WIDS.writes == writes, "an account was recorded for a refused request"


@schema.parametrize()
@settings(FUZZ, max_examples=60)
def test_without_the_secret_no_5xx_and_nothing_emitted(case):
    for name, headers in (("no-secret", None), ("wrong-secret", WRONG)):
        before, writes = len(EMITTER.events), WIDS.writes
        if headers is None:
            case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        response = case.call(headers=headers)
        _record(name, response)
        assert response.status_code < 500, (response.status_code, response.text[:300])
        case.validate_response(response, checks=CONFORMANCE)
        if case.path in POST_PATHS and case.method.upper() == "POST":
            assert response.status_code == 401, (name, response.status_code, response.text[:300])
            assert response.headers.get("www-authenticate") in (["Bearer"], "Bearer"), response.headers
        assert len(EMITTER.events) == before and WIDS.writes == writes


# ---------------------------------------------------------------- over loopback, real Prefect


def test_over_loopback_against_real_prefect_no_5xx(prefect_server):
    """The same description, fetched from a real receiver that emits into the session's Prefect server."""
    with ReceiverServer(SETTINGS, limits=LIMITS) as server:
        loaded = schemathesis.openapi.from_url(f"{server.url}/openapi.json", timeout=10)
        operations = [result.ok() for result in loaded.get_all_operations()]
        assert {(op.method.upper(), op.path) for op in operations} >= {("POST", p) for p in POST_PATHS}
        strategy = st.one_of([op.as_strategy(generation_mode=mode) for op in operations for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)])

        @settings(FUZZ, max_examples=40)
        @given(strategy)
        def check(case):
            for name, headers in (("real-secret", GOOD), ("real-wrong", WRONG)):
                response = case.call(base_url=server.url, headers=headers, timeout=30)
                _record(name, response)
                assert response.status_code < 500, (response.status_code, response.text[:300])
                case.validate_response(response, checks=CONFORMANCE)
                if headers is WRONG and case.path in POST_PATHS and case.method.upper() == "POST":
                    assert response.status_code == 401

        check()


def test_fuzzing_ran_and_the_secret_never_came_back():
    print(f"\nschemathesis status codes: {STATS}")
    assert TEXTS, "no responses"
    assert not [text for text in TEXTS if CANARY in text]
    secret = STATS.get("secret", {})
    if secret:  # the in-process fuzz ran: it must have reached the decisions, not only the validation
        assert secret.get(202, 0) + secret.get(200, 0) > 0 and secret.get(422, 0) > 0, secret
