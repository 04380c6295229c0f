"""The GREEN-API connection settings, from the environment (prefix ``GREEN_API_``) or a ``.env`` file.

Only what an operator sets: where GREEN-API is, the instance and partner account to use when no block is
named, and how long a request may take. GREEN-API's own timings are constants (greenapi/timings.py), the
runs' bounds belong to the flows (flows/limits.py), the receiver's settings to the receiver.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from greenapi.client import ClientConfig
from greenapi.credentials import DEFAULT_API_URL, InstanceCredentials


class ConfigurationError(ValueError):
    """The configuration cannot be used; the message names the setting, never a secret value."""


class GreenAPISettings(BaseSettings):
    """Where GREEN-API is and who to talk to. Create it with :func:`get_settings` (never at import)."""

    model_config = SettingsConfigDict(
        env_prefix="GREEN_API_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
        hide_input_in_errors=True,
    )

    api_url: str = Field(default=DEFAULT_API_URL, description="GREEN-API host of GREEN_API_ID_INSTANCE and of the "
                         "partner API (a block names its own host).")
    id_instance: int | None = Field(default=None, ge=1, le=9_999_999_999, description="idInstance a run uses when it is given "
                                    "no block name or idInstance.")
    api_token_instance: SecretStr | None = Field(default=None, description="apiTokenInstance of GREEN_API_ID_INSTANCE.")
    partner_token: SecretStr | None = Field(default=None, description="Partner token, for `instances import --partner` "
                                            "and the sweep's partner fleet (or a greenapi-partner block).")
    timeout_seconds: float = Field(default=ClientConfig.timeout_seconds, gt=0, le=300, description="How long one request "
                                   "to GREEN-API may wait for its answer.")
    max_retries: int = Field(default=ClientConfig.max_retries, ge=0, le=10, description="Retries of one request on 429, "
                             "5xx, connection errors and timeouts.")

    def client_config(self) -> ClientConfig:
        """The GREEN-API client's configuration: these timeouts and retries, the client's own backoff."""
        return ClientConfig(timeout_seconds=self.timeout_seconds, max_retries=self.max_retries,
                            connect_timeout_seconds=min(ClientConfig.connect_timeout_seconds, self.timeout_seconds))

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
    """``GREEN_API_<FIELD>: <what is wrong>`` (the credentials' fields are named as the settings are); never the value."""
    if isinstance(exc, ValidationError):
        first = exc.errors(include_input=False, include_url=False, include_context=False)[0]
        location = "_".join(str(part) for part in first.get("loc", ())).upper()
        return f"GREEN_API_{location}: {first.get('msg')}" if location else str(first.get("msg"))
    return str(exc)


def get_settings(**overrides) -> GreenAPISettings:
    """Read the settings now (never at import). Errors become one-line ConfigurationErrors."""
    try:
        return GreenAPISettings(**overrides)
    except ValueError as exc:
        raise ConfigurationError(f"invalid setting {_first_error(exc)}") from None
