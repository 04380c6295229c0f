"""Receiver configuration, from the environment (prefix ``GREEN_API_RECEIVER_``) or a ``.env`` file."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ReceiverConfigurationError(ValueError):
    """The receiver cannot start with this configuration; the message never holds the secret."""


class ReceiverSettings(BaseSettings):
    """Create it with :func:`get_receiver_settings` (never at import)."""

    model_config = SettingsConfigDict(
        env_prefix="GREEN_API_RECEIVER_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    secret: SecretStr | None = Field(
        default=None,
        description="Bearer token callers must send (`Authorization: Bearer <secret>`); also GREEN-API's webhookUrlToken. Required to start.",
    )
    host: str = Field(default="127.0.0.1", min_length=1, description="Interface to listen on.")
    port: int = Field(default=8787, ge=0, le=65535, description="TCP port to listen on (0 picks a free port).")
    max_body_bytes: int = Field(default=65536, ge=1, le=16 * 1024 * 1024, description="Largest request body accepted; larger bodies get 413.")
    dedup_ttl_seconds: float = Field(default=3600.0, ge=0, description="How long an accepted event id is remembered, so a re-delivery is answered as a duplicate and not emitted again.")
    dedup_max_entries: int = Field(default=100_000, ge=1, description="Most event ids remembered at once (oldest forgotten first).")
    registry_ttl_seconds: float = Field(default=10.0, gt=0, le=3600, description="How long the set of registered instances (greenapi-instance blocks) read from Prefect is reused; an instance missing from it is looked up again at most once a second.")

    dispatch: Literal["trigger", "background"] = Field(
        default="trigger",
        description="How a report becomes a run: `trigger` emits the event and the deployment's event trigger starts the run (Prefect's runner, a new process per run); `background` hands it to a Prefect task worker (`handle-reported-change`, no new process) and emits `<event>.dispatched`. `greenapi-migrate serve` uses `background` unless this is set.",
    )

    forward_url: str | None = Field(
        default=None,
        description="The operator's app's webhook URL. Set: the receiver is a relay in front of it (it may then be the "
        "instance's webhookUrl): every GREEN-API body goes on unchanged, GREEN-API hears 200 only once the app answered "
        "2xx, and notifications of an account no longer on the instance are held back. Unset: nothing is forwarded, "
        "so the receiver must not be the webhookUrl of an instance whose notifications an app needs.",
    )
    forward_token: SecretStr | None = Field(
        default=None, description="Sent to the app as `Authorization: Bearer <token>` with every forwarded body; never logged.",
    )
    forward_timeout_seconds: float = Field(
        default=30.0, gt=0, le=170,
        description="How long the relay waits for the app's answer; then GREEN-API is answered 504 and sends it again "
        "(GREEN-API itself waits up to 180 s).",
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
