"""The Prefect Blocks that hold GREEN-API secrets: one instance's credentials, a partner account's token.

Each opens its client (``get_client()``); the token goes on as a SecretStr and the greenapi client unwraps
it, into the request URL only.
"""

from __future__ import annotations

import httpx
from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from greenapi import DEFAULT_API_URL, ClientConfig, GreenAPIClient, InstanceCredentials, PartnerClient, get_settings
from greenapi.credentials import ID_INSTANCE_MAX, ID_INSTANCE_MIN

BLOCK_TYPE_SLUG = "greenapi-instance"
PARTNER_BLOCK_TYPE_SLUG = "greenapi-partner"


class GreenApiInstance(Block):
    """A GREEN-API instance: its host, idInstance and apiTokenInstance (stored masked and encrypted)."""

    _block_type_name = "GREEN-API Instance"
    _block_type_slug = BLOCK_TYPE_SLUG
    _description = "Credentials of one GREEN-API WhatsApp instance. The token is a secret: it is never a flow parameter."

    api_url: str = Field(default=DEFAULT_API_URL, description="apiUrl from the GREEN-API console, e.g. https://7105.api.greenapi.com")
    id_instance: int = Field(ge=ID_INSTANCE_MIN, le=ID_INSTANCE_MAX, description="idInstance (1 to 10 digits).")
    api_token_instance: SecretStr = Field(description="apiTokenInstance from the GREEN-API console.")

    def credentials(self) -> InstanceCredentials:
        return InstanceCredentials(
            api_url=self.api_url, id_instance=self.id_instance, api_token_instance=self.api_token_instance
        )

    def get_client(self, config: ClientConfig | None = None,
                   http_client: httpx.AsyncClient | None = None) -> GreenAPIClient:
        """A client for this instance (a run's steps open theirs through ``tasks.connections.open_client``).

        Args:
            config: timeouts and retries; by default GREEN_API_TIMEOUT_SECONDS and GREEN_API_MAX_RETRIES, read now.
            http_client: a pool shared with other instances' clients (left open); by default the client
                opens its own and closes it with ``async with``.

        Returns:
            The client, to use as ``async with block.get_client() as client``.
        """
        return GreenAPIClient(self.credentials(), config or get_settings().client_config(), http_client=http_client)


class GreenApiPartner(Block):
    """A GREEN-API partner account: the Partner API host and the partner token (stored masked and encrypted)."""

    _block_type_name = "GREEN-API Partner"
    _block_type_slug = PARTNER_BLOCK_TYPE_SLUG
    _description = "A GREEN-API partner account, to list its instances (getInstances). The token is a secret."

    partner_api_url: str = Field(default=DEFAULT_API_URL, description="Partner API host, e.g. https://api.green-api.com")
    partner_token: SecretStr = Field(description="partnerToken from the GREEN-API partner console.")
    api_url: str = Field(default=DEFAULT_API_URL, description="apiUrl the account's instances answer on.")

    def get_client(self, **kwargs) -> PartnerClient:
        """A Partner API client for this account.

        Args:
            **kwargs: passed on to ``PartnerClient`` (``timeout_seconds``, ``transport``).

        Returns:
            The client, to use as ``async with block.get_client() as partner``.
        """
        return PartnerClient(self.partner_api_url, self.partner_token, **kwargs)
