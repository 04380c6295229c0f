"""The Partner API client: instances listed, errors in a 200 body, HTTP errors and transport faults, no token leaks."""

from __future__ import annotations

import logging

import httpx
import pytest
from pydantic import SecretStr

from greenapi import (
    PartnerAPIError,
    PartnerAuthenticationError,
    PartnerClient,
    PartnerConnectionError,
    PartnerResponseError,
)
from tests.helpers import exception_text

TOKEN = "CANARYpartner" + "5e" * 20
ITEM = {"idInstance": 1101, "name": "shop", "typeInstance": "whatsapp", "apiTokenInstance": "CANARYinst" + "1" * 30,
        "deleted": False, "timeCreated": "2024-01-01T00:00:00.000Z", "timeDeleted": "", "tariff": "Business",
        "isFree": False, "isPartner": True, "expirationDate": "2025-01-01T00:00:00.000Z", "isExpired": False}


def _client(handler) -> PartnerClient:
    return PartnerClient("https://partner.example/", SecretStr(TOKEN), transport=httpx.MockTransport(handler))


async def test_get_instances_calls_the_documented_url_and_parses_the_list():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[ITEM, {**ITEM, "idInstance": 1102, "deleted": True}, {**ITEM, "idInstance": 1103, "isExpired": True}])

    async with _client(handler) as client:
        listed = await client.get_instances()
    assert [(r.method, str(r.url)) for r in seen] == [("GET", f"https://partner.example/partner/getInstances/{TOKEN}")]
    assert [(i.id_instance, i.name, i.usable) for i in listed] == [(1101, "shop", True), (1102, "shop", False), (1103, "shop", False)]
    assert listed[0].api_token_instance.get_secret_value() == ITEM["apiTokenInstance"]
    assert TOKEN not in repr(client) + repr(listed)


@pytest.mark.parametrize("body, error, code", [
    ({"code": 401, "description": "Unauthorized"}, PartnerAuthenticationError, 401),
    ({"code": 404, "description": "Not found"}, PartnerAPIError, 404),
    ({"code": 500, "description": "Internal"}, PartnerAPIError, 500),
])
async def test_an_error_body_with_http_200_is_an_error(body, error, code):
    async with _client(lambda request: httpx.Response(200, json=body)) as client:
        with pytest.raises(error) as raised:
            await client.get_instances()
    assert raised.value.code == code and f"code {code}" in str(raised.value) and body["description"] in str(raised.value)
    assert TOKEN not in exception_text(raised.value)


async def test_http_401_is_an_authentication_error():
    async with _client(lambda request: httpx.Response(401, json={"description": "Unauthorized"})) as client:
        with pytest.raises(PartnerAuthenticationError, match="HTTP 401"):
            await client.get_instances()


@pytest.mark.parametrize("fault", [httpx.ConnectError, httpx.ReadTimeout, httpx.RemoteProtocolError])
async def test_transport_faults_become_connection_errors_without_the_url(fault):
    def handler(request: httpx.Request) -> httpx.Response:
        raise fault(f"failed on {request.url}", request=request)

    async with _client(handler) as client:
        with pytest.raises(PartnerConnectionError) as raised:
            await client.get_instances()
    assert raised.value.__cause__ is None and raised.value.__context__ is None
    assert TOKEN not in exception_text(raised.value)


@pytest.mark.parametrize("response, match", [
    (httpx.Response(200, text="<html>gateway</html>", headers={"content-type": "text/html"}), "not JSON"),
    (httpx.Response(200, json={"instances": []}), "unexpected body"),
    (httpx.Response(200, json=[{"idInstance": "x"}]), "unexpected items: item 0"),
])
async def test_unexpected_answers(response, match):
    async with _client(lambda request: response) as client:
        with pytest.raises(PartnerResponseError, match=match) as raised:
            await client.get_instances()
    assert TOKEN not in exception_text(raised.value)


async def test_the_token_never_reaches_a_log(caplog):
    for name in ("httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
        logging.getLogger(name).disabled = False
    async with _client(lambda request: httpx.Response(200, json=[ITEM])) as client:
        await client.get_instances()
    assert "getInstances" in caplog.text  # httpx did log the request line
    assert TOKEN not in caplog.text


def test_a_url_without_a_scheme_is_refused():
    with pytest.raises(ValueError, match="http"):
        PartnerClient("partner.example", SecretStr(TOKEN))
