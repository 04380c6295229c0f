"""How a run finds its instance(s): by block name, by idInstance or from the settings (resolve_credentials),
every registered greenapi-instance block (the sweep's fleet), or a partner account's instances (partner_fleet).

The Blocks themselves are in instances/blocks.py; this module only reads them."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.objects import BlockDocument
from pydantic import ValidationError

from greenapi import ConfigurationError, GreenAPISettings, InstanceCredentials
from instances.blocks import BLOCK_TYPE_SLUG, PARTNER_BLOCK_TYPE_SLUG, GreenApiInstance, GreenApiPartner

LIST_HINT = "greenapi-migrate instances list shows the registered ones"


async def resolve_partner(block: str | None, settings: GreenAPISettings) -> GreenApiPartner:
    """A greenapi-partner block by name, or one made (not saved) from GREEN_API_PARTNER_TOKEN and GREEN_API_API_URL."""
    if block:
        try:
            return await GreenApiPartner.aload(block.strip())
        except ValueError as exc:
            raise ConfigurationError(f"no {PARTNER_BLOCK_TYPE_SLUG} block named {block!r}: {exc}") from None
    if settings.partner_token is None:
        raise ConfigurationError("missing setting GREEN_API_PARTNER_TOKEN (or name a greenapi-partner block)")
    return GreenApiPartner(partner_api_url=settings.api_url, partner_token=settings.partner_token,
                           api_url=settings.api_url)


async def partner_fleet(account: GreenApiPartner) -> list["RegisteredInstance"]:
    """The partner account's usable instances (not deleted, not expired), as the sweep lists blocks."""
    async with account.get_client() as partner:
        listed = await partner.get_instances()
    found = []
    for item in listed:
        if not item.usable:
            continue
        try:
            credentials = InstanceCredentials(api_url=item.api_url or account.api_url, id_instance=item.id_instance,
                                              api_token_instance=item.api_token_instance)
        except ValueError:  # one unusable entry (e.g. a token that cannot be a URL segment) must not stop the sweep
            logging.getLogger("greenapi.partner").warning("Partner instance %s left out: its credentials are not usable", item.id_instance)
            continue
        found.append(RegisteredInstance(f"partner:{item.id_instance}", credentials))
    return sorted(found, key=lambda r: r.id_instance)


@dataclass(frozen=True)
class RegisteredInstance:
    """A greenapi-instance block, as the fleet sweep lists it."""

    block_name: str
    credentials: InstanceCredentials

    @property
    def id_instance(self) -> int:
        return self.credentials.id_instance


# The server's largest page. Read a page at a time: Prefect's server builds one answer of N block documents in
# O(N²) (each document is matched against every row it read), about 31 s of its CPU for 10,000 blocks in one
# call, against 6 s in pages of 200 (bench/NOTES.md, session 7).
PAGE_SIZE = 200
PAGES_IN_FLIGHT = 4


async def instance_documents(client: PrefectClient, *, include_secrets: bool) -> list[BlockDocument]:
    """Every named greenapi-instance block document, read in pages of every block document (a few pages at once).

    Args:
        client: an open Prefect client (a caller that writes blocks next reads them on the same one).
        include_secrets: whether the documents hold the tokens (the sweep) or only masks (lists, the receiver).

    Returns:
        The documents, ordered by name; none when no block was ever saved."""
    found: list[BlockDocument] = []
    offset = 0
    while True:  # pages in waves; a short page is the last
        offsets = [offset + PAGE_SIZE * n for n in range(PAGES_IN_FLIGHT)]
        pages = await asyncio.gather(*(client.read_block_documents(offset=at, limit=PAGE_SIZE, include_secrets=include_secrets)
                                       for at in offsets))
        for page in pages:
            # Other block types' documents (Secret blocks among them) are dropped as soon as read, and each kept
            # one without the copy of its block type and schema the server sends along: about two thirds of a
            # document's memory, which no caller reads (bench/NOTES.md, session 12).
            found += [document.model_copy(update={"block_schema": None, "block_type": None}) for document in page
                      if document.name and not document.is_anonymous
                      and document.block_type is not None and document.block_type.slug == BLOCK_TYPE_SLUG]
        if len(pages[-1]) < PAGE_SIZE:
            return found
        offset = offsets[-1] + PAGE_SIZE


async def registered_instances() -> list[RegisteredInstance]:
    """Every greenapi-instance block, ordered by idInstance."""
    async with get_client() as client:
        documents = await instance_documents(client, include_secrets=True)
    found = [
        RegisteredInstance(document.name, GreenApiInstance.model_validate(document.data).credentials())
        for document in documents
    ]
    return sorted(found, key=lambda r: r.id_instance)


async def resolve_credentials(instance: str | None, settings: GreenAPISettings) -> InstanceCredentials:
    """``instance`` is a block name, an idInstance (the block registered for it), or empty (the settings)."""
    if not instance:
        return settings.credentials()
    instance = instance.strip()
    if instance.isdigit():
        return await _credentials_for_id(int(instance), settings)
    try:
        block = await GreenApiInstance.aload(instance)
    except ValidationError as exc:  # a ValueError too: the block exists, its fields do not fit
        raise ConfigurationError(f"the {BLOCK_TYPE_SLUG} block {instance!r} cannot be used: {exc.error_count()} invalid field(s)") from None
    except ValueError:
        # Prefect raises ValueError for a missing block (or a missing block type: no block saved yet).
        raise ConfigurationError(f"no {BLOCK_TYPE_SLUG} block named {instance!r} ({LIST_HINT})") from None
    return block.credentials()


async def _credentials_for_id(id_instance: int, settings: GreenAPISettings) -> InstanceCredentials:
    matches = [r for r in await registered_instances() if r.id_instance == id_instance]
    if len(matches) > 1:
        names = ", ".join(sorted(r.block_name for r in matches))
        raise ConfigurationError(f"idInstance {id_instance} is registered in several {BLOCK_TYPE_SLUG} blocks ({names}): name one")
    if matches:
        return matches[0].credentials
    if settings.id_instance == id_instance:
        return settings.credentials()
    raise ConfigurationError(f"no {BLOCK_TYPE_SLUG} block registered for idInstance {id_instance} ({LIST_HINT})")


async def registered_ids() -> set[int]:
    """The idInstance of every greenapi-instance block, without reading any secret.

    Empty when the block type itself is not registered yet (no block was ever saved)."""
    async with get_client() as client:
        documents = await instance_documents(client, include_secrets=False)
    found: set[int] = set()
    for document in documents:
        value = (document.data or {}).get("id_instance")
        if isinstance(value, int) and not isinstance(value, bool):
            found.add(value)
    return found
