"""The documentation's code runs: every ```python block in docs/*.md is executed as its
own script (as a reader would paste it), in a fresh interpreter, from the repository."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support import ROOT

BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks() -> list[tuple[str, str]]:
    found = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        for i, match in enumerate(BLOCK.finditer(page.read_text(encoding="utf-8"))):
            found.append((f"{page.name}#{i + 1}", match.group(1)))
    return found


def test_the_docs_have_runnable_blocks():
    pages = {name.split("#")[0] for name, _ in blocks()}
    assert {"library.md", "scenarios.md", "agents.md"} <= pages


@pytest.mark.parametrize(("where", "code"), blocks(), ids=[name for name, _ in blocks()])
def test_docs_code_block_runs(where, code, tmp_path):
    script = tmp_path / "snippet.py"
    script.write_text(code, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"{where}\n{code}\n{proc.stdout}\n{proc.stderr}"
