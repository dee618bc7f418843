"""The public face of libv4e, checked the way trio checks its own (tests/codebase/test_exports.py):
every exported name resolves, each public object is defined in one module and exported
under one name by one layer, the top level holds only the headline names, the apps and
examples use only the public faces, and the library does not pull in the web stack."""

from __future__ import annotations

import ast
import collections
import importlib
import re
from pathlib import Path
from types import ModuleType

import pytest

import libv4e
from tests.support import ROOT

LIBRARY = ROOT / "libv4e"
LAYERS = ("protocol", "transport", "csms", "charger", "scenarios", "sandbox")
FACES = ("libv4e", *(f"libv4e.{layer}" for layer in LAYERS))
WEB_STACK = frozenset(
    {"quart", "quart_trio", "hypercorn", "pydantic", "rich", "prometheus_client", "httpx"}
)

# Public names defined twice (none).
KNOWN_DUPLICATES: dict[str, str] = {}


def face(name: str) -> ModuleType:
    return importlib.import_module(name)


def library_modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(LIBRARY.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append((".".join(parts), path))
    return found


def top_level_definitions() -> dict[str, set[str]]:
    """name -> the libv4e modules that define it at module level (not by importing it)."""
    defined: dict[str, set[str]] = collections.defaultdict(set)
    for module, path in library_modules():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            names: list[str] = []
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names = [node.name]
            elif isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names = [node.target.id]
            for name in names:
                defined[name].add(module)
    return defined


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module an AST imports, anywhere in it (function bodies and TYPE_CHECKING
    blocks included), as absolute dotted names; ``from x import y`` also yields ``x.y``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    return found


def exported() -> list[tuple[str, str]]:
    return [(name, entry) for name in FACES for entry in face(name).__all__]


@pytest.mark.parametrize("name", FACES)
def test_every_face_has_a_unique_all(name):
    entries = face(name).__all__
    assert entries, name
    assert len(entries) == len(set(entries)), name


@pytest.mark.parametrize(("name", "entry"), exported())
def test_every_all_entry_resolves(name, entry):
    assert hasattr(face(name), entry), f"{name}.__all__ lists {entry!r}, which it lacks"


def test_the_top_level_holds_the_headline_names():
    assert 25 <= len(libv4e.__all__) <= 40, len(libv4e.__all__)
    for headline in (
        "OcppSession",
        "Role",
        "CallReceived",
        "OcppConnection",
        "serve_ocpp",
        "open_ocpp",
        "CentralSystem",
        "CsmsConfig",
        "Store",
        "SqliteStore",
        "Charger",
        "ChargerConfig",
        "serve_fleet",
        "ScenarioManager",
        "diagnose",
        "Libv4eError",
        "OcppError",
        "CallFailed",
    ):
        assert headline in libv4e.__all__, headline


def test_each_top_level_name_is_a_layer_name_or_an_error():
    """The top level adds nothing of its own: each name is the same object as in one
    layer's face, or one of the error hierarchy in ``libv4e._errors``."""
    errors = importlib.import_module("libv4e._errors")
    for entry in libv4e.__all__:
        value = getattr(libv4e, entry)
        homes = [layer for layer in LAYERS if entry in face(f"libv4e.{layer}").__all__]
        if homes:
            assert len(homes) == 1, (entry, homes)
            assert getattr(face(f"libv4e.{homes[0]}"), entry) is value, entry
        else:
            assert getattr(errors, entry, None) is value, f"{entry} has no layer to live in"


def test_each_public_object_is_exported_once():
    """No object is exported under two names, nor by two layers (the top level aside)."""
    names: dict[int, set[tuple[str, str]]] = collections.defaultdict(set)
    for name, entry in exported():
        value = getattr(face(name), entry)
        if isinstance(value, (int, str, float, bool, frozenset, tuple)) or value is None:
            continue  # equal constants may be the same object by interning
        names[id(value)].add((name, entry))
    for places in names.values():
        entries = {entry for _, entry in places}
        assert len(entries) == 1, f"one object, several names: {sorted(places)}"
        layers = {name for name, _ in places if name != "libv4e"}
        assert len(layers) <= 1, f"exported by several layers: {sorted(places)}"


def test_every_exported_exception_is_a_libv4e_error():
    """One hierarchy: whatever exception a face exports derives from Libv4eError."""
    for name, entry in exported():
        value = getattr(face(name), entry)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert issubclass(value, libv4e.Libv4eError), f"{name}.{entry}"


def _defined_once_cases() -> list[object]:
    cases: list[object] = []
    for name, entry in sorted({(n, e) for n, e in exported() if n != "libv4e"}):
        marks = []
        if entry in KNOWN_DUPLICATES:
            marks.append(pytest.mark.xfail(reason=KNOWN_DUPLICATES[entry], strict=False))
        cases.append(pytest.param(name, entry, marks=marks, id=f"{name}.{entry}"))
    return cases


@pytest.mark.parametrize(("name", "entry"), _defined_once_cases())
def test_each_public_name_is_defined_in_exactly_one_module(name, entry):
    """A public name is defined in one private module and re-exported by its layer's
    face; no second module defines its own copy under the same name."""
    modules = top_level_definitions()[entry]
    assert len(modules) == 1, f"{name}.{entry} is defined in {sorted(modules)}"
    (module,) = modules
    layer = name.removeprefix("libv4e.")
    assert module == "libv4e._errors" or module.startswith(f"libv4e.{layer}."), (entry, module)


def _user_sources() -> list[tuple[str, str]]:
    """apps/, examples/, bench/, docs/*.py and every python block in docs/*.md."""
    sources = []
    for folder in ("apps", "examples", "bench", "docs"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            sources.append((str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")))
    block = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
    for page in sorted((ROOT / "docs").glob("*.md")):
        for i, match in enumerate(block.finditer(page.read_text(encoding="utf-8"))):
            sources.append((f"docs/{page.name}#{i + 1}", match.group(1)))
    return sources


def test_there_are_user_sources_to_check():
    where = {name.split("/")[0] for name, _ in _user_sources()}
    assert {"apps", "examples", "bench", "docs"} <= where


@pytest.mark.parametrize(("where", "source"), _user_sources(), ids=[w for w, _ in _user_sources()])
def test_apps_examples_bench_and_docs_import_only_public_faces(where, source):
    private = [
        (line, module)
        for line, module in imported_modules(ast.parse(source))
        if module.split(".")[0] == "libv4e" and any(p.startswith("_") for p in module.split("."))
    ]
    assert not private, f"{where} imports private libv4e modules: {private}"


@pytest.mark.parametrize(
    ("module", "path"), library_modules(), ids=[m for m, _ in library_modules()]
)
def test_the_library_does_not_import_the_web_stack(module, path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    web = [(line, name) for line, name in imported_modules(tree) if name.split(".")[0] in WEB_STACK]
    assert not web, f"{module} imports {web}"


@pytest.mark.parametrize(
    ("module", "path"),
    [(m, p) for m, p in library_modules() if m.startswith("libv4e.protocol")],
    ids=[m for m, _ in library_modules() if m.startswith("libv4e.protocol")],
)
def test_the_protocol_layer_does_no_io(module, path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    io = {"trio", "trio_websocket", "wsproto", "socket", "ssl", "asyncio", "sqlite3"}
    found = [(line, name) for line, name in imported_modules(tree) if name.split(".")[0] in io]
    assert not found, f"{module} imports {found}"


def test_importing_libv4e_loads_no_web_stack():
    """In a fresh interpreter: the whole library, every layer, and none of the web stack."""
    import subprocess
    import sys

    code = (
        "import sys, libv4e, " + ", ".join(f"libv4e.{layer}" for layer in LAYERS) + "\n"
        f"print(sorted(m for m in {sorted(WEB_STACK)!r} if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout
