"""GreenAPIClient: URL building, verbs, query params and success-body parsing (httpx.MockTransport, no network)."""

from __future__ import annotations

import json

import httpx
import pytest

from greenapi import (
    APIResponseValidationError,
    APIStatusError,
    ClearOutcome,
    InstanceSettings,
    Notification,
    QueueCount,
    StateInstance,
)
from tests.helpers import MOCK_ID_INSTANCE, TOKEN_CANARY, mock_client

class Recorder:
    """A MockTransport handler that records requests and answers with a fixed body."""

    def __init__(self, body=None, *, status=200, content: bytes | None = None):
        self.requests: list[httpx.Request] = []
        self.status = status
        self.content = json.dumps(body).encode() if content is None else content

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, content=self.content, headers={"content-type": "application/json"})


METHODS = [
    # (client method name, verb, path segment, success body, expected model)
    ("get_state_instance", "GET", "getStateInstance", {"stateInstance": "authorized"}, StateInstance),
    ("get_settings", "GET", "getSettings", {"wid": "11001234567@c.us", "webhookUrl": "", "stateWebhook": "yes"}, InstanceSettings),
    ("get_webhooks_count", "GET", "getWebhooksCount", {"count": 3}, QueueCount),
    ("clear_webhooks_queue", "DELETE", "clearWebhooksQueue", {"isCleared": True, "reason": ""}, ClearOutcome),
    ("get_messages_count", "GET", "getMessagesCount", {"count": 0}, QueueCount),
    ("clear_messages_queue", "GET", "clearMessagesQueue", {"isCleared": True}, ClearOutcome),
    ("receive_notification", "GET", "receiveNotification", {"receiptId": 1, "body": {"typeWebhook": "x"}}, Notification),
]


@pytest.mark.parametrize("api_url", ["https://api.green-api.com", "https://api.green-api.com/", "https://7105.api.greenapi.com//"])
@pytest.mark.parametrize(("name", "verb", "segment", "body", "model"), METHODS, ids=[m[0] for m in METHODS])
async def test_verb_and_path_per_method(api_url, name, verb, segment, body, model):
    rec = Recorder(body)
    async with mock_client(rec, api_url=api_url) as client:
        result = await getattr(client, name)()
    assert isinstance(result, model)
    assert len(rec.requests) == 1
    request = rec.requests[0]
    assert request.method == verb
    assert request.url.path == f"/waInstance{MOCK_ID_INSTANCE}/{segment}/{TOKEN_CANARY}"
    assert "//" not in str(request.url).split("://", 1)[1]
    assert request.url.host == httpx.URL(api_url).host
    assert request.url.scheme == "https"
    # the token is never sent as a header
    assert all(TOKEN_CANARY not in value for value in request.headers.values())


async def test_clear_webhooks_queue_is_delete_and_clear_messages_queue_is_get():
    rec = Recorder({"isCleared": True})
    async with mock_client(rec) as client:
        await client.clear_webhooks_queue()
        await client.clear_messages_queue()
    assert [(r.method, r.url.path.split("/")[2]) for r in rec.requests] == [
        ("DELETE", "clearWebhooksQueue"),
        ("GET", "clearMessagesQueue"),
    ]


@pytest.mark.parametrize(("method_name"), [m[0] for m in METHODS if m[0] != "receive_notification"])
async def test_only_receive_notification_sends_a_query(method_name):
    body = next(m[3] for m in METHODS if m[0] == method_name)
    rec = Recorder(body)
    async with mock_client(rec) as client:
        await getattr(client, method_name)()
    assert rec.requests[0].url.query == b""


async def test_receive_notification_waits_greenapis_shortest_receive_timeout_by_default():
    rec = Recorder(None)
    async with mock_client(rec) as client:
        assert await client.receive_notification() is None
    request = rec.requests[0]
    assert request.url.params.get("receiveTimeout") == "5"
    assert request.url.path == f"/waInstance{MOCK_ID_INSTANCE}/receiveNotification/{TOKEN_CANARY}"


