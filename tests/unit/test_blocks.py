"""instances.blocks: each Block, built in memory (no Prefect server), opens a client with get_client() that talks to
the emulator over loopback with the block's credentials. No token in any error."""

from __future__ import annotations

import httpx
import pytest

from emulator import EmulatorConfig, EmulatorServer
from greenapi import AuthenticationError, ClientConfig, ConfigurationError, PartnerAuthenticationError
from instances.blocks import GreenApiInstance, GreenApiPartner

TOKENS = {7105000041: "CANARYblock41" + "a" * 20, 7105000042: "CANARYblock42" + "b" * 20, 7105000043: "CANARYblock43" + "c" * 20}
PARTNER = "CANARYblockpartner" + "7e" * 16


@pytest.fixture(scope="module")
def seeded(server):
    # A state other than the emulator's default, so only a real getStateInstance on this instance can show it.
    server.state.add_instances([{"id_instance": i, "api_token": t, "state": "blocked", "wid": f"7999{i}@c.us"}
                                for i, t in TOKENS.items()])
    return server


def block_for(server, id_instance: int, token: str | None = None) -> GreenApiInstance:
    return GreenApiInstance(id_instance=id_instance, api_token_instance=token or TOKENS[id_instance], api_url=server.url)


async def test_the_instance_client_reads_the_seeded_state_with_the_settings_of_the_environment(seeded):
    async with block_for(seeded, 7105000041).get_client() as client:
        state = await client.get_state_instance()
    assert state.state_instance == "blocked" and client.id_instance == 7105000041
    assert [c["method"] for c in seeded.state.calls(instance=7105000041)] == ["getStateInstance"]


async def test_a_refused_token_is_an_authentication_error_that_does_not_hold_it(seeded):
    wrong = "CANARYwrongtoken" + "d" * 20
    with pytest.raises(AuthenticationError) as caught:
        async with block_for(seeded, 7105000042, wrong).get_client(ClientConfig(max_retries=0)) as client:
            await client.get_state_instance()
    assert wrong not in str(caught.value) and "7105000042" in str(caught.value)


async def test_the_client_runs_on_a_shared_pool_and_leaves_it_open(seeded):
    methods: list[str] = []

    async def record(request: httpx.Request) -> None:
        methods.append(request.url.path.split("/")[2])  # the method only: the path's last segment is the token

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as http:
        async with block_for(seeded, 7105000043).get_client(http_client=http) as client:
            wid = (await client.get_settings()).wid
        assert not http.is_closed
    assert methods == ["getSettings"] and wid == "79997105000043@c.us"


def test_the_default_settings_are_read_when_the_client_is_opened(seeded, monkeypatch):
    monkeypatch.setenv("GREEN_API_MAX_RETRIES", "99")  # above the allowed 10
    with pytest.raises(ConfigurationError, match="GREEN_API_MAX_RETRIES"):
        block_for(seeded, 7105000041).get_client()


async def test_the_partner_client_lists_the_account_and_a_wrong_token_is_refused_without_it():
    with EmulatorServer(EmulatorConfig(partner_token=PARTNER)) as server:
        server.state.add_instances([{"id_instance": 31, "api_token": "t31"}, {"id_instance": 32, "api_token": "t32"}])
        async with GreenApiPartner(partner_api_url=server.url, partner_token=PARTNER).get_client() as partner:
            listed = await partner.get_instances()
        wrong = "CANARYwrongpartner" + "0" * 20
        with pytest.raises(PartnerAuthenticationError) as caught:
            async with GreenApiPartner(partner_api_url=server.url, partner_token=wrong).get_client(timeout_seconds=5) as partner:
                await partner.get_instances()
    assert [(i.id_instance, i.api_token_instance.get_secret_value()) for i in listed] == [(31, "t31"), (32, "t32")]
    assert wrong not in str(caught.value)
