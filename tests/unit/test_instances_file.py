"""The instances file parser: CSV and JSON (the partner getInstances shape), bad rows named by line and field."""

from __future__ import annotations

import json

import pytest

from cli.instance_rows import InstancesFileError, normalise_block_name, parse_instances_file, parse_instances_text
from tests.helpers import instances_csv

TOKEN = "CANARYparser" + "9f" * 20


def test_csv_rows_with_defaults_and_normalised_names():
    parsed = parse_instances_text(instances_csv(f"1101,{TOKEN},,", f"1102,{TOKEN},https://7105.api.greenapi.com/,My Shop #1"),
                                  default_api_url="http://127.0.0.1:9")
    assert not parsed.refused and not parsed.skipped
    first, second = parsed.rows
    assert (first.line, first.block_name, first.credentials.api_url) == (2, "greenapi-1101", "http://127.0.0.1:9")
    assert (second.line, second.block_name, second.credentials.api_url) == (3, "my-shop-1", "https://7105.api.greenapi.com")
    assert "my-shop-1" in second.name_note and first.name_note == ""
    assert second.credentials.api_token_instance.get_secret_value() == TOKEN


def test_csv_with_only_the_required_columns():
    parsed = parse_instances_text(instances_csv(f"7,{TOKEN}", header="idInstance,apiTokenInstance"))
    assert [r.credentials.id_instance for r in parsed.rows] == [7]


@pytest.mark.parametrize("row, field", [
    (f"abc,{TOKEN},,", "idInstance"),
    (f"0,{TOKEN},,", "idInstance"),
    (f"12345678901,{TOKEN},,", "idInstance"),
    (",x,,", "idInstance"),
    ("1103,,,", "apiTokenInstance"),
    ("1103,a/b,,", "apiTokenInstance"),
    (f"1103,{TOKEN},ftp://host,", "apiUrl"),
    (f"1103,{TOKEN},,---", "name"),
    (f"1103,{TOKEN},,,extra", "row"),
])
def test_a_bad_row_is_refused_by_line_and_field_and_the_others_kept(row, field):
    parsed = parse_instances_text(instances_csv(f"1101,{TOKEN},,", row, f"1102,{TOKEN},,"))
    assert [r.credentials.id_instance for r in parsed.rows] == [1101, 1102]
    [problem] = parsed.refused
    assert (problem.line, problem.field) == (3, field)
    assert str(problem).startswith(f"line 3: {field}: ")
    assert TOKEN not in str(problem)


def test_duplicates_are_refused_on_the_later_line():
    parsed = parse_instances_text(instances_csv(f"1101,{TOKEN},,a", f"1101,{TOKEN},,b", f"1102,{TOKEN},,a"))
    assert [r.line for r in parsed.rows] == [2]
    assert [(p.line, p.field) for p in parsed.refused] == [(3, "idInstance"), (4, "name")]
    assert "line 2" in parsed.refused[0].message


@pytest.mark.parametrize("header, expected", [
    ("idInstance,token", "missing column(s) apiTokenInstance"),
    ("idInstance,apiTokenInstance,colour", "unknown column(s) colour"),
])
def test_a_bad_header_refuses_the_file(header, expected):
    with pytest.raises(InstancesFileError, match=r"line 1: header: .*" + expected.replace("(", r"\(").replace(")", r"\)")):
        parse_instances_text(instances_csv(f"1101,{TOKEN}", header=header))


def test_json_in_the_partner_shape_skips_deleted_and_expired_and_names_lines(tmp_path):
    items = [
        {"idInstance": 1101, "apiTokenInstance": TOKEN, "name": "Shop", "typeInstance": "whatsapp", "deleted": False, "isExpired": False},
        {"idInstance": 1102, "apiTokenInstance": TOKEN, "deleted": True, "isExpired": False},
        {"idInstance": 1103, "apiTokenInstance": TOKEN, "deleted": False, "isExpired": True},
        {"idInstance": "no", "apiTokenInstance": TOKEN},
    ]
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(items, indent=2))
    text = path.read_text()
    parsed = parse_instances_file(path)
    assert [(r.credentials.id_instance, r.block_name) for r in parsed.rows] == [(1101, "shop")]
    assert [(p.id_instance, p.field) for p in parsed.skipped] == [(1102, "deleted"), (1103, "isExpired")]
    [bad] = parsed.refused
    assert bad.field == "idInstance"
    lines = text.splitlines()
    starts = [n + 1 for n, line in enumerate(lines) if line.strip() == "{"]
    assert [r.line for r in parsed.rows] == [starts[0]] and bad.line == starts[3]
    assert [p.line for p in parsed.skipped] == starts[1:3]


@pytest.mark.parametrize("text, expected", [
    ('{"code": 401, "description": "Unauthorized"}', "partner error"),
    ("[1, 2", "not valid JSON"),
    ('{"idInstance": 1}', "expected a JSON list"),
])
def test_json_that_is_not_a_list_of_objects_refuses_the_file(text, expected):
    with pytest.raises(InstancesFileError, match=expected):
        parse_instances_text(text)


def test_json_element_that_is_not_an_object_is_refused():
    parsed = parse_instances_text(f'[\n"x",\n{{"idInstance": 5, "apiTokenInstance": "{TOKEN}"}}\n]')
    assert [(p.line, p.field) for p in parsed.refused] == [(2, "row")]
    assert [r.line for r in parsed.rows] == [3]


@pytest.mark.parametrize("name, expected", [("Shop", "shop"), ("  a__b  ", "a-b"), ("x.y-Z", "x-y-z"), ("ok-1", "ok-1")])
def test_block_names_are_normalised(name, expected):
    assert normalise_block_name(name) == expected
