"""Time in tests is trio's (``MockClock``, ``autojump_clock``), not wall-clock sleeps:
a ``trio.sleep``/``time.sleep`` of a non-zero duration appears only in a test on
trio's mock clock, or on a line that says why it must be wall time (``# wall: ...``:
another OS process, a thread-based peer)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

# generic waiting helpers of tests/support.py: they sleep on whichever clock their caller runs
ALLOWED = {("support.py", "wait_for"), ("support.py", "poll")}

MOCK_PARAMS = {"autojump_clock", "mock_clock"}


def _is_sleep(node: ast.Call) -> bool:
    f = node.func
    return (
        isinstance(f, ast.Attribute)
        and f.attr == "sleep"
        and isinstance(f.value, ast.Name)
        and f.value.id in ("trio", "time")
    )


def _is_zero(node: ast.Call) -> bool:
    if not node.args:
        return False
    arg = node.args[0]
    return isinstance(arg, ast.Constant) and arg.value in (0, 0.0)


def _on_mock_clock(fn: ast.AST) -> bool:
    """The function takes the ``autojump_clock`` fixture or runs under a MockClock."""
    assert isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
    args = fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs
    if any(a.arg in MOCK_PARAMS for a in args):
        return True
    return any(
        (isinstance(n, ast.Attribute) and n.attr == "MockClock")
        or (isinstance(n, ast.Name) and n.id in ("MockClock", *MOCK_PARAMS))
        for n in ast.walk(fn)
    )


def offences(path: Path) -> list[str]:
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    tops = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    tops += [
        m
        for c in tree.body
        if isinstance(c, ast.ClassDef)
        for m in c.body
        if isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    mock = {fn.name: _on_mock_clock(fn) for fn in tops}
    # a module's helper is on the mock clock when every function that uses it is
    users: dict[str, list[str]] = {}
    for fn in tops:
        for n in ast.walk(fn):
            if isinstance(n, ast.Name) and n.id in mock and n.id != fn.name:
                users.setdefault(n.id, []).append(fn.name)
    for name, callers in users.items():
        if not mock[name] and all(mock[c] for c in callers):
            mock[name] = True
    found = []
    for fn in tops:
        if (path.name, fn.name) in ALLOWED or mock[fn.name]:
            continue
        for n in ast.walk(fn):
            if isinstance(n, ast.Call) and _is_sleep(n) and not _is_zero(n):
                if not any("# wall:" in line for line in lines[n.lineno - 1 : n.end_lineno]):
                    found.append(f"{path.relative_to(TESTS.parent)}:{n.lineno} ({fn.name})")
    return found


def test_no_wall_clock_sleeps_in_tests():
    found = [o for path in sorted(TESTS.rglob("*.py")) for o in offences(path)]
    assert not found, (
        "wall-clock sleeps in tests (use autojump_clock/MockClock and wait for the event, "
        "or mark a wait on another process with '# wall: <why>'):\n" + "\n".join(found)
    )
