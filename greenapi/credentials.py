"""Who to talk to: the three values that address one GREEN-API instance."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

DEFAULT_API_URL = "https://api.green-api.com"
#: The idInstance values GREEN-API issues: 1 to 10 digits.
ID_INSTANCE_MIN, ID_INSTANCE_MAX = 1, 9_999_999_999


class InstanceCredentials(BaseModel):
    """apiUrl, idInstance and apiTokenInstance. The token stays a SecretStr until the URL is built."""

    # hide_input_in_errors: a rejected token must not be echoed by pydantic's ValidationError text.
    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    api_url: str = Field(default=DEFAULT_API_URL, description="GREEN-API host for this instance.")
    id_instance: int = Field(ge=ID_INSTANCE_MIN, le=ID_INSTANCE_MAX, description="idInstance: 1 to 10 digits.")
    api_token_instance: SecretStr = Field(description="apiTokenInstance.")

    @field_validator("api_url")
    @classmethod
    def _normalise_api_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("api_url must start with http:// or https://")
        return value

    @field_validator("api_token_instance")
    @classmethod
    def _token_is_one_path_segment(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value()
        if not token or any(ch in token for ch in "/?# \t\r\n"):
            # Says what is wrong without echoing the value.
            raise ValueError("api_token_instance must be a non-empty string with no '/', '?', '#' or spaces")
        return value
