"""Every error family of GreenAPIClient, and that no error, log line or pickle carries the token."""

from __future__ import annotations

import pickle
import socket

import httpx
import pytest

from greenapi import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    GreenAPIError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
)
from tests.helpers import MOCK_ID_INSTANCE, TOKEN_CANARY, exception_text, mock_client, mock_instance_request_logs

URL_WITH_TOKEN = f"https://api.green-api.com/waInstance{MOCK_ID_INSTANCE}/getSettings/{TOKEN_CANARY}"

NGINX_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
    + f"<!-- upstream: {URL_WITH_TOKEN} -->".encode()
    + b"\r\n</body>\r\n</html>\r\n"
)


def answer(status, content=b"", headers=None):
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(status, content=content, headers=headers or {})

    handler.calls = calls
    return handler


def raising(exc_type):
    calls = []

    def handler(request):
        calls.append(request)
        # httpx's own exceptions carry the request, whose URL holds the token
        raise exc_type(f"failed talking to {request.url}", request=request)

    handler.calls = calls
    return handler


def assert_secret_kept(exc: GreenAPIError, caplog) -> None:
    assert TOKEN_CANARY not in exception_text(exc)
    assert exc.__cause__ is None
    assert exc.__context__ is None
    data = pickle.dumps(exc)
    assert TOKEN_CANARY.encode() not in data
    clone = pickle.loads(data)
    assert type(clone) is type(exc)
    assert clone.method == exc.method
    assert clone.id_instance == exc.id_instance
    assert getattr(clone, "status_code", None) == getattr(exc, "status_code", None)
    assert str(clone) == str(exc)
    assert TOKEN_CANARY not in str(clone) and TOKEN_CANARY not in repr(clone)
    assert TOKEN_CANARY not in caplog.text
    for record in caplog.records:
        assert TOKEN_CANARY not in record.getMessage()
        assert TOKEN_CANARY not in repr(record.args)


STATUS_CASES = [
    # (status, body, headers, error type, retried?)
    (400, b'{"message": "instance is not authorized"}', {"content-type": "application/json"}, BadRequestError, False),
    (401, b"Unauthorized", {}, AuthenticationError, False),
    (403, b'{"error": "forbidden"}', {}, PermissionDeniedError, False),
    (404, b"", {}, NotFoundError, False),
    (429, b'{"message": "Too Many Requests"}', {}, RateLimitError, True),
    (466, b'{"invokeStatus": {"status": "QUOTE_ALLOWED_EXCEEDED", "used": 101, "total": 100}}', {}, QuotaExceededError, False),
    (466, b'{"invokeStatus": "QUOTE_ALLOWED_EXCEEDED"}', {}, QuotaExceededError, False),
    (500, b'{"message": "internal"}', {}, InternalServerError, True),
    (502, NGINX_502, {"content-type": "text/html"}, InternalServerError, True),
    (503, b"Service Unavailable", {"content-type": "text/plain"}, InternalServerError, True),
    (504, b"<html>Gateway Time-out</html>", {"content-type": "text/html"}, InternalServerError, True),
    (418, b"I'm a teapot", {}, APIStatusError, False),
]


@pytest.mark.parametrize(("status", "body", "headers", "error_type", "retried"), STATUS_CASES)
async def test_status_errors(logs, status, body, headers, error_type, retried):
    handler = answer(status, body, headers)
    async with mock_client(handler, max_retries=2) as client:
        with pytest.raises(GreenAPIError) as info:
            await client.get_settings()
    error = info.value
    assert type(error) is error_type
    assert isinstance(error, APIStatusError)
    assert error.status_code == status
    assert error.method == "getSettings"
    assert error.id_instance == MOCK_ID_INSTANCE
    assert f"HTTP {status}" in str(error)
    assert "getSettings" in str(error) and str(MOCK_ID_INSTANCE) in str(error)
    assert len(handler.calls) == (3 if retried else 1)
    # httpx logged every exchange, with the token redacted
    httpx_lines = [r.getMessage() for r in mock_instance_request_logs(logs.records)]
    assert len(httpx_lines) == len(handler.calls)
    assert all(f"/waInstance{MOCK_ID_INSTANCE}/getSettings/***" in line for line in httpx_lines)
    retry_lines = [r.getMessage() for r in logs.records if r.name == "greenapi.client"]
    assert len(retry_lines) == (2 if retried else 0)
    assert_secret_kept(error, logs)


