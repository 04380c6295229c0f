"""The README's configuration table is the settings class, field for field."""

from __future__ import annotations

import re
from pathlib import Path

from greenapi.settings import GreenAPISettings

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")


def _readme_rows() -> dict[str, tuple[str, str]]:
    rows = re.findall(r"^\| `(GREEN_API_[A-Z_]+)` \| (.+?) \| (.+?) \|$", README, flags=re.MULTILINE)
    return {name: (default, meaning) for name, default, meaning in rows}


def test_every_setting_is_documented_with_its_default_and_description():
    rows = _readme_rows()
    expected = set()
    for field_name, field in GreenAPISettings.model_fields.items():
        variable = f"GREEN_API_{field_name.upper()}"
        expected.add(variable)
        assert variable in rows, f"{variable} is missing from the README"
        default, meaning = rows[variable]
        shown = "—" if field.default is None else f"`{field.default}`"
        assert default == shown, f"{variable}: README says {default}, code says {shown}"
        assert meaning == field.description
    assert set(rows) == expected, f"README documents unknown settings: {set(rows) - expected}"


def test_quickstart_is_the_two_make_targets_and_ci_runs_the_test_one():
    quickstart = README.split("## Quickstart", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^(make \w+)", quickstart, flags=re.MULTILINE)
    assert commands == ["make demo", "make test"]
    assert "make test" in (Path(__file__).parents[2] / ".ci" / "run").read_text()
