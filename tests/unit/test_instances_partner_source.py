"""The partner account as a source, against the emulator: what the sweep's partner fleet and `instances import
--partner` read, and the errors they stop on before any Prefect call. No token in any output."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from cli.instances import import_command
from cli.main import main
from emulator import EmulatorConfig, EmulatorServer
from greenapi import ConfigurationError, get_settings
from instances.blocks import GreenApiPartner
from instances.lookup import partner_fleet, resolve_partner
from cli.instance_rows import parse_partner_instances

PARTNER = "CANARYunitpartner" + "42" * 16
TOKENS = {21: "CANARYtok21" + "a" * 20, 22: "CANARYtok22" + "b" * 20, 23: "CANARYtok23" + "c" * 20}


@pytest.fixture(scope="module")
def partner_server():
    with EmulatorServer(EmulatorConfig(partner_token=PARTNER)) as server:
        server.state.add_instances([
            {"id_instance": 21, "api_token": TOKENS[21], "name": "North Shop"},
            {"id_instance": 22, "api_token": TOKENS[22], "deleted": True},
            {"id_instance": 23, "api_token": TOKENS[23], "is_expired": True},
        ])
        yield server


async def test_the_partner_fleet_is_the_usable_instances_with_their_credentials(partner_server):
    account = GreenApiPartner(partner_api_url=partner_server.url, partner_token=SecretStr(PARTNER), api_url="http://instances.example")
    fleet = await partner_fleet(account)
    assert [(r.id_instance, r.block_name, r.credentials.api_url) for r in fleet] == [(21, "partner:21", "http://instances.example")]
    assert fleet[0].credentials.api_token_instance.get_secret_value() == TOKENS[21]


async def test_what_the_partner_lists_becomes_rows_and_skips(partner_server):
    from greenapi import PartnerClient

    async with PartnerClient(partner_server.url, SecretStr(PARTNER)) as client:
        parsed = parse_partner_instances(await client.get_instances(), default_api_url="http://instances.example")
    assert [(r.block_name, r.line, r.unit) for r in parsed.rows] == [("north-shop", 1, "item")]
    assert [str(p) for p in parsed.skipped] == ["item 2: deleted: instance 22 is deleted: skipped",
                                                "item 3: isExpired: instance 23 is expired: skipped"]


async def test_no_partner_token_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="GREEN_API_PARTNER_TOKEN"):
        await resolve_partner(None, get_settings())


def test_import_partner_with_a_refused_token_exits_2_with_the_partner_message(partner_server, monkeypatch, capsys):
    monkeypatch.setenv("GREEN_API_API_URL", partner_server.url)
    monkeypatch.setenv("GREEN_API_PARTNER_TOKEN", PARTNER + "wrong")
    code = import_command(path=None, partner=True, partner_block=None, as_json=False)
    out = capsys.readouterr()
    assert code == 2
    assert out.err.strip() == ("greenapi-migrate instances: partner getInstances failed: code 401 unauthorized: check the "
                               "partner token (GREEN_API_PARTNER_TOKEN or the greenapi-partner block) (Unauthorized)")
    assert PARTNER not in out.out + out.err


def test_import_partner_without_a_token_exits_2(monkeypatch, capsys):
    assert import_command(path=None, partner=True, partner_block=None, as_json=False) == 2
    assert "GREEN_API_PARTNER_TOKEN" in capsys.readouterr().err


def test_a_bad_file_header_exits_2_naming_line_1(tmp_path, capsys):
    source = tmp_path / "bad.csv"
    source.write_text("id,token\n1,x\n")
    assert main(["instances", "import", str(source)]) == 2
    assert "line 1: header: unknown column(s) id, token; missing column(s) idInstance, apiTokenInstance" in capsys.readouterr().err


def test_a_file_and_partner_together_are_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["instances", "import", "x.csv", "--partner"])
    assert stopped.value.code == 2 and "not allowed with" in capsys.readouterr().err
