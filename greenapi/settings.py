"""All configuration, from the environment (prefix ``GREEN_API_``) or a ``.env`` file."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from greenapi.credentials import DEFAULT_API_URL, InstanceCredentials


class ConfigurationError(ValueError):
    """The configuration cannot be used; the message names the setting, never a secret value."""


class GreenAPISettings(BaseSettings):
    """Connection, retry and timing settings. Create it with :func:`get_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="GREEN_API_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    api_url: str = Field(default=DEFAULT_API_URL, description="GREEN-API host (each instance's own host works too).")
    id_instance: int | None = Field(default=None, ge=1, le=9_999_999_999, description="idInstance used when no block is named.")
    api_token_instance: SecretStr | None = Field(default=None, description="apiTokenInstance used when no block is named.")

    connect_timeout_seconds: float = Field(default=5.0, gt=0, description="TCP/TLS connect timeout per request.")
    read_timeout_seconds: float = Field(default=15.0, gt=0, description="Timeout waiting for an answer (receiveNotification adds its receiveTimeout).")
    max_retries: int = Field(default=3, ge=0, le=10, description="Retries of one request on 429, 502/503/504, connection errors and timeouts.")
    retry_backoff_initial_seconds: float = Field(default=0.5, ge=0, description="First retry delay; doubles each retry.")
    retry_backoff_max_seconds: float = Field(default=8.0, ge=0, description="Cap of one retry delay (also caps Retry-After).")
    retry_jitter_ratio: float = Field(default=0.25, ge=0, le=1, description="Random share taken off each backoff delay.")

    count_refresh_seconds: float = Field(default=10.0, ge=0, description="GetWebhooksCount is a snapshot refreshed this often; verification waits this long after a clear.")
    clear_interval_seconds: float = Field(default=60.0, ge=0, description="ClearWebhooksQueue is allowed once per this interval; a re-clear waits for it.")
    left_time_margin_seconds: float = Field(default=0.5, ge=0, le=1, description="Added to every leftTime wait (at most one second).")
    max_clear_attempts: int = Field(default=5, ge=1, le=50, description="ClearWebhooksQueue calls per run, too-early answers included.")
    max_refused_clears: int = Field(default=2, ge=0, le=10, description="Clear answers of isCleared false with an error reason (not leftTime) tried again before the run gives up.")
    refused_retry_seconds: float = Field(default=2.0, ge=0, le=60, description="Wait before trying a refused clear again.")
    max_total_wait_seconds: float = Field(default=300.0, ge=0, description="Upper bound on all waits of one run together.")
    instance_lock_timeout_seconds: float = Field(default=900.0, gt=0, description="How long a run waits for another run on the same instance to finish.")
    instance_lock_lease_seconds: float = Field(default=60.0, ge=60, le=3600, description="If a run dies holding its instance's lock, the lock frees after this long (Prefect's minimum lease is 60 s).")
    observation_max_age_seconds: float = Field(default=120.0, ge=0, le=900, description="A run the sweep started uses the sweep's inspection of the instance when it is at most this old, instead of asking GREEN-API again.")
    cancel_check_seconds: float = Field(default=2.0, gt=0, le=60, description="How often a run asks Prefect whether it was cancelled (from the UI or the API), so it stops where it runs.")
    receive_timeout_seconds: int = Field(default=5, ge=5, le=60, description="receiveTimeout of the verification peek (GREEN-API accepts 5-60).")
    settings_apply_timeout_seconds: float = Field(default=300.0, ge=0, le=900, description="With detach_webhook: how long to wait for SetSettings' empty webhookUrl to apply (GREEN-API: within 5 minutes) before giving up.")
    settings_poll_seconds: float = Field(default=5.0, ge=1, le=60, description="With detach_webhook: how often GetSettings is read while waiting for the empty webhookUrl to apply.")
    partner_api_url: str = Field(default="https://api.green-api.com", description="Partner API host: GET {partnerApiUrl}/partner/getInstances/{partnerToken} (instances import --partner, the sweep's partner fleet).")
    partner_token: SecretStr | None = Field(default=None, description="Partner token of a GREEN-API partner account (or a greenapi-partner block).")
    notify_block: str | None = Field(default=None, description="Prefect notification block that failure notifications go through, as block-type-slug/block-name (e.g. slack-webhook/ops, custom-webhook/ops); unset: no notifications.")

    @model_validator(mode="after")
    def _backoff_is_ordered(self) -> "GreenAPISettings":
        if self.retry_backoff_max_seconds < self.retry_backoff_initial_seconds:
            raise ValueError("retry_backoff_max_seconds must be >= retry_backoff_initial_seconds")
        return self

    def credentials(self) -> InstanceCredentials:
        """The instance from the environment; a ConfigurationError names what is missing."""
        missing = [
            name
            for name, value in (("GREEN_API_ID_INSTANCE", self.id_instance), ("GREEN_API_API_TOKEN_INSTANCE", self.api_token_instance))
            if value is None
        ]
        if missing:
            raise ConfigurationError(f"missing setting(s): {', '.join(missing)} (or name a credentials block)")
        try:
            return InstanceCredentials(api_url=self.api_url, id_instance=self.id_instance, api_token_instance=self.api_token_instance)
        except ValueError as exc:
            raise ConfigurationError(_first_error(exc)) from None


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        location = ".".join(str(part) for part in first.get("loc", ()))
        return f"{location}: {first.get('msg')}" if location else str(first.get("msg"))
    return str(exc)


def get_settings(**overrides) -> GreenAPISettings:
    """Read the settings now (never at import). Errors become one-line ConfigurationErrors."""
    try:
        return GreenAPISettings(**overrides)
    except ValueError as exc:
        raise ConfigurationError(f"invalid GREEN_API_ setting: {_first_error(exc)}") from None