async def test_receive_notification_explicit_receive_timeout_and_extra_read_time():
    rec = Recorder(None)
    async with mock_client(rec, timeout_seconds=15, connect_timeout_seconds=4) as client:
        await client.receive_notification(receive_timeout=20)
    request = rec.requests[0]
    assert dict(request.url.params) == {"receiveTimeout": "20"}
    timeout = request.extensions["timeout"]
    assert timeout["read"] == pytest.approx(35)
    assert timeout["connect"] == pytest.approx(4)


async def test_plain_methods_use_configured_timeouts():
    rec = Recorder({"count": 1})
    async with mock_client(rec, timeout_seconds=9, connect_timeout_seconds=2) as client:
        await client.get_webhooks_count()
    timeout = rec.requests[0].extensions["timeout"]
    assert timeout["read"] == pytest.approx(9)
    assert timeout["connect"] == pytest.approx(2)


async def test_receive_notification_parses_a_notification():
    body = {"receiptId": 42, "body": {"typeWebhook": "stateInstanceChanged", "timestamp": 1705902314}}
    async with mock_client(Recorder(body)) as client:
        notification = await client.receive_notification()
    assert notification.receipt_id == 42
    assert notification.type_webhook == "stateInstanceChanged"
    assert notification.timestamp == 1705902314


@pytest.mark.parametrize("body", [{"count": 5}, {"\u0441ount": 5}, {"count": 5, "other": 1}])
async def test_count_accepts_both_spellings(body):
    async with mock_client(Recorder(body)) as client:
        assert (await client.get_webhooks_count()).count == 5
        assert (await client.get_messages_count()).count == 5


async def test_cyrillic_key_is_sent_as_utf8_bytes():
    content = '{"\u0441ount": 12}'.encode("utf-8")
    assert content.startswith(b'{"\xd1\x81ount"')
    async with mock_client(Recorder(content=content)) as client:
        assert (await client.get_webhooks_count()).count == 12


@pytest.mark.parametrize(
    ("method_name", "content", "fragment"),
    [
        ("get_webhooks_count", b"{}", "neither 'count'"),
        ("get_webhooks_count", b'{"total": 3}', "neither 'count'"),
        ("get_messages_count", b'{"count": -1}', "count"),
        ("get_webhooks_count", b'{"\xd1\x81ount": -4}', "count"),
        ("get_webhooks_count", b'{"count": "many"}', "count"),
        ("get_state_instance", b"{}", "stateInstance"),
        ("clear_webhooks_queue", b'{"reason": ""}', "isCleared"),
        ("receive_notification", b'{"body": {}}', "receiptId"),
        ("get_webhooks_count", b"[]", "unexpected body"),
        ("get_state_instance", b'"authorized"', "unexpected body"),
    ],
)
async def test_missing_or_invalid_fields_raise_validation_error(method_name, content, fragment):
    rec = Recorder(content=content)
    async with mock_client(rec) as client:
        with pytest.raises(APIResponseValidationError) as info:
            await getattr(client, method_name)()
    error = info.value
    assert fragment in str(error)
    assert error.id_instance == MOCK_ID_INSTANCE
    assert error.method == next(m[2] for m in METHODS if m[0] == method_name)
    assert len(rec.requests) == 1  # a bad body is never retried
    assert TOKEN_CANARY not in str(error)


@pytest.mark.parametrize("method_name", [m[0] for m in METHODS if m[0] != "receive_notification"])
async def test_null_body_is_an_error_except_for_receive_notification(method_name):
    async with mock_client(Recorder(content=b"null")) as client:
        with pytest.raises(APIResponseValidationError, match="body is null"):
            await getattr(client, method_name)()
        assert await client.receive_notification() is None


