"""Every ```bash and ```python block of README.md and docs/*.md runs, against this worker's Prefect server, unless the
line right before it is `<!-- not run: why -->`: then it is reported skipped with that reason, never silently.

Shell blocks run with bash -euo pipefail in an empty folder holding a `.venv` link (the docs call `.venv/bin/...`);
Python blocks run in this process. Blocks a snippet saves on the Prefect server are deleted afterwards, so the
sweep tests never meet them.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.servers import ROOT
from tests.helpers import doc_pages

DOCS = doc_pages()
FENCE = re.compile(r"^```(?P<lang>[\w+-]*)[^\n]*\n(?P<code>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
NOT_RUN = re.compile(r"<!-- not run: (?P<why>[^>]+?) -->\s*$")
SHELL_NAMES = {"sh", "shell", "console", "zsh", "py", "python3", "pycon"}  # to be written as bash or python
SNIPPET_TIMEOUT_SECONDS = 240  # the import, list and remove of docs/fleet.md: three CLI processes (about 10 s when quiet)


@dataclass(frozen=True)
class Snippet:
    doc: str
    line: int
    lang: str
    code: str
    not_run: str | None

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def snippets() -> list[Snippet]:
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            reason = NOT_RUN.search(before)
            found.append(Snippet(str(path.relative_to(ROOT)), text.count("\n", 0, match.start()) + 1,
                                 match.group("lang"), match.group("code"), reason.group("why") if reason else None))
    return found


ALL = snippets()
RUNNABLE = [s for s in ALL if s.lang in ("bash", "python")]
# Skipped at collection, so a skipped block starts no Prefect server; the reason shows in the summary (-ra).
CASES = [pytest.param(s, id=s.id, marks=[pytest.mark.skip(reason=f"not run: {s.not_run}")] if s.not_run else [])
         for s in RUNNABLE]


def test_every_shell_or_python_block_is_named_bash_or_python_and_every_marker_precedes_one():
    misnamed = [f"{s.id} ({s.lang})" for s in ALL if s.lang in SHELL_NAMES]
    assert not misnamed, f"name these blocks bash or python, so they are run: {misnamed}"
    markers = sum(len(re.findall(r"^<!-- not run: .* -->$", p.read_text(encoding="utf-8"), re.MULTILINE)) for p in DOCS)
    assert markers == sum(s.not_run is not None for s in ALL), "a `<!-- not run: ... -->` line is not right before a block"
    assert sum(s.not_run is None for s in RUNNABLE) >= 4, "the docs' runnable blocks were not found"


def _block_document_ids() -> set:
    from prefect.client.orchestration import get_client

    ids, page_size = set(), 200
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_block_documents(offset=len(ids), limit=page_size, include_secrets=False)
            ids |= {document.id for document in page}
            if len(page) < page_size:
                return ids


@pytest.fixture
def saved_blocks_removed(prefect_server):
    """Deletes the block documents a snippet saved (the import's greenapi-instance blocks, the docs' examples)."""
    from prefect.client.orchestration import get_client

    before = _block_document_ids()
    yield
    with get_client(sync_client=True) as client:
        for block_id in _block_document_ids() - before:
            client.delete_block_document(block_id)


def _run_bash(snippet: Snippet, folder: Path, api_url: str) -> None:
    (folder / ".venv").symlink_to(ROOT / ".venv")
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith(("GREEN_API_", "PREFECT_"))}
    env.update(PYTHONPATH=str(ROOT), PREFECT_API_URL=api_url, PREFECT_HOME=str(folder / ".prefect"))
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", snippet.code], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=SNIPPET_TIMEOUT_SECONDS)
    assert done.returncode == 0, f"{snippet.id} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize("snippet", CASES)
def test_the_docs_snippet_runs(snippet: Snippet, prefect_server, saved_blocks_removed, tmp_path, monkeypatch):
    for name in [name for name in os.environ if name.upper().startswith("GREEN_API_")]:
        monkeypatch.delenv(name)
    if snippet.lang == "bash":
        _run_bash(snippet, tmp_path, prefect_server.api_url)
    else:
        monkeypatch.chdir(tmp_path)
        exec(compile(snippet.code, snippet.id, "exec"), {"__name__": "__docs__"})
