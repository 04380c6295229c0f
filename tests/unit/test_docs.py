"""The docs say what the code does: the reference's generated tables are the code's, every relative link and anchor
resolves, every setting and `greenapi-migrate` flag the docs name exists, the quickstart is the two make targets.

`python -m tests.unit.test_docs --write` rewrites the generated tables of docs/reference.md from the code.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from pathlib import Path

import pytest

from bench.servers import ROOT
from tests.helpers import doc_pages

REFERENCE = ROOT / "docs" / "reference.md"
DOCS = doc_pages()
GENERATED = re.compile(r"(<!-- generated: (?P<name>[a-z-]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.DOTALL)
HELP_COLUMNS = "110"  # argparse wraps --help to the terminal's width: the reference is written at this one


# ---------------------------------------------------------------- what the generated tables hold

def product_packages() -> list[str]:
    """The product's top-level packages, as pyproject.toml installs them."""
    import tomllib

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted({name.rstrip("*") for name in include})


def settings_classes() -> list[tuple[str, type]]:
    """Every pydantic-settings class of the product (found in its source, so a moved or new one is found too), with
    its prefix, ordered by prefix and module."""
    import importlib

    found = []
    for package in product_packages():
        for source in sorted((ROOT / package).rglob("*.py")):
            for class_name in re.findall(r"^class (\w+)\(BaseSettings\)", source.read_text(encoding="utf-8"), re.MULTILINE):
                module = ".".join(source.relative_to(ROOT).with_suffix("").parts)
                settings_class = getattr(importlib.import_module(module), class_name)
                found.append((settings_class.model_config.get("env_prefix", ""), settings_class))
    return sorted(found, key=lambda pair: (len(pair[0]), pair[1].__module__))


def _settings() -> str:
    tables = []
    for prefix, settings_class in settings_classes():
        rows = [f"`{settings_class.__module__}.{settings_class.__name__}`, prefix `{prefix}`:", "",
                "| variable | default | meaning |", "|---|---|---|"]
        for name, field in settings_class.model_fields.items():
            default = "—" if field.default is None else f"`{field.default}`"
            meaning = (field.description or "").replace("|", "\\|")
            rows.append(f"| `{prefix}{name.upper()}` | {default} | {meaning} |")
        tables.append("\n".join(rows) + "\n")
    return "\n".join(tables)


def cli_help(*argv: str) -> str:
    """What `greenapi-migrate ARGV --help` prints, run in this process at HELP_COLUMNS."""
    from cli.main import main

    out = io.StringIO()
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            main([*argv, "--help"])
    finally:
        if previous is None:
            os.environ.pop("COLUMNS")
        else:
            os.environ["COLUMNS"] = previous
    return out.getvalue()


CLI_COMMANDS = [(), ("demo",), ("run",), ("instances", "import"), ("instances", "list"), ("instances", "remove"),
                ("serve",), ("task-worker",), ("automations", "apply"), ("local",), ("receiver",), ("emulator",)]


def _cli() -> str:
    sections = []
    for argv in CLI_COMMANDS:
        title = " ".join(("greenapi-migrate", *argv))
        sections.append(f"### `{title}`\n\n```text\n{cli_help(*argv).rstrip()}\n```\n")
    return "\n".join(sections)


GENERATORS = {"settings": _settings, "cli": _cli}


def regenerated(text: str) -> str:
    return GENERATED.sub(lambda m: m.group(1) + GENERATORS[m.group("name")]() + m.group(4), text)


def test_the_references_generated_tables_are_the_codes():
    text = REFERENCE.read_text(encoding="utf-8")
    names = [m.group("name") for m in GENERATED.finditer(text)]
    assert sorted(names) == sorted(GENERATORS), f"docs/reference.md's generated sections: {names}"
    for match in GENERATED.finditer(text):
        assert match.group("body") == GENERATORS[match.group("name")](), (
            f"docs/reference.md, {match.group('name')}: not what the code says; "
            "run `.venv/bin/python -m tests.unit.test_docs --write` and read the diff")


# ---------------------------------------------------------------- names the docs use exist

def _doc_texts() -> dict[str, str]:
    return {str(path.relative_to(ROOT)): path.read_text(encoding="utf-8") for path in DOCS}


def test_every_setting_the_docs_name_exists():
    known = {f"{prefix}{name.upper()}" for prefix, settings_class in settings_classes() for name in settings_class.model_fields}
    assert {"GREEN_API_API_URL", "GREEN_API_RECEIVER_SECRET"} <= known, "the settings classes were not found"
    unknown = {(doc, name) for doc, text in _doc_texts().items()
               for name in re.findall(r"\bGREEN_API_[A-Z0-9_]*[A-Z0-9]\b(?!_?\*)", text) if name not in known}
    assert not unknown, f"settings the docs name that the code does not have: {sorted(unknown)}"


def _options(argv: tuple[str, ...]) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", cli_help(*argv)))


