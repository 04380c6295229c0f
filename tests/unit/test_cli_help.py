"""Every command's --help says what it does: exit 0, a description of its own (not the text itself)."""

from __future__ import annotations

import pytest

from cli.main import main

COMMANDS = [
    [], ["demo"], ["run"], ["serve"], ["task-worker"], ["instances"], ["instances", "import"], ["instances", "list"],
    ["instances", "remove"], ["emulator"], ["receiver"], ["automations", "apply"],
]


def _description(command: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code in (0, None), command
    out = capsys.readouterr().out
    assert out.startswith("usage:"), out
    # argparse prints the usage, a blank line, then the description (when there is one), then the arguments.
    blocks = [block.strip() for block in out.split("\n\n")]
    description = blocks[1] if len(blocks) > 1 else ""
    assert description and not description.endswith(":") and not description.startswith(("options:", "positional arguments:")), (command, out)
    return " ".join(description.split())


def test_every_help_has_a_description_of_its_own(capsys):
    descriptions = {" ".join(command) or "greenapi-migrate": _description(command, capsys) for command in COMMANDS}
    assert len(set(descriptions.values())) == len(descriptions), descriptions


def test_the_emulator_help_names_its_seed_format_and_where_it_is_documented(capsys):
    with pytest.raises(SystemExit):
        main(["emulator", "--help"])
    out = capsys.readouterr().out
    assert "--seed" in out and '"instances"' in out and "id_instance" in out and "emulator/README.md" in out


@pytest.mark.parametrize("removed, replacement", [
    ("GREEN_API_NOTIFY_BLOCK", "automations apply --notify-block"),
    ("GREEN_API_RECEIVER_DISPATCH", "--dispatch"),
])
@pytest.mark.parametrize("command", [["automations", "apply"], ["receiver"]])
def test_a_removed_setting_still_set_is_one_line_naming_its_replacement(monkeypatch, capsys, removed, replacement, command):
    monkeypatch.setenv(removed, "slack-webhook/ops")
    assert main(command) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"greenapi-migrate: {removed} is no longer read: use ") and replacement in line, line
