"""The credentials Block for one GREEN-API instance, and how a run finds its instance."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from greenapi import DEFAULT_API_URL, ConfigurationError, GreenAPISettings, InstanceCredentials


class GreenApiInstance(Block):
    """A GREEN-API instance: its host, idInstance and apiTokenInstance (stored masked and encrypted)."""

    _block_type_name = "GREEN-API Instance"
    _block_type_slug = "greenapi-instance"
    _description = "Credentials of one GREEN-API WhatsApp instance. The token is a secret: it is never a flow parameter."

    api_url: str = Field(default=DEFAULT_API_URL, description="apiUrl from the GREEN-API console, e.g. https://7105.api.greenapi.com")
    id_instance: int = Field(ge=1, le=9_999_999_999, description="idInstance (1 to 10 digits).")
    api_token_instance: SecretStr = Field(description="apiTokenInstance from the GREEN-API console.")

    def credentials(self) -> InstanceCredentials:
        return InstanceCredentials(
            api_url=self.api_url, id_instance=self.id_instance, api_token_instance=self.api_token_instance
        )


async def resolve_credentials(block_name: str | None, settings: GreenAPISettings) -> InstanceCredentials:
    """A named block wins; with no name, the GREEN_API_* settings describe the instance."""
    if not block_name:
        return settings.credentials()
    try:
        block = await GreenApiInstance.aload(block_name)
    except ValueError as exc:
        # Prefect raises ValueError for a missing block; its text names the block, not a secret.
        raise ConfigurationError(f"no {GreenApiInstance._block_type_slug} block named {block_name!r}: {exc}") from None
    return block.credentials()
