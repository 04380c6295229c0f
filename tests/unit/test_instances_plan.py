"""What an import writes, decided against the blocks that exist: created / updated / unchanged, conflicts refused."""

from __future__ import annotations

from types import SimpleNamespace

from cli.importer import ImportResult, plan_import
from cli.instance_rows import parse_instances_text

SCHEMA = "schema-1"


def _rows(*lines: str):
    return parse_instances_text("idInstance,apiTokenInstance,apiUrl,name\n" + "\n".join(lines) + "\n",
                                default_api_url="http://h").rows


def _doc(name: str, id_instance: int, token: str, api_url: str = "http://h", schema: str = SCHEMA):
    return SimpleNamespace(name=name, id=f"id-{name}", block_schema_id=schema,
                           data={"api_url": api_url, "id_instance": id_instance, "api_token_instance": token})


def test_identical_blocks_are_unchanged_and_different_ones_updated_or_created():
    rows = _rows("1,t1,,", "2,t2-new,,", "3,t3,http://other,", "4,t4,,", "5,t5,,")
    documents = [_doc("greenapi-1", 1, "t1"), _doc("greenapi-2", 2, "t2"), _doc("greenapi-3", 3, "t3"),
                 _doc("greenapi-5", 5, "t5", schema="old-schema")]
    result = ImportResult()
    plan = plan_import(rows, documents, SCHEMA, result)
    assert result.unchanged == [1] and result.refused == []
    assert [(action, row.credentials.id_instance, target.name if target else None) for action, row, target in plan] == [
        ("update", 2, "greenapi-2"), ("update", 3, "greenapi-3"), ("create", 4, None), ("update", 5, "greenapi-5")]


def test_an_id_registered_under_another_name_is_updated_there_only_when_the_row_names_no_block():
    rows = _rows("1,t1-new,,", "2,t2,,named")
    documents = [_doc("shop-one", 1, "t1"), _doc("shop-two", 2, "t2")]
    result = ImportResult()
    plan = plan_import(rows, documents, SCHEMA, result)
    assert [(a, r.credentials.id_instance, t.name) for a, r, t in plan] == [("update", 1, "shop-one")]
    [problem] = result.refused
    assert (problem.line, problem.field) == (3, "name") and "already registered as block shop-two" in problem.message


def test_a_name_that_holds_another_instance_is_refused():
    result = ImportResult()
    plan = plan_import(_rows("7,t7,,shop"), [_doc("shop", 8, "t8")], SCHEMA, result)
    assert plan == [] and "holds idInstance 8, not 7" in result.refused[0].message
