"""An async GREEN-API client for the queue methods. Knows nothing of Prefect."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from greenapi.credentials import InstanceCredentials
from greenapi.errors import (
    APIConnectionError,
    APIResponseValidationError,
    GreenAPIError,
    api_host,
    body_error,
    connection_error,
    status_error,
)
from greenapi.models import ClearOutcome, InstanceSettings, Notification, QueueCount, SaveSettings, StateInstance
from greenapi.pacing import Pacer
from greenapi.redaction import install_log_redaction, redact_url_text
from greenapi.retry import RETRYABLE_STATUSES, RetryPolicy
from greenapi.timings import MIN_RECEIVE_TIMEOUT_SECONDS

logger = logging.getLogger("greenapi.client")

Model = TypeVar("Model", bound=BaseModel)

_MAX_DETAIL_CHARS = 120
_NOT_JSON = object()


@dataclass(frozen=True)
class ClientConfig:
    """How a client talks to GREEN-API: timeouts and retries. The one home of their defaults.

    ``timeout_seconds`` and ``max_retries`` come from the public settings (``GreenAPISettings.client_config()``);
    the backoff is the client's own (tests shorten it).
    """

    #: Waiting for an answer, per request (receiveNotification adds its receiveTimeout).
    timeout_seconds: float = 15.0
    #: TCP/TLS connect, per request; never more than ``timeout_seconds``.
    connect_timeout_seconds: float = 5.0
    #: Retries of one request on 429, 500/502/503/504, connection errors and timeouts.
    max_retries: int = 3
    #: First retry delay; doubles each retry, up to ``retry_backoff_max_seconds`` (which also caps Retry-After).
    retry_backoff_initial_seconds: float = 0.5
    retry_backoff_max_seconds: float = 8.0
    #: Random share taken off each backoff delay.
    retry_jitter_ratio: float = 0.25

    def __post_init__(self) -> None:
        if self.timeout_seconds <= 0 or self.connect_timeout_seconds <= 0:
            raise ValueError("timeouts must be > 0 seconds")
        if not 0 <= self.max_retries <= 10:
            raise ValueError("max_retries must be 0 to 10")
        if not 0 <= self.retry_backoff_initial_seconds <= self.retry_backoff_max_seconds:
            raise ValueError("retry_backoff_max_seconds must be >= retry_backoff_initial_seconds >= 0")
        if not 0 <= self.retry_jitter_ratio <= 1:
            raise ValueError("retry_jitter_ratio must be 0 to 1")

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(max_retries=self.max_retries, initial_seconds=self.retry_backoff_initial_seconds,
                           max_seconds=self.retry_backoff_max_seconds, jitter_ratio=self.retry_jitter_ratio)

    def with_timeout(self, seconds: float) -> "ClientConfig":
        """The same, with each request limited to ``seconds`` (connect included)."""
        return replace(self, timeout_seconds=seconds, connect_timeout_seconds=min(self.connect_timeout_seconds, seconds))


class GreenAPIClient:
    """One instance's methods. Use ``async with GreenAPIClient(credentials, config) as client``.

    Retries 429, 502, 503, 504, connection errors and timeouts with capped, jittered backoff
    (honouring Retry-After); never retries 400/401/403/404/466. Raises only GreenAPIError subclasses.

    Paces itself to GREEN-API's per-instance rate limits (``greenapi.pacing``): never sends one
    method twice within its minimum interval (getStateInstance, getSettings: 1 s), retries
    included; a retry waits its backoff or until pacing allows, whichever is longer.
    ``sleep`` and ``clock`` are the client's notion of time (tests pass fakes). With only
    ``sleep`` replaced, pacing still counts real time, and a wait it needs goes through ``sleep``.
    """

    def __init__(
        self,
        credentials: InstanceCredentials,
        config: ClientConfig | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        config = config or ClientConfig()
        install_log_redaction()
        self._credentials = credentials
        self._host = api_host(credentials.api_url)  # what messages name: never the URL, which holds the token
        self._config = config
        self._retry = config.retry
        self._timeout = self._timeout_with_extra_read(0)
        self._pacer = Pacer(clock=clock, sleep=sleep)
        # A caller's http_client (one pool for a whole fleet) stays the caller's to close.
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(transport=transport, timeout=self._timeout, follow_redirects=False)

    @property
    def id_instance(self) -> int:
        return self._credentials.id_instance

    def __repr__(self) -> str:
        return f"GreenAPIClient(id_instance={self.id_instance}, api_url={self._credentials.api_url!r})"

    async def __aenter__(self) -> "GreenAPIClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    # -- the methods -------------------------------------------------------------------------

    async def get_state_instance(self) -> StateInstance:
        return await self._call("GET", "getStateInstance", StateInstance)

    async def get_settings(self) -> InstanceSettings:
        return await self._call("GET", "getSettings", InstanceSettings)

    async def set_settings(self, changes: Mapping[str, str | bool | int | SecretStr]) -> SaveSettings:
        """SetSettings (POST) with the given GetSettings fields. SecretStr values are unwrapped only into the
        request body, which is never logged. GREEN-API restarts the instance; the values apply within 5 minutes."""
        body = {key: value.get_secret_value() if isinstance(value, SecretStr) else value for key, value in changes.items()}
        return await self._call("POST", "setSettings", SaveSettings, json_body=body)

    async def get_webhooks_count(self) -> QueueCount:
        return await self._call("GET", "getWebhooksCount", QueueCount)

    async def clear_webhooks_queue(self) -> ClearOutcome:
        return await self._call("DELETE", "clearWebhooksQueue", ClearOutcome)

    async def get_messages_count(self) -> QueueCount:
        return await self._call("GET", "getMessagesCount", QueueCount)

    async def clear_messages_queue(self) -> ClearOutcome:
        return await self._call("GET", "clearMessagesQueue", ClearOutcome)

    async def receive_notification(self, receive_timeout: int = MIN_RECEIVE_TIMEOUT_SECONDS) -> Notification | None:
        """Peek at the oldest queued notification, waiting up to ``receive_timeout`` seconds (GREEN-API: 5-60) for
        one; ``None`` when nothing is queued."""
        return await self._call(
            "GET",
            "receiveNotification",
            Notification,
            params={"receiveTimeout": receive_timeout},
            nullable=True,
            timeout=self._timeout_with_extra_read(receive_timeout),
        )

    # -- plumbing ----------------------------------------------------------------------------

    def _timeout_with_extra_read(self, seconds: float) -> httpx.Timeout:
        return httpx.Timeout(
            self._config.timeout_seconds + seconds,
            connect=min(self._config.connect_timeout_seconds, self._config.timeout_seconds),
        )

    def _url(self, method: str) -> str:
        # The only place the token is unwrapped: it goes straight into the request URL.
        token = self._credentials.api_token_instance.get_secret_value()
        return f"{self._credentials.api_url}/waInstance{self.id_instance}/{method}/{token}"

    async def _call(
        self,
        verb: str,
        method: str,
        model: type[Model],
        *,
        params: dict[str, Any] | None = None,
        nullable: bool = False,
        timeout: httpx.Timeout | None = None,
        json_body: dict[str, Any] | None = None,
    ) -> Model | None:
        async with self._pacer.turn(method):
            attempt = 0
            backoff: float | None = None  # None before the first attempt
            while True:
                attempt += 1
                await self._pacer.wait(method, at_least=backoff)
                try:
                    outcome, retry_after = await self._attempt(verb, method, params, timeout, json_body)
                finally:
                    self._pacer.done(method)
                if isinstance(outcome, httpx.Response):
                    try:
                        return self._parse(method, outcome, model, nullable)
                    except APIResponseValidationError as bad_body:
                        if not bad_body.transient:
                            raise
                        outcome = bad_body
                error = outcome
                retryable = (
                    isinstance(error, APIConnectionError)
                    or getattr(error, "status_code", None) in RETRYABLE_STATUSES
                    or getattr(error, "transient", False)
                )
                if not retryable or attempt > self._retry.max_retries:
                    if retryable and self._retry.max_retries:
                        error.message = f"{error.message}; gave up after {attempt} attempts"
                        error.args = (error.message,)
                    raise error
                backoff = self._retry.delay(attempt, retry_after)
                logger.warning(
                    "%s; retry %d of %d in %.2f s", error.message, attempt, self._retry.max_retries,
                    max(backoff, self._pacer.remaining(method)),
                )

    async def _attempt(
        self, verb: str, method: str, params: dict[str, Any] | None, timeout: httpx.Timeout | None,
        json_body: dict[str, Any] | None = None,
    ) -> tuple[httpx.Response | GreenAPIError, str | None]:
        """One HTTP exchange. Returns the 2xx response, or the error to raise or retry.

        httpx exceptions are turned into our own here and never chained: their text holds the URL.
        """
        failure: GreenAPIError | None = None
        try:
            response = await self._http.request(
                verb, self._url(method), params=params, json=json_body, timeout=timeout or self._timeout,
                follow_redirects=False,
            )
        except httpx.TimeoutException as exc:
            failure = connection_error(exc, method=method, id_instance=self.id_instance, host=self._host, timed_out=True)
        except httpx.DecodingError as exc:
            # A body that fails Content-Encoding decoding; not a TransportError, and its .request holds the URL.
            failure = body_error(f"body could not be decoded ({type(exc).__name__})", method=method,
                                 id_instance=self.id_instance, host=self._host, transient=False, looks_foreign=False)
        except httpx.TransportError as exc:
            failure = connection_error(exc, method=method, id_instance=self.id_instance, host=self._host)
        if failure is not None:
            return failure, None
        if response.is_success:
            return response, None
        return (
            status_error(response.status_code, method=method, id_instance=self.id_instance, host=self._host,
                         detail=_error_detail(response)),
            response.headers.get("Retry-After"),
        )

    def _parse(self, method: str, response: httpx.Response, model: type[Model], nullable: bool) -> Model | None:
        """The typed answer. A body that is not JSON, or null, is transient (retried); a wrong shape is not."""
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = _NOT_JSON  # raised below, outside the handler: our errors chain nothing
        if data is _NOT_JSON:
            content_type = response.headers.get("content-type", "none")
            raise self._bad_body(method, f"body is not JSON (content-type {content_type!r})", transient=True, looks_foreign=True)
        if data is None:
            if nullable:
                return None
            # GREEN-API itself answers null while an instance is being created: not a sign of another server.
            raise self._bad_body(method, "body is null", transient=True, looks_foreign=False)
        details = None
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            details = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()[:3])
        raise self._bad_body(method, f"unexpected body: {details}", transient=False, looks_foreign=True)

    def _bad_body(self, method: str, problem: str, *, transient: bool, looks_foreign: bool) -> APIResponseValidationError:
        return body_error(problem, method=method, id_instance=self.id_instance, host=self._host, transient=transient,
                          looks_foreign=looks_foreign)


def _error_detail(response: httpx.Response) -> str:
    """A short, token-free hint from an error body: JSON message fields only, never raw HTML."""
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return ""
    if isinstance(data, dict):
        for key in ("message", "error", "reason", "invokeStatus"):
            value = data.get(key)
            if isinstance(value, (str, int)) and str(value):
                return redact_url_text(str(value))[:_MAX_DETAIL_CHARS]
    return ""
