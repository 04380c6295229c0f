"""GREEN-API's Partner API: the instances of a partner account. Knows nothing of Prefect.

``GET {partnerApiUrl}/partner/getInstances/{partnerToken}``. The partner token is in the URL path, so no
URL is ever logged, raised or printed; errors are mapped in :func:`partner_error`, the one place. GREEN-API
answers partner errors with HTTP 200 and a body like ``{"code": 401, "description": "Unauthorized"}``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from greenapi.credentials import ID_INSTANCE_MAX, ID_INSTANCE_MIN
from greenapi.redaction import install_log_redaction, redact_url_text

logger = logging.getLogger("greenapi.partner")


class PartnerAPIError(Exception):
    """Root of the partner client's errors. The message names the method, never the token or the URL."""

    def __init__(self, message: str, *, method: str = "getInstances", code: int | None = None) -> None:
        super().__init__(message)
        self.message, self.method, self.code = message, method, code

    def __str__(self) -> str:
        return self.message


class PartnerAuthenticationError(PartnerAPIError):
    """The partner token was refused (``{"code": 401}``, with HTTP 200 or 401)."""


class PartnerConnectionError(PartnerAPIError):
    """No HTTP answer: DNS, refused, reset, TLS or a timeout."""


class PartnerResponseError(PartnerAPIError):
    """An answer that is neither the instance list nor a partner error body we know."""


_MEANINGS = {401: "unauthorized: check the partner token (GREEN_API_PARTNER_TOKEN or the greenapi-partner block)",
             403: "forbidden: the account is not a partner account", 404: "not found: check the partner API URL",
             429: "too many requests"}


def partner_error(code: int, description: str = "", *, method: str = "getInstances", http: bool = False) -> PartnerAPIError:
    """Map a partner error (an HTTP status, or the ``code`` of a 200 error body) to its error: the one place."""
    cls = PartnerAuthenticationError if code == 401 else PartnerAPIError
    meaning = _MEANINGS.get(code, "server error" if code >= 500 else "error")
    where = f"HTTP {code}" if http else f"code {code}"
    detail = f" ({redact_url_text(description)[:120]})" if description else ""
    return cls(f"partner {method} failed: {where} {meaning}{detail}", method=method, code=code)


class PartnerInstance(BaseModel):
    """One instance of the partner account, as getInstances lists it (the token stays a SecretStr)."""

    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True, populate_by_name=True)

    id_instance: int = Field(alias="idInstance", ge=ID_INSTANCE_MIN, le=ID_INSTANCE_MAX)
    api_token_instance: SecretStr = Field(alias="apiTokenInstance")
    name: str = ""
    type_instance: str = Field(default="whatsapp", alias="typeInstance")
    deleted: bool = False
    is_expired: bool = Field(default=False, alias="isExpired")
    api_url: str | None = Field(default=None, alias="apiUrl")

    @property
    def usable(self) -> bool:
        """Neither deleted nor expired."""
        return not self.deleted and not self.is_expired


class PartnerClient:
    """``async with PartnerClient(url, token) as partner: await partner.get_instances()``."""

    def __init__(self, partner_api_url: str, partner_token: SecretStr, *, timeout_seconds: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        install_log_redaction()
        self._url = partner_api_url.strip().rstrip("/")
        if not self._url.startswith(("http://", "https://")):
            raise ValueError("the partner API URL must start with http:// or https://")
        self._token = partner_token
        self._http = httpx.AsyncClient(transport=transport, timeout=timeout_seconds, follow_redirects=False)

    def __repr__(self) -> str:
        return f"PartnerClient(partner_api_url={self._url!r})"

    async def __aenter__(self) -> "PartnerClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get_instances(self) -> list[PartnerInstance]:
        """Every instance of the account, deleted and expired ones included (see ``PartnerInstance.usable``)."""
        data = await self._get("getInstances")
        if isinstance(data, dict) and "code" in data:
            raise partner_error(_int(data.get("code")), str(data.get("description") or ""))
        if not isinstance(data, list):
            raise PartnerResponseError(f"partner getInstances: unexpected body (a JSON {type(data).__name__}, not a list)")
        found, problems = [], []
        for index, item in enumerate(data):
            try:
                found.append(PartnerInstance.model_validate(item))
            except ValidationError as exc:
                first = exc.errors()[0]
                problems.append(f"item {index}: {'.'.join(str(p) for p in first['loc']) or 'item'}: {first['msg']}")
        if problems:
            raise PartnerResponseError(f"partner getInstances: unexpected items: {'; '.join(problems[:3])}")
        return found

    async def _get(self, method: str) -> Any:
        # The only place the partner token is unwrapped: straight into the request URL.
        url = f"{self._url}/partner/{method}/{self._token.get_secret_value()}"
        failure: PartnerAPIError | None = None
        try:
            response = await self._http.get(url)
        except httpx.TimeoutException as exc:
            failure = PartnerConnectionError(f"partner {method} failed: timed out ({type(exc).__name__})", method=method)
        except (httpx.TransportError, httpx.DecodingError) as exc:
            failure = PartnerConnectionError(f"partner {method} failed: connection error ({type(exc).__name__})", method=method)
        if failure is not None:
            raise failure  # outside the handler: the httpx exception (its text holds the URL) is not chained
        if not response.is_success:
            raise partner_error(response.status_code, _description(response), method=method, http=True)
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass
        raise PartnerResponseError(
            f"partner {method}: body is not JSON (content-type {response.headers.get('content-type', 'none')!r})", method=method)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _description(response: httpx.Response) -> str:
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return ""
    if isinstance(data, dict):
        value = data.get("description") or data.get("message")
        return str(value) if isinstance(value, (str, int)) else ""
    return ""
