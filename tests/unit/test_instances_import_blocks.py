"""`instances import` names the block each updated row went to (issue 21, item 8): in the plan, the text and --json."""

from __future__ import annotations

import json
from types import SimpleNamespace

import cli.instances as instances_cli
import cli.importer as importer
from cli.importer import ImportResult, plan_import
from tests.helpers import IMPORT_SCHEMA, block_document, import_rows


def test_the_plan_records_the_block_each_row_goes_to():
    result = ImportResult()
    plan_import(import_rows("7105000003,t3-new,,", "7105000004,t4,,", "7105000005,t5,,", "7105000006,t6,,own"),
                [block_document("shop-main", 7105000003, "t3"), block_document("shop-two", 7105000004, "t4")], IMPORT_SCHEMA, result)
    assert result.blocks == {7105000003: "shop-main", 7105000004: "shop-two", 7105000005: "greenapi-7105000005",
                             7105000006: "own"}
    assert result.elsewhere == {7105000003, 7105000004}


def _imported(monkeypatch, capsys, as_json: bool):
    async def fake(parsed, progress=None):
        return ImportResult(created=[7105000005], updated=[7105000001, 7105000003], unchanged=[7105000004],
                            blocks={7105000001: "greenapi-7105000001", 7105000003: "shop-main",
                                    7105000004: "shop-two", 7105000005: "greenapi-7105000005"},
                            elsewhere={7105000003, 7105000004})

    monkeypatch.setattr(importer, "import_instances", fake)
    assert instances_cli._import(SimpleNamespace(rows=[]), "fleet.csv", as_json) == 0
    return capsys.readouterr().out


def test_the_text_names_the_block_of_each_updated_row(monkeypatch, capsys):
    out = _imported(monkeypatch, capsys, as_json=False)
    assert "1 created, 2 updated, 1 unchanged" in out
    assert "  updated: 7105000003 -> block shop-main" in out
    assert "  updated: 7105000001 -> block greenapi-7105000001" in out
    assert "  unchanged: 7105000004 -> block shop-two" in out  # under another name than the row's: said too
    assert "7105000005 ->" not in out  # created under its own name: nothing to say


def test_json_lists_the_block_of_each_row(monkeypatch, capsys):
    out = json.loads(_imported(monkeypatch, capsys, as_json=True))
    assert out["updated"] == [7105000001, 7105000003]
    assert {b["idInstance"]: (b["block"], b["action"], b["elsewhere"]) for b in out["blocks"]} == {
        7105000001: ("greenapi-7105000001", "updated", False), 7105000003: ("shop-main", "updated", True),
        7105000004: ("shop-two", "unchanged", True), 7105000005: ("greenapi-7105000005", "created", False)}
