"""The diagnosis answers in codes; the apps word them. ``libv4e/scenarios`` holds no tool
name of the apps (the agent tools, read from their tables) and no English sentence (a
string of four words or more) in its code: the driver's lines, the agent's notes, titles,
evidence notes and tool calls live in ``libv4e_apps.csms.wording`` / ``.phrases``.

Read from the source (the AST): documentation (docstrings and other bare string
statements) and comments may say anything; so may log lines and the messages of raised
exceptions (for developers, never part of an answer). ``_catalog.py`` is the scenario
catalog: the sandbox's faults described for ``GET /demo/scenarios`` (a custom scenario
brings its own), not the diagnosis."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from libv4e_apps.csms.driver_tools import DRIVER_TOOLS_BY_NAME
from libv4e_apps.csms.tools import TOOLS_BY_NAME
from tests.support import ROOT

SCENARIOS = ROOT / "libv4e" / "scenarios"
CATALOG = {"_catalog.py"}
TOOL_NAMES = frozenset(TOOLS_BY_NAME) | frozenset(DRIVER_TOOLS_BY_NAME)
LOG_METHODS = frozenset({"debug", "info", "warning", "error", "exception", "critical", "log"})
MAX_WORDS = 3

# Words of the scenario runs, not of the diagnosis, kept on purpose (each with the reason).
KNOWN: dict[tuple[str, str], str] = {
    ("_manager.py", "offline_charger (dead mode): unreachable"): "the HTTP reason of the "
    "connection a dead charger is refused (a protocol refusal, like an exception message)",
    ("_manager.py", "superseded by a new trigger of X"): "a scenario run's history note "
    "(GET /demo/scenarios), not part of a diagnosis",
}


def _skipped(tree: ast.AST) -> set[int]:
    """ids of the string nodes that are documentation, log lines or exception messages."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant | ast.JoinedStr):
            skipped |= {id(n) for n in ast.walk(node.value)}
        elif isinstance(node, ast.Raise) and node.exc is not None:
            skipped |= {id(n) for n in ast.walk(node.exc)}
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in LOG_METHODS
        ):
            skipped |= {id(n) for n in ast.walk(node)}
    return skipped


def strings(path: Path) -> list[tuple[int, str]]:
    """Every string of the code in ``path`` (an f-string with ``X`` for each hole)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _skipped(tree)
    inner: set[int] = set()
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped or id(node) in inner:
            continue
        if isinstance(node, ast.JoinedStr):
            inner |= {id(n) for n in ast.walk(node) if n is not node}
            text = "".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)
            found.append((node.lineno, text))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append((node.lineno, node.value))
    return found


def words(text: str) -> int:
    return sum(bool(re.search(r"[A-Za-z]", token)) for token in text.split())


MODULES = sorted(p for p in SCENARIOS.glob("*.py") if p.name not in CATALOG)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_tool_name_of_the_apps(path):
    named = [
        (line, text)
        for line, text in strings(path)
        if TOOL_NAMES & set(re.findall(r"[a-z_]+", text))
    ]
    assert not named, f"{path.name}: tool names belong in libv4e_apps.csms.wording: {named}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_english_sentence(path):
    sentences = [
        (line, text)
        for line, text in strings(path)
        if words(text) > MAX_WORDS and (path.name, text) not in KNOWN
    ]
    assert not sentences, f"{path.name}: words belong in libv4e_apps.csms.wording: {sentences}"


def test_the_tool_names_are_read_from_the_apps():
    assert {"reset_charger", "remote_start", "create_ticket", "diagnose_charger"} <= TOOL_NAMES
