"""Helpers the e2e modules share."""

from __future__ import annotations

import asyncio
import secrets

from tasks import GreenApiInstance

# The receiver's answers to a report it took: 200 to GREEN-API's webhooks, 202 to other systems' requests.
ACCEPTED = (200, 202)


async def register_instances(ids, *, api_url: str = "http://127.0.0.1:9", name_prefix: str = "e2e") -> None:
    """A greenapi-instance block for each idInstance (the receiver acts only on registered instances).
    The default apiUrl answers nothing: for tests that never reach GREEN-API."""
    await asyncio.gather(*(
        GreenApiInstance(api_url=api_url, id_instance=i, api_token_instance=secrets.token_hex(25)).asave(f"{name_prefix}-{i}", overwrite=True)
        for i in ids
    ))
