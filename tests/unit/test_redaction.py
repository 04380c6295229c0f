"""The token never reaches a log line, a repr or a str; the redaction filter on httpx's loggers works."""

from __future__ import annotations

import logging

import httpx
import pytest

from greenapi import GreenAPISettings, InstanceCredentials, get_settings
from greenapi.redaction import RedactTokenFilter, install_log_redaction, redact_url_text
from tests.helpers import MOCK_ID_INSTANCE, TOKEN_CANARY, mock_client, mock_instance_request_logs

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"GET https://h/waInstance1/getSettings/{TOKEN_CANARY}", "GET https://h/waInstance1/getSettings/***"),
        (f"/waInstance{MOCK_ID_INSTANCE}/receiveNotification/{TOKEN_CANARY}?receiveTimeout=5", f"/waInstance{MOCK_ID_INSTANCE}/receiveNotification/***?receiveTimeout=5"),
        (f"/waInstance1/deleteNotification/{TOKEN_CANARY}/77", "/waInstance1/deleteNotification/***/77"),
        (f'"url": "/waInstance1/getStateInstance/{TOKEN_CANARY}"', '"url": "/waInstance1/getStateInstance/***"'),
        (f"a /waInstance1/x/{TOKEN_CANARY} b /waInstance2/y/{TOKEN_CANARY}", "a /waInstance1/x/*** b /waInstance2/y/***"),
        ("no url here", "no url here"),
    ],
)
def test_redact_url_text(text, expected):
    assert redact_url_text(text) == expected


def test_filter_rewrites_args_and_plain_messages():
    flt = RedactTokenFilter()
    url = httpx.URL(f"https://api.green-api.com/waInstance{MOCK_ID_INSTANCE}/getSettings/{TOKEN_CANARY}")
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, 'HTTP Request: %s %s "%s"', ("GET", url, "200"), None)
    assert flt.filter(record) is True
    assert TOKEN_CANARY not in record.getMessage()
    assert "/getSettings/***" in record.getMessage()
    plain = logging.LogRecord("httpx", logging.INFO, __file__, 1, f"raw /waInstance1/getSettings/{TOKEN_CANARY}", None, None)
    flt.filter(plain)
    assert plain.getMessage() == "raw /waInstance1/getSettings/***"


def test_install_is_idempotent():
    install_log_redaction()
    install_log_redaction()
    for name in ("httpx", "httpcore", "httpcore.http11", "httpcore.connection", "httpcore.http2"):
        filters = [f for f in logging.getLogger(name).filters if isinstance(f, RedactTokenFilter)]
        assert len(filters) == 1, name


async def test_httpx_request_log_is_redacted_in_caplog(logs):
    def handler(request):
        return httpx.Response(200, content=b"null" if "receiveNotification" in request.url.path else b'{"count": 2}')

    async with mock_client(handler) as client:
        assert (await client.get_webhooks_count()).count == 2
        assert await client.receive_notification(receive_timeout=6) is None
    lines = mock_instance_request_logs(logs.records)
    assert len(lines) == 2  # httpx really logged each request URL
    assert f"/waInstance{MOCK_ID_INSTANCE}/getWebhooksCount/***" in logs.text
    assert f"/waInstance{MOCK_ID_INSTANCE}/receiveNotification/***?receiveTimeout=6" in logs.text
    assert TOKEN_CANARY not in logs.text
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in lines:
        assert TOKEN_CANARY not in formatter.format(record)
        assert "***" in formatter.format(record)


async def test_retry_warnings_are_token_free(logs):
    calls = []

    def handler(request):
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError(f"refused {request.url}", request=request)
        return httpx.Response(503, text=f"upstream {request.url}") if len(calls) == 2 else httpx.Response(200, json={"count": 0})

    async with mock_client(handler, max_retries=3) as client:
        await client.get_messages_count()
    warnings = [r for r in logs.records if r.name.startswith("greenapi") and r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert TOKEN_CANARY not in logs.text


@pytest.mark.parametrize("logger_name", ["httpcore.http11", "httpcore.connection", "httpcore.http2", "httpcore", "httpx"])
def test_records_on_filtered_loggers_are_redacted(logs, logger_name):
    install_log_redaction()
    logging.getLogger(logger_name).debug("send_request url=%s", f"https://h/waInstance1/getSettings/{TOKEN_CANARY}")
    assert "getSettings/***" in logs.text
    assert TOKEN_CANARY not in logs.text


def test_reprs_do_not_show_the_token(monkeypatch):
    creds = InstanceCredentials(id_instance=MOCK_ID_INSTANCE, api_token_instance=TOKEN_CANARY)
    for text in (repr(creds), str(creds), repr(creds.api_token_instance), str(creds.api_token_instance), repr(creds.model_dump())):
        assert TOKEN_CANARY not in text
    assert creds.api_token_instance.get_secret_value() == TOKEN_CANARY  # it is really there
    settings = GreenAPISettings(_env_file=None, id_instance=MOCK_ID_INSTANCE, api_token_instance=TOKEN_CANARY)
    assert TOKEN_CANARY not in repr(settings) and TOKEN_CANARY not in str(settings)
    monkeypatch.setenv("GREEN_API_API_TOKEN_INSTANCE", TOKEN_CANARY)
    monkeypatch.setenv("GREEN_API_ID_INSTANCE", str(MOCK_ID_INSTANCE))
    from_env = get_settings()
    assert from_env.api_token_instance.get_secret_value() == TOKEN_CANARY
    assert TOKEN_CANARY not in repr(from_env) and TOKEN_CANARY not in str(from_env)
    assert TOKEN_CANARY not in repr(from_env.credentials())


async def test_client_repr_does_not_show_the_token():
    async with mock_client(lambda r: httpx.Response(200, json={})) as client:
        assert TOKEN_CANARY not in repr(client) and TOKEN_CANARY not in str(client)
        assert str(MOCK_ID_INSTANCE) in repr(client)
