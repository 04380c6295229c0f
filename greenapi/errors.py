"""The error tree of the GREEN-API client.

Every message names the API method and the instance id. None carries the token, the
request URL or the underlying httpx exception (whose text holds the URL, and so the token).
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit


class GreenAPIError(Exception):
    """Root of every error the client raises."""

    def __init__(self, message: str, *, method: str, id_instance: int) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.id_instance = id_instance

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # keep the keyword-only fields when pickled (Prefect may persist it)
        return (_rebuild_error, (type(self), self.__dict__.copy()))


def _rebuild_error(cls: type[GreenAPIError], state: dict) -> GreenAPIError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message", ""))
    error.__dict__.update(state)
    return error


class APIConnectionError(GreenAPIError):
    """The request never got an HTTP answer (DNS, refused, reset, TLS)."""


class APITimeoutError(APIConnectionError):
    """No answer within the configured timeout."""


class APIResponseValidationError(GreenAPIError):
    """HTTP 2xx, but the body is not JSON or not the shape the method promises.

    ``transient`` is true for a body that is not JSON at all, or ``null``: what a proxy or a gateway
    hiccup produces, so it is retried. A JSON body of the wrong shape is a contract change: never retried.
    """

    def __init__(self, message: str, *, method: str, id_instance: int, transient: bool = False) -> None:
        super().__init__(message, method=method, id_instance=id_instance)
        self.transient = transient


class APIStatusError(GreenAPIError):
    """GREEN-API answered with a non-2xx status."""

    def __init__(self, message: str, *, method: str, id_instance: int, status_code: int) -> None:
        super().__init__(message, method=method, id_instance=id_instance)
        self.status_code = status_code


class BadRequestError(APIStatusError):
    """400: bad request, or the instance is starting, not authorized, expired or deleted."""


class AuthenticationError(APIStatusError):
    """401: the apiTokenInstance is wrong."""


class PermissionDeniedError(APIStatusError):
    """403: the idInstance or the apiUrl is wrong."""


class NotFoundError(APIStatusError):
    """404: wrong HTTP verb or method name (a client bug, never retried)."""


class RateLimitError(APIStatusError):
    """429: the per-instance rate limit was hit (retried with backoff)."""


class QuotaExceededError(APIStatusError):
    """466: the monthly quota of the account is used up."""


class InternalServerError(APIStatusError):
    """5xx from GREEN-API or a gateway in front of it."""


_STATUS_ERRORS: dict[int, tuple[type[APIStatusError], str]] = {
    400: (BadRequestError, "bad request, or the instance is starting, not authorized or expired"),
    401: (AuthenticationError, "unauthorized: the apiTokenInstance was refused for idInstance {id_instance}"),
    403: (PermissionDeniedError, "forbidden: check idInstance and apiUrl"),
    # This client sends only the documented verbs, so GREEN-API itself has no reason to answer 404.
    404: (NotFoundError, "not found: {not_greenapi}"),
    429: (RateLimitError, "too many requests"),
    466: (QuotaExceededError, "monthly quota exceeded"),
}


def api_host(api_url: str) -> str:
    """The host (and port) of an apiUrl, the only part of it a message names: no path, query or userinfo."""
    parts = urlsplit(api_url)
    host = parts.hostname or "the apiUrl"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port else host


def not_greenapi(host: str) -> str:
    """What a wrong apiUrl looks like from here: something answered, but not GREEN-API."""
    return f"the answer from {host or 'the apiUrl'} does not look like GREEN-API's (check apiUrl)"


def status_error(status_code: int, *, method: str, id_instance: int, host: str = "", detail: str = "") -> APIStatusError:
    """Map an HTTP status to its error type: the one place where that mapping lives."""
    if status_code in _STATUS_ERRORS:
        cls, meaning = _STATUS_ERRORS[status_code]
    elif status_code >= 500:
        cls, meaning = InternalServerError, "server error"
    else:  # a redirect, 405, 418...: GREEN-API documents none of them
        cls, meaning = APIStatusError, "unexpected status: {not_greenapi}"
    meaning = meaning.format(id_instance=id_instance, not_greenapi=not_greenapi(host))
    message = f"{method} on instance {id_instance} failed: HTTP {status_code} {meaning}"
    if detail:
        message = f"{message} ({detail})"
    return cls(message, method=method, id_instance=id_instance, status_code=status_code)


def body_error(problem: str, *, method: str, id_instance: int, host: str = "", transient: bool,
               looks_foreign: bool = True) -> APIResponseValidationError:
    """A 2xx whose body is not what the method promises; ``looks_foreign``: say it may not be GREEN-API at all."""
    message = f"{method} on instance {id_instance}: {problem}"
    if looks_foreign:
        message = f"{message}: {not_greenapi(host)}"
    return APIResponseValidationError(message, method=method, id_instance=id_instance, transient=transient)


def connection_error(exc: BaseException, *, method: str, id_instance: int, host: str = "",
                     timed_out: bool = False) -> APIConnectionError:
    """No HTTP answer at all: the host is named (a wrong apiUrl), never the URL (it holds the token).
    Only the exception's type name is used: its text holds the URL."""
    where = host or "the apiUrl"
    kind = type(exc).__name__
    if timed_out:
        return APITimeoutError(f"{method} on instance {id_instance} failed: timed out ({kind}) waiting for {where}",
                               method=method, id_instance=id_instance)
    what = f"cannot resolve the host {where}" if _caused_by(exc, socket.gaierror) else f"no answer from {where}"
    return APIConnectionError(f"{method} on instance {id_instance} failed: connection error ({kind}): {what} (check apiUrl)",
                              method=method, id_instance=id_instance)


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, kind):
            return True
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return False