async def test_466_with_string_invoke_status_puts_it_in_the_message():
    handler = answer(466, b'{"invokeStatus": "QUOTE_ALLOWED_EXCEEDED"}', {"content-type": "application/json"})
    async with mock_client(handler) as client:
        with pytest.raises(QuotaExceededError, match="QUOTE_ALLOWED_EXCEEDED"):
            await client.get_webhooks_count()


async def test_nginx_html_is_never_copied_into_the_message():
    handler = answer(502, NGINX_502, {"content-type": "text/html"})
    async with mock_client(handler, max_retries=0) as client:
        with pytest.raises(InternalServerError) as info:
            await client.get_webhooks_count()
    assert "<" not in str(info.value) and "nginx" not in str(info.value)


async def test_json_error_detail_with_url_is_redacted_and_truncated(logs):
    message = f"cannot route GET {URL_WITH_TOKEN} " + "x" * 500
    handler = answer(400, f'{{"message": "{message}"}}'.encode(), {"content-type": "application/json"})
    async with mock_client(handler) as client:
        with pytest.raises(BadRequestError) as info:
            await client.get_settings()
    text = str(info.value)
    assert "cannot route GET" in text
    assert "/getSettings/***" in text
    assert len(text) < 300
    assert_secret_kept(info.value, logs)


@pytest.mark.parametrize(
    ("exc_type", "error_type"),
    [
        (httpx.ReadTimeout, APITimeoutError),
        (httpx.ConnectTimeout, APITimeoutError),
        (httpx.WriteTimeout, APITimeoutError),
        (httpx.PoolTimeout, APITimeoutError),
        (httpx.ConnectError, APIConnectionError),
        (httpx.ReadError, APIConnectionError),
        (httpx.RemoteProtocolError, APIConnectionError),
    ],
)
@pytest.mark.parametrize("method_name", ["get_settings", "receive_notification", "clear_webhooks_queue"])
async def test_transport_failures(logs, exc_type, error_type, method_name):
    handler = raising(exc_type)
    async with mock_client(handler, max_retries=1) as client:
        with pytest.raises(GreenAPIError) as info:
            await getattr(client, method_name)()
    error = info.value
    assert type(error) is error_type
    assert isinstance(error, APIConnectionError)
    assert not hasattr(error, "status_code")
    assert error.id_instance == MOCK_ID_INSTANCE
    assert error.method == {"get_settings": "getSettings", "receive_notification": "receiveNotification",
                            "clear_webhooks_queue": "clearWebhooksQueue"}[method_name]
    assert exc_type.__name__ in str(error)
    assert len(handler.calls) == 2
    assert "gave up after 2 attempts" in str(error)
    assert error.args == (str(error),)
    assert_secret_kept(error, logs)


BODY_CASES = [  # (method, body, retried as transient?)
    ("get_webhooks_count", b"<html>oops</html>", True),
    ("get_webhooks_count", b"null", True),
    ("get_webhooks_count", b"{}", False),
    ("get_webhooks_count", b'{"count": -3}', False),
    ("get_messages_count", b'{"\xd1\x81ount": -3}', False),
    ("get_state_instance", b"null", True),
    ("clear_webhooks_queue", b'{"isCleared": "perhaps"}', False),
]


@pytest.mark.parametrize(("method_name", "content", "transient"), BODY_CASES)
async def test_body_errors_keep_the_secret(logs, method_name, content, transient):
    handler = answer(200, content)
    async with mock_client(handler) as client:
        with pytest.raises(APIResponseValidationError) as info:
            await getattr(client, method_name)()
    assert info.value.id_instance == MOCK_ID_INSTANCE and info.value.transient is transient
    assert len(handler.calls) == (1 + client._retry.max_retries if transient else 1)
    assert_secret_kept(info.value, logs)


async def test_body_echoing_the_url_is_not_echoed_into_the_error(logs):
    # a 200 whose body is not the expected shape and mentions the URL: the error names fields, not values
    content = f'{{"url": "{URL_WITH_TOKEN}", "token": "{TOKEN_CANARY}"}}'.encode()
    handler = answer(200, content)
    async with mock_client(handler) as client:
        with pytest.raises(APIResponseValidationError) as info:
            await client.get_webhooks_count()
    assert_secret_kept(info.value, logs)


