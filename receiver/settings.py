"""Receiver configuration: what an operator sets, from the environment (prefix ``GREEN_API_RECEIVER_``) or a
``.env`` file, and the receiver's fixed bounds (:class:`ReceiverLimits`, not settings)."""

from __future__ import annotations

from dataclasses import dataclass
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from greenapi.timings import WEBHOOK_ANSWER_TIMEOUT_SECONDS


class ReceiverConfigurationError(ValueError):
    """The receiver cannot start with this configuration; the message never holds the secret."""


@dataclass(frozen=True)
class ReceiverLimits:
    """The receiver's bounds. No operator tunes them; tests hand in others (``create_app(settings, limits=...)``)."""

    #: Largest request body accepted; larger bodies get 413 (GREEN-API's notifications are a few KB).
    max_body_bytes: int = 65536
    #: How long an accepted event id is remembered, so a re-delivery is answered as a duplicate, not emitted again.
    dedup_ttl_seconds: float = 3600.0
    #: Most event ids remembered at once (oldest forgotten first).
    dedup_max_entries: int = 100_000
    #: How long the set of registered instances read from Prefect is reused; an instance missing from it is looked
    #: up again at most once a second.
    registry_ttl_seconds: float = 10.0
    #: How long the relay waits for the app's answer; then GREEN-API is answered 504 and sends it again. Shorter
    #: than GREEN-API's own wait for an answer, so the 504 reaches it.
    forward_timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.forward_timeout_seconds < WEBHOOK_ANSWER_TIMEOUT_SECONDS:
            raise ValueError(f"forward_timeout_seconds must be above 0 and below GREEN-API's {WEBHOOK_ANSWER_TIMEOUT_SECONDS:.0f} s")


class ReceiverSettings(BaseSettings):
    """What an operator sets for the receiver. Create it with :func:`get_receiver_settings` (never at import)."""

    model_config = SettingsConfigDict(
        env_prefix="GREEN_API_RECEIVER_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
        hide_input_in_errors=True,
    )

    secret: SecretStr | None = Field(
        default=None,
        description="Required. Bearer token every caller sends (`Authorization: Bearer <secret>`); the instances' "
        "webhookUrlToken.",
    )
    host: str = Field(default="127.0.0.1", min_length=1, description="Interface the receiver listens on (0.0.0.0: all).")
    port: int = Field(default=8787, ge=0, le=65535, description="Port the receiver listens on (0 picks a free one).")

    forward_url: str | None = Field(
        default=None,
        description="Your app's webhook URL: set, the receiver relays every GREEN-API notification to it (and holds back "
        "those of an account no longer on the instance); unset, nothing is forwarded.",
    )
    forward_token: SecretStr | None = Field(
        default=None, description="Bearer token sent to that app with every forwarded notification.",
    )

    @field_validator("forward_url", mode="after")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not value.lower().startswith(("http://", "https://")) or len(value.split("://", 1)[1]) == 0:
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("forward_token", mode="after")
    @classmethod
    def _blank_token_is_no_token(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is not None and not value.get_secret_value().strip() else value

    @field_validator("secret", mode="after")
    @classmethod
    def _blank_secret_is_no_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            return None
        return value

    def require_secret(self) -> bytes:
        """The secret as bytes; a ReceiverConfigurationError when there is none."""
        if self.secret is None:
            raise ReceiverConfigurationError("GREEN_API_RECEIVER_SECRET is not set (the receiver never runs without authentication)")
        return self.secret.get_secret_value().encode("utf-8")


def _first_error(exc: ValidationError) -> str:
    first = exc.errors(include_input=False, include_url=False, include_context=False)[0]
    field = ".".join(str(part) for part in first.get("loc", ()))
    name = f"GREEN_API_RECEIVER_{field.upper()}" if field else "GREEN_API_RECEIVER_*"
    return f"{name}: {first.get('msg')}"


def get_receiver_settings(**overrides) -> ReceiverSettings:
    """Read the settings now. Errors become one-line ReceiverConfigurationErrors naming the variable, never a value."""
    try:
        return ReceiverSettings(**overrides)
    except ValidationError as exc:
        raise ReceiverConfigurationError(f"invalid receiver setting: {_first_error(exc)}") from None
