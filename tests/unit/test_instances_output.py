"""`instances list` output: a rich table on a terminal, plain columns otherwise, JSON with idInstance; the import's
progress bar on a terminal only. The Prefect reads are replaced by fixed rows here."""

from __future__ import annotations

import io
import json

import pytest

import cli.instances as instances_cli
import cli.registered as registered
from cli.registered import ListedInstance

ROWS = [ListedInstance(7105000001, "front-desk", "7105.api.greenapi.com", "blocked", "2026-01-02T02:50:00+00:00",
                       "79990001111@c.us", "cleared", "2026-01-02T03:04:05+00:00", held_back=37),
        ListedInstance(7105000002, "greenapi-7105000002", "api.green-api.com", None, None, None, None, None)]


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@pytest.fixture
def listed(monkeypatch):
    async def fake() -> list[ListedInstance]:
        return ROWS

    monkeypatch.setattr(registered, "list_instances", fake)


def test_plain_columns_when_not_a_terminal(listed, monkeypatch):
    out = _Stream(tty=False)
    monkeypatch.setattr("sys.stdout", out)
    assert instances_cli.list_command(as_json=False) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split("  ")[0] == "idInstance" and "last reset" in lines[0]
    assert lines[1].split() == ["7105000001", "front-desk", "7105.api.greenapi.com", "blocked", "2026-01-02", "02:50:00",
                                "79990001111@c.us", "cleared", "2026-01-02", "03:04:05", "37"]
    assert lines[2].split()[3:] == ["—"] * 5 + ["0"]  # last state, since, wid, reset, when; none held back
    assert "\x1b[" not in out.getvalue() and lines[0].rstrip().endswith("held back")


def test_a_table_on_a_terminal(listed, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")  # a wide terminal: rich wraps cells to the terminal's width
    out = _Stream(tty=True)
    monkeypatch.setattr("sys.stdout", out)
    assert instances_cli.list_command(as_json=False) == 0
    text = out.getvalue()
    assert "2 registered instance(s)" in text and "front-desk" in text and ("┃" in text or "│" in text)


def test_json_is_a_list_of_objects_with_id_instance(listed, monkeypatch):
    out = _Stream(tty=True)
    monkeypatch.setattr("sys.stdout", out)
    assert instances_cli.list_command(as_json=True) == 0
    items = json.loads(out.getvalue())
    assert [i["idInstance"] for i in items] == [7105000001, 7105000002]
    assert items[0]["lastOutcome"] == "cleared" and items[1]["lastResetAt"] is None


@pytest.mark.parametrize("tty", [True, False])
def test_the_progress_bar_only_on_a_terminal(monkeypatch, tty):
    err = _Stream(tty=tty)
    monkeypatch.setattr("sys.stderr", err)
    progress = instances_cli._Progress(3)
    for _ in range(3):
        progress.advance(1)
    progress.stop()
    assert ("3/3" in err.getvalue()) is tty
