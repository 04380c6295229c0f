"""tasks.lookup.instance_documents, the one reader of the greenapi-instance blocks, on a stand-in Prefect client:
what a never-used server (404) and other errors become, and which documents count."""

from __future__ import annotations

import httpx
import pytest
from prefect.exceptions import PrefectHTTPStatusError

from tasks.lookup import instance_documents


class Document:
    def __init__(self, name: str | None, *, is_anonymous: bool = False) -> None:
        self.name, self.is_anonymous = name, is_anonymous


class StandInClient:
    """Answers read_block_documents_by_type with ``documents``, or raises an HTTP ``status``."""

    def __init__(self, documents=(), status: int | None = None) -> None:
        self.documents, self.status = list(documents), status
        self.asked: list[tuple[str, bool]] = []

    async def read_block_documents_by_type(self, slug: str, include_secrets: bool = True):
        self.asked.append((slug, include_secrets))
        if self.status is not None:
            request = httpx.Request("GET", f"http://prefect.test/api/block_types/slug/{slug}/block_documents")
            response = httpx.Response(self.status, request=request)
            raise PrefectHTTPStatusError.from_httpx_error(httpx.HTTPStatusError("refused", request=request, response=response))
        return self.documents


async def test_named_documents_only_and_the_secrets_flag_goes_through():
    client = StandInClient([Document("shop"), Document(None), Document("anon", is_anonymous=True), Document("north")])
    found = await instance_documents(client, include_secrets=False)
    assert [d.name for d in found] == ["shop", "north"]
    assert client.asked == [("greenapi-instance", False)]


async def test_a_block_type_never_registered_is_no_blocks():
    assert await instance_documents(StandInClient(status=404), include_secrets=True) == []


@pytest.mark.parametrize("status", [401, 500])
async def test_any_other_http_error_is_raised(status):
    with pytest.raises(PrefectHTTPStatusError):
        await instance_documents(StandInClient(status=status), include_secrets=True)
