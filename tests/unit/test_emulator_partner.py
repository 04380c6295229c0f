"""The emulator's partner endpoint: GET /partner/getInstances/{partnerToken}, in GREEN-API's shape."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from emulator import EmulatorConfig, EmulatorServer

PARTNER = "CANARYemupartner" + "ab" * 16
FIELDS = {"idInstance", "name", "typeInstance", "apiTokenInstance", "deleted", "timeCreated", "timeDeleted",
          "tariff", "isFree", "isPartner", "expirationDate", "isExpired"}


def test_lists_every_instance_with_the_right_token_and_refuses_a_wrong_one_with_http_200():
    with EmulatorServer(EmulatorConfig(partner_token=PARTNER)) as server:
        server.state.add_instances([
            {"id_instance": 11, "api_token": "t11", "name": "shop"},
            {"id_instance": 12, "api_token": "t12", "deleted": True, "type_instance": "v3"},
            {"id_instance": 13, "api_token": "t13", "is_expired": True},
        ])
        listed = httpx.get(f"{server.url}/partner/getInstances/{PARTNER}")
        wrong = httpx.get(f"{server.url}/partner/getInstances/{PARTNER}x")
    assert listed.status_code == 200
    items = listed.json()
    assert [i["idInstance"] for i in items] == [11, 12, 13]
    assert all(FIELDS <= set(i) for i in items)
    assert [(i["name"], i["apiTokenInstance"], i["deleted"], i["isExpired"], i["typeInstance"]) for i in items] == [
        ("shop", "t11", False, False, "whatsapp"), ("", "t12", True, False, "v3"), ("", "t13", False, True, "whatsapp")]
    assert items[1]["timeDeleted"] and not items[0]["timeDeleted"]
    assert wrong.status_code == 200 and wrong.json() == {"code": 401, "description": "Unauthorized"}


def test_without_a_partner_token_configured_every_token_is_refused():
    with EmulatorServer() as server:
        answer = httpx.get(f"{server.url}/partner/getInstances/anything")
    assert answer.status_code == 200 and answer.json()["code"] == 401


def test_the_config_repr_hides_the_partner_token_and_help_documents_the_endpoint():
    assert PARTNER not in repr(EmulatorConfig(partner_token=PARTNER))
    root = str(Path(__file__).resolve().parents[2])
    shown = subprocess.run([sys.executable, "-m", "emulator", "--help"], capture_output=True, text=True, timeout=60,
                           cwd=root, env={**os.environ, "PYTHONPATH": root})
    assert "--partner-token" in shown.stdout and "/partner/getInstances/{partnerToken}" in shown.stdout
