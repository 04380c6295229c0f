"""`greenapi-migrate instances` as a user runs it: each command its own process, against the session's Prefect
server (`instances import` on the embedded default: tests/e2e/test_embedded_default.py). No token is printed."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import on_sqlite_only
from tests.helpers import clear_registry, run_cli
from bench.servers import clean_env

pytestmark = pytest.mark.e2e

CANARY = "CANARYinstances" + "d00d" * 8


@on_sqlite_only
async def test_import_list_remove(real_prefect_server, tmp_path):
    await clear_registry()  # the server's registry lists these two instances only
    env = dict(real_prefect_server)
    source = tmp_path / "fleet.csv"
    source.write_text("idInstance,apiTokenInstance,apiUrl,name\n"
                      f"4100000001,{CANARY}1,https://7105.api.greenapi.com,Front Desk\n"
                      f"4100000002,{CANARY}2,,\n"
                      f"x41,{CANARY}3,,\n")
    outputs = []

    first = run_cli(["instances", "import", str(source)], env, tmp_path)
    outputs.append(first.stdout + first.stderr)
    assert first.returncode == 1, first.stderr[-3000:]  # one row refused, the others imported
    assert "2 created, 0 updated, 0 unchanged; 1 refused" in first.stdout
    assert "refused line 4: idInstance:" in first.stdout
    assert "stored as block 'front-desk'" in first.stdout

    # (A second import changing nothing, and `import --json`: tests/integration/test_instances_registry.py.)

    # A row naming no block, for an idInstance registered under another name: it updates that block and says so.
    again = tmp_path / "again.csv"
    again.write_text(f"idInstance,apiTokenInstance,apiUrl\n4100000001,{CANARY}new,https://7105.api.greenapi.com\n")
    updated = run_cli(["instances", "import", str(again)], env, tmp_path)
    outputs.append(updated.stdout + updated.stderr)
    assert updated.returncode == 0 and "0 created, 1 updated" in updated.stdout, updated.stdout + updated.stderr[-2000:]
    assert "updated: 4100000001 -> block front-desk" in updated.stdout
    as_json = run_cli(["instances", "import", str(again), "--json"], env, tmp_path)
    outputs.append(as_json.stdout + as_json.stderr)
    assert json.loads(as_json.stdout)["blocks"] == [
        {"idInstance": 4100000001, "block": "front-desk", "action": "unchanged", "elsewhere": True}]

    listed = run_cli(["instances", "list", "--json"], env, tmp_path)
    outputs.append(listed.stdout + listed.stderr)
    assert listed.returncode == 0, listed.stderr[-3000:]
    rows = json.loads(listed.stdout)
    assert [(r["idInstance"], r["name"], r["apiUrl"]) for r in rows] == [
        (4100000001, "front-desk", "7105.api.greenapi.com"), (4100000002, "greenapi-4100000002", "api.green-api.com")]

    # (The plain columns of `list` off a terminal: tests/unit/test_instances_output.py.)

    removed = run_cli(["instances", "remove", "4100000001"], env, tmp_path)
    outputs.append(removed.stdout + removed.stderr)
    assert removed.returncode == 0 and "removed 4100000001 (block front-desk)" in removed.stdout
    after = run_cli(["instances", "list", "--json"], env, tmp_path)
    outputs.append(after.stdout + after.stderr)
    assert [r["idInstance"] for r in json.loads(after.stdout)] == [4100000002]

    for text in outputs:
        assert CANARY not in text


def test_a_partner_error_is_a_clear_message_and_a_non_zero_exit(emulator, tmp_path):
    env = clean_env(PREFECT_HOME=str(tmp_path / "fresh-home"),  # it fails before it needs a Prefect server
                    GREEN_API_API_URL=emulator.url, GREEN_API_PARTNER_TOKEN=CANARY)  # not the emulator's

    done = run_cli(["instances", "import", "--partner"], env, tmp_path)

    assert done.returncode == 2
    assert "partner getInstances failed: code 401 unauthorized" in done.stderr
    assert CANARY not in done.stdout + done.stderr
