"""Tests wait on trio's clock, not the wall's: a test that waits a second or more
(a backoff, a grace period, a heartbeat, the offline tolerance) runs under a MockClock
(the ``autojump_clock`` fixture, or ``trio.run(..., clock=MockClock(...))``), where the
wait costs no wall time and cannot be too short on a busy machine. A wait that truly
is on the wall (another process, a thread-based peer) says so on its line:
``# wall: <why>``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import ROOT

TESTS = sorted((ROOT / "tests").rglob("*.py"))
LONG = 1.0
"""Seconds: a shorter wall-clock sleep is a yield, not a wait for the code's timers."""


def _on_mock_clock(fn: ast.AST, source: str) -> bool:
    args = [a.arg for a in getattr(fn, "args", ast.arguments()).args]
    text = ast.get_source_segment(source, fn) or ""
    return "autojump_clock" in args or "MockClock" in text


def long_wall_sleeps(path: Path) -> list[int]:
    """Lines of ``path`` with ``trio.sleep``/``time.sleep`` of a constant ≥ LONG seconds,
    outside any function on a mock clock, without a ``# wall:`` note."""
    source = path.read_text()
    lines = source.splitlines()
    found = []

    def visit(node: ast.AST, mocked: bool) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            mocked = mocked or _on_mock_clock(node, source)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "sleep"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in ("trio", "time")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, int | float)
            and node.args[0].value >= LONG
            and not mocked
            and "# wall:" not in lines[node.lineno - 1]
        ):
            found.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child, mocked)

    visit(ast.parse(source), False)
    return found


@pytest.mark.parametrize("path", TESTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_long_waits_are_on_trios_clock(path):
    assert long_wall_sleeps(path) == [], "wait on trio's clock, or say why with # wall:"


def test_the_check_finds_a_long_wall_sleep(tmp_path):
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "import time, trio\n"
        "async def test_a():\n"
        "    await trio.sleep(2.5)\n"
        "async def test_b(autojump_clock):\n"
        "    await trio.sleep(120)\n"
        "def test_c():\n"
        "    time.sleep(3)  # wall: a process of its own\n"
        "def test_d():\n"
        "    async def main():\n"
        "        await trio.sleep(60)\n"
        "    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))\n"
        "async def test_e():\n"
        "    await trio.sleep(0.05)\n"
    )
    assert long_wall_sleeps(sample) == [3]