@pytest.mark.parametrize(
    "content", [b"", b"OK", b"<html><body>hi</body></html>", b"\xff\xfe\x00garbage", b'{"count": 3'], ids=["empty", "text", "html", "binary", "truncated"]
)
@pytest.mark.parametrize("method_name", ["get_webhooks_count", "receive_notification"])
async def test_non_json_200_body(method_name, content):
    # What a proxy or gateway hiccup looks like: retried like a 502, then reported.
    rec = Recorder(content=content)
    async with mock_client(rec, retry_backoff_initial_seconds=0, retry_backoff_max_seconds=0) as client:
        with pytest.raises(APIResponseValidationError, match="not JSON") as info:
            await getattr(client, method_name)()
    assert info.value.id_instance == MOCK_ID_INSTANCE and info.value.transient
    assert len(rec.requests) == 4 and "gave up after 4 attempts" in str(info.value)


async def test_corrupt_gzip_body_is_a_greenapi_error_not_a_raw_httpx_error():
    # Byte-level fault: Content-Encoding says gzip, the bytes are not. httpx raises DecodingError,
    # which is not a TransportError and carries the request (URL, token) on .request.
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(200, headers={"content-encoding": "gzip"}, stream=httpx.ByteStream(b"not gzip at all"))

    async with mock_client(handler) as client:
        with pytest.raises(APIResponseValidationError) as info:
            await client.get_webhooks_count()
    assert info.value.method == "getWebhooksCount"
    assert TOKEN_CANARY not in str(info.value) and TOKEN_CANARY not in repr(vars(info.value))
    assert info.value.__cause__ is None and info.value.__context__ is None


async def test_redirect_is_not_followed():
    requests = []

    def handler(request):
        requests.append(request)
        return httpx.Response(302, headers={"location": "https://elsewhere.example/x"})

    async with mock_client(handler) as client:
        with pytest.raises(APIStatusError) as info:
            await client.get_settings()
    assert type(info.value) is APIStatusError
    assert info.value.status_code == 302
    assert len(requests) == 1


async def test_id_instance_property_and_repr_without_token():
    async with mock_client(Recorder({"count": 0})) as client:
        assert client.id_instance == MOCK_ID_INSTANCE
        text = repr(client)
        assert str(MOCK_ID_INSTANCE) in text
        assert TOKEN_CANARY not in text and TOKEN_CANARY not in str(client)


async def test_aclose_closes_the_http_client():
    client = mock_client(Recorder({"count": 0}))
    async with client:
        pass
    with pytest.raises(RuntimeError):
        await client._http.get("https://api.green-api.com/")


async def test_set_settings_posts_json_and_unwraps_secrets_only_into_the_body():
    from pydantic import SecretStr

    recorder = Recorder({"saveSettings": True})
    async with mock_client(recorder) as client:
        answer = await client.set_settings({"webhookUrl": "https://hook.example/in", "webhookUrlToken": SecretStr("HOOKSECRET")})
    request = recorder.requests[0]
    assert request.method == "POST"
    assert request.url.path == f"/waInstance{MOCK_ID_INSTANCE}/setSettings/{TOKEN_CANARY}"
    assert json.loads(request.content) == {"webhookUrl": "https://hook.example/in", "webhookUrlToken": "HOOKSECRET"}
    assert answer.save_settings is True


async def test_get_settings_keeps_the_webhook_url_token_secret():
    recorder = Recorder({"wid": "1@c.us", "webhookUrl": "https://hook.example/in", "webhookUrlToken": "HOOKSECRET"})
    async with mock_client(recorder) as client:
        settings = await client.get_settings()
    assert settings.webhook_url_token.get_secret_value() == "HOOKSECRET"
    assert "HOOKSECRET" not in repr(settings) and "HOOKSECRET" not in str(settings.model_dump())


async def test_a_v3_api_url_keeps_its_prefix():
    recorder = Recorder({"stateInstance": "authorized"})
    async with mock_client(recorder, api_url="https://api.green-api.com/v3/") as client:
        await client.get_state_instance()
    assert recorder.requests[0].url.path == f"/v3/waInstance{MOCK_ID_INSTANCE}/getStateInstance/{TOKEN_CANARY}"
