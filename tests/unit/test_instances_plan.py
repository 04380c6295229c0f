"""What an import writes, decided against the blocks that exist: created / updated / unchanged, conflicts refused."""

from __future__ import annotations

from cli.importer import ImportResult, plan_import
from tests.helpers import IMPORT_SCHEMA, block_document, import_rows


def test_identical_blocks_are_unchanged_and_different_ones_updated_or_created():
    rows = import_rows("1,t1,,", "2,t2-new,,", "3,t3,http://other,", "4,t4,,", "5,t5,,")
    documents = [block_document("greenapi-1", 1, "t1"), block_document("greenapi-2", 2, "t2"),
                 block_document("greenapi-3", 3, "t3"), block_document("greenapi-5", 5, "t5", schema="old-schema")]
    result = ImportResult()
    plan = plan_import(rows, documents, IMPORT_SCHEMA, result)
    assert result.unchanged == [1] and result.refused == []
    assert [(action, row.credentials.id_instance, target.name if target else None) for action, row, target in plan] == [
        ("update", 2, "greenapi-2"), ("update", 3, "greenapi-3"), ("create", 4, None), ("update", 5, "greenapi-5")]


def test_an_id_registered_under_another_name_is_updated_there_only_when_the_row_names_no_block():
    rows = import_rows("1,t1-new,,", "2,t2,,named")
    documents = [block_document("shop-one", 1, "t1"), block_document("shop-two", 2, "t2")]
    result = ImportResult()
    plan = plan_import(rows, documents, IMPORT_SCHEMA, result)
    assert [(a, r.credentials.id_instance, t.name) for a, r, t in plan] == [("update", 1, "shop-one")]
    [problem] = result.refused
    assert (problem.line, problem.field) == (3, "name") and "already registered as block shop-two" in problem.message


def test_a_name_that_holds_another_instance_is_refused():
    result = ImportResult()
    plan = plan_import(import_rows("7,t7,,shop"), [block_document("shop", 8, "t8")], IMPORT_SCHEMA, result)
    assert plan == [] and "holds idInstance 8, not 7" in result.refused[0].message
