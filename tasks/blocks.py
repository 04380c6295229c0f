"""The Prefect Blocks that hold GREEN-API secrets: one instance's credentials, a partner account's token."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from greenapi import DEFAULT_API_URL, InstanceCredentials

BLOCK_TYPE_SLUG = "greenapi-instance"
PARTNER_BLOCK_TYPE_SLUG = "greenapi-partner"


class GreenApiInstance(Block):
    """A GREEN-API instance: its host, idInstance and apiTokenInstance (stored masked and encrypted)."""

    _block_type_name = "GREEN-API Instance"
    _block_type_slug = BLOCK_TYPE_SLUG
    _description = "Credentials of one GREEN-API WhatsApp instance. The token is a secret: it is never a flow parameter."

    api_url: str = Field(default=DEFAULT_API_URL, description="apiUrl from the GREEN-API console, e.g. https://7105.api.greenapi.com")
    id_instance: int = Field(ge=1, le=9_999_999_999, description="idInstance (1 to 10 digits).")
    api_token_instance: SecretStr = Field(description="apiTokenInstance from the GREEN-API console.")

    def credentials(self) -> InstanceCredentials:
        return InstanceCredentials(
            api_url=self.api_url, id_instance=self.id_instance, api_token_instance=self.api_token_instance
        )


class GreenApiPartner(Block):
    """A GREEN-API partner account: the Partner API host and the partner token (stored masked and encrypted)."""

    _block_type_name = "GREEN-API Partner"
    _block_type_slug = PARTNER_BLOCK_TYPE_SLUG
    _description = "A GREEN-API partner account, to list its instances (getInstances). The token is a secret."

    partner_api_url: str = Field(default=DEFAULT_API_URL, description="Partner API host, e.g. https://api.green-api.com")
    partner_token: SecretStr = Field(description="partnerToken from the GREEN-API partner console.")
    api_url: str = Field(default=DEFAULT_API_URL, description="apiUrl the account's instances answer on.")