async def test_errors_are_greenapi_errors_only():
    # a pile of faults in a row: nothing but GreenAPIError subclasses escape
    faults = [
        lambda r: httpx.Response(200, content=b"\x00\x01"),
        lambda r: httpx.Response(200, headers={"content-encoding": "gzip"}, stream=httpx.ByteStream(b"\x1f\x8bxx")),
        lambda r: httpx.Response(599),
        lambda r: httpx.Response(301, headers={"location": "http://x/"}),
    ]
    for fault in faults:
        async with mock_client(fault, max_retries=0) as client:
            with pytest.raises(GreenAPIError):
                await client.get_state_instance()


# ------------------------------------------------------------------ a wrong apiUrl, a refused token: say which

HOST = "api.green-api.com"  # mock_client's credentials use the default apiUrl


def _raising_from(cause: BaseException):
    def handler(request):
        try:
            raise cause
        except BaseException as inner:
            raise httpx.ConnectError(f"failed talking to {request.url}", request=request) from inner

    return handler


async def test_a_refused_token_says_so_for_the_instance_and_never_shows_it(logs):
    async with mock_client(answer(401, b"Unauthorized")) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.get_state_instance()
    assert f"apiTokenInstance was refused for idInstance {MOCK_ID_INSTANCE}" in str(info.value)
    assert_secret_kept(info.value, logs)


@pytest.mark.parametrize(("cause", "expected"), [
    (ConnectionRefusedError(111, "Connection refused"), f"no answer from {HOST}"),
    (socket.gaierror(-2, "Name or service not known"), f"cannot resolve the host {HOST}"),
])
async def test_a_host_that_does_not_answer_is_named(logs, cause, expected):
    async with mock_client(_raising_from(cause), max_retries=0) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.get_state_instance()
    assert expected in str(info.value) and "check apiUrl" in str(info.value)
    assert_secret_kept(info.value, logs)


async def test_a_timeout_names_the_host(logs):
    async with mock_client(raising(httpx.ReadTimeout), max_retries=0) as client:
        with pytest.raises(APITimeoutError, match=f"waiting for {HOST}"):
            await client.get_state_instance()


@pytest.mark.parametrize(("status", "content", "headers", "error_type"), [
    (200, b"<html><body>Welcome to nginx!</body></html>", {"content-type": "text/html"}, APIResponseValidationError),
    (404, b"<html><body>404 Not Found</body></html>", {"content-type": "text/html"}, NotFoundError),
    (200, b'{"status": "ok", "version": "1.2"}', {"content-type": "application/json"}, APIResponseValidationError),
    (301, b"", {"location": "https://elsewhere.example/"}, APIStatusError),
])
async def test_an_answer_that_is_not_greenapis_says_so_naming_the_host(logs, status, content, headers, error_type):
    async with mock_client(answer(status, content, headers), max_retries=1) as client:
        with pytest.raises(error_type) as info:
            await client.get_state_instance()
    assert f"the answer from {HOST} does not look like GREEN-API's" in str(info.value)
    assert "<" not in str(info.value)  # the page itself is never copied in
    assert_secret_kept(info.value, logs)


@pytest.mark.parametrize(("status", "content"), [(401, b"Unauthorized"), (200, b"null"), (429, b""), (502, NGINX_502)],
                         ids=["401", "null", "429", "nginx-502"])
async def test_greenapis_own_answers_are_not_called_foreign(status, content):
    async with mock_client(answer(status, content), max_retries=0) as client:
        with pytest.raises(GreenAPIError) as info:
            await client.get_state_instance()
    assert "does not look like" not in str(info.value), str(info.value)


@pytest.mark.parametrize(("api_url", "host"), [
    ("https://7105.api.greenapi.com", "7105.api.greenapi.com"),
    ("http://127.0.0.1:8080/v3", "127.0.0.1:8080"),
    ("http://user:secret@[::1]:9/", "[::1]:9"),
])
def test_only_the_host_of_the_api_url_is_named(api_url, host):
    from greenapi.errors import api_host

    assert api_host(api_url) == host
