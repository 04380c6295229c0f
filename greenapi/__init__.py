"""A plain GREEN-API client library: credentials, settings, typed answers, errors, GREEN-API's timings. No Prefect here."""

from greenapi.client import ClientConfig, GreenAPIClient
from greenapi.credentials import DEFAULT_API_URL, InstanceCredentials
from greenapi.errors import (
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
from greenapi.partner import (
    PartnerAPIError,
    PartnerAuthenticationError,
    PartnerClient,
    PartnerConnectionError,
    PartnerInstance,
    PartnerResponseError,
)
from greenapi.models import ClearOutcome, InstanceSettings, Notification, QueueCount, SaveSettings, StateInstance
from greenapi.settings import ConfigurationError, GreenAPISettings, get_settings
from greenapi.timings import GreenApiTimings, green_api_timings

__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClearOutcome",
    "ClientConfig",
    "ConfigurationError",
    "DEFAULT_API_URL",
    "GreenAPIClient",
    "GreenAPIError",
    "GreenAPISettings",
    "GreenApiTimings",
    "InstanceCredentials",
    "InstanceSettings",
    "InternalServerError",
    "Notification",
    "NotFoundError",
    "PartnerAPIError",
    "PartnerAuthenticationError",
    "PartnerClient",
    "PartnerConnectionError",
    "PartnerInstance",
    "PartnerResponseError",
    "PermissionDeniedError",
    "QueueCount",
    "QuotaExceededError",
    "RateLimitError",
    "SaveSettings",
    "StateInstance",
    "get_settings",
    "green_api_timings",
]