def test_every_greenapi_migrate_flag_the_docs_use_exists():
    commands = {" ".join(argv): argv for argv in CLI_COMMANDS if argv}
    used = re.compile(r"greenapi-migrate ((?:instances |automations )?[a-z-]+)([^`\n#|;&]*)")
    problems, seen = [], 0
    for doc, text in _doc_texts().items():
        for match in used.finditer(text):
            command, rest = match.group(1), match.group(2)
            if command not in commands:
                if command in ("instances", "automations"):
                    continue
                problems.append(f"{doc}: no command `greenapi-migrate {command}`")
                continue
            flags = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", rest))
            seen += len(flags)
            problems += [f"{doc}: `greenapi-migrate {command}` has no {flag}" for flag in flags - _options(commands[command])]
    assert seen > 5, "the docs' command lines were not found: the pattern is wrong"
    assert not problems, problems


def _code_spans() -> list[tuple[str, str]]:
    return [(doc, span) for doc, text in _doc_texts().items() for span in re.findall(r"`([^`\n]+)`", text)]


# An event of ours: greenapi.<noun>.<what happened>, the noun not a module of the package greenapi.
EVENT_NAME = re.compile(r"^greenapi\.(?:instance|queue|outgoing|webhook|queue-reset|report|relay)\.[a-z-]+(?:\.dispatched)?$")
PACKAGES = (*product_packages(), "bench", "scenarios")


def _resolves(dotted: str) -> bool:
    """`package.module.name` (a call's parentheses dropped) is an importable module, or a name in one."""
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(target, name):
                return False
            target = getattr(target, name)
        return True
    return False


def test_every_module_name_and_repository_path_the_docs_cite_exists():
    dotted = re.compile(rf"^(?:{'|'.join(PACKAGES)})(?:\.\w+)+(?=\(|$)")
    path = re.compile(rf"^(?:{'|'.join((*PACKAGES, 'tests', 'docs'))})/[\w./-]*$|^[\w-]+\.(?:md|yaml|toml|lock)$")
    missing, checked = [], 0
    for doc, span in _code_spans():
        if EVENT_NAME.match(span):
            continue  # greenapi.queue.counted is an event, not the package greenapi
        if match := dotted.match(span):
            checked += 1
            if not _resolves(match.group(0)):
                missing.append(f"{doc}: {span}")
        elif path.match(span):
            checked += 1
            if not (ROOT / span).exists():
                missing.append(f"{doc}: {span}")
    assert checked > 10, "the docs' code names were not found: the pattern is wrong"
    assert not missing, f"named in the docs, not in the repository: {missing}"


def test_every_event_in_the_references_table_is_emitted_by_the_code():
    source = "\n".join(path.read_text(encoding="utf-8") for package in product_packages() for path in (ROOT / package).rglob("*.py"))
    events = {span for doc, span in _code_spans() if doc == "docs/reference.md" and EVENT_NAME.match(span)}
    assert len(events) > 15, "the reference's events were not found: the pattern is wrong"
    # The code builds most names from a prefix: "greenapi." + "queue.counted", or a receiver name + ".dispatched".
    missing = {event for event in events
               if event.removeprefix("greenapi.").removesuffix(".dispatched") not in source}
    assert not missing, f"events the reference lists that no code emits: {sorted(missing)}"


# ---------------------------------------------------------------- links

def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lowercase, punctuation dropped, spaces to dashes; repeats get -1, -2."""
    anchors: set[str] = set()
    body = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    for heading in re.findall(r"^#{1,6} (.+)$", body, flags=re.MULTILINE):
        anchor = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        candidate, n = anchor, 0
        while candidate in anchors:
            n += 1
            candidate = f"{anchor}-{n}"
        anchors.add(candidate)
    return anchors


def _relative_links(markdown: str) -> list[str]:
    body = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    body = re.sub(r"`[^`\n]*`", "", body)
    return [target for target in re.findall(r"\]\(([^)\s]+)\)", body) if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_to_a_file_and_anchor(path: Path):
    text = path.read_text(encoding="utf-8")
    broken = []
    for target in _relative_links(text):
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            broken.append(f"{target}: no file {resolved.relative_to(ROOT) if resolved.is_relative_to(ROOT) else resolved}")
        elif anchor and anchor not in _anchors(resolved.read_text(encoding="utf-8")):
            broken.append(f"{target}: no heading with the anchor #{anchor}")
    assert not broken, broken


def test_the_anchor_rule_is_githubs():
    assert _anchors("## Three wirings, and what each guarantees\n## `GET /health`\n## Run it\n## Run it") == {
        "three-wirings-and-what-each-guarantees", "get-health", "run-it", "run-it-1"}


# ---------------------------------------------------------------- the README

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_quickstart_is_the_two_make_targets_and_ci_runs_the_test_one():
    quickstart = README.split("## Quickstart", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^(make \w+)", quickstart, flags=re.MULTILINE)
    assert commands == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_errors_table_names_every_outcome_a_run_can_end_with():
    from domain import Outcome

    table = README.split("## Errors", 1)[1].split("\n## ", 1)[0]
    first_cells = re.findall(r"^\| (.+?) \|", table, flags=re.MULTILINE)
    named = {name for cell in first_cells for name in re.findall(r"`([a-z_]+)`", cell)}
    assert named == {outcome.value for outcome in Outcome}


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.unit.test_docs --write")
    REFERENCE.write_text(regenerated(REFERENCE.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote {REFERENCE.relative_to(ROOT)}")
