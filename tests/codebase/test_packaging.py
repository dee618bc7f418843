"""The package as pip installs it: the wheel built from this tree holds ``libv4e`` and the
apps under ``libv4e_apps`` (never a top-level ``apps``, which would collide with other
projects'), its core requirements are the library's and none of the web stack, and in a
fresh virtual environment ``pip install libv4e`` (no extra) imports every layer of the
library without installing Quart."""

from __future__ import annotations

import ast
import email
import email.message
import re
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from tests.support import ROOT

WEB_STACK = frozenset(
    {"quart", "quart-trio", "quart-schema", "hypercorn", "pydantic", "rich"}
    | {"prometheus-client", "httpx", "mcp"}
)
# the importable names of the same, for the fresh environment
WEB_MODULES = ("quart", "quart_trio", "quart_schema", "hypercorn", "pydantic", "rich")
WEB_MODULES += ("prometheus_client", "httpx", "mcp")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _packages(folder: str, installed_as: str) -> set[str]:
    """Every package (a folder with an ``__init__.py``) under ``folder``, by its installed name."""
    base = ROOT / folder
    return {
        ".".join((installed_as, *init.parent.relative_to(base).parts))
        for init in base.rglob("__init__.py")
        if "__pycache__" not in init.parts
    }


LAYERS = sorted(
    name for name in _packages("libv4e", "libv4e") if not name.split(".")[-1].startswith("_")
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel pip builds from a copy of this tree (nothing written into the tree)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("libv4e", "apps"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"), "."],
        cwd=src,
        check=True,
        capture_output=True,
    )
    (found,) = (tmp / "dist").glob("libv4e-*.whl")
    return found


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(zf.read(name))


def _core_requirements(wheel: Path) -> set[str]:
    """The names of the requirements without an extra marker (what ``pip install libv4e``
    installs)."""
    names = set()
    for requirement in _metadata(wheel).get_all("Requires-Dist") or []:
        if "extra ==" in requirement:
            continue
        names.add(_canonical(re.match(r"[A-Za-z0-9._-]+", requirement).group()))
    return names


@pytest.mark.slow
def test_the_wheel_holds_libv4e_and_libv4e_apps_and_no_top_level_apps(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    top = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top == {"libv4e", "libv4e_apps"}, top
    packages = {
        name.removesuffix("/__init__.py").replace("/", ".")
        for name in names
        if name.endswith("/__init__.py")
    }
    expected = _packages("libv4e", "libv4e") | _packages("apps", "libv4e_apps")
    assert packages == expected  # pyproject.toml lists every package
    assert "libv4e/py.typed" in names
    assert "libv4e_apps/csms/static/dashboard.html" in names
    assert "libv4e_apps/csms/static/vendor/uplot/uPlot.iife.min.js" in names
    assert any(re.fullmatch(r"libv4e_apps/eval/suite/[^/]+\.json", n) for n in names)
    with zipfile.ZipFile(wheel) as zf:
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "v4e = libv4e_apps.cli:main" in zf.read(entry_points).decode()


@pytest.mark.slow
def test_the_core_requirements_are_the_librarys_and_not_the_web_stack(wheel):
    core = _core_requirements(wheel)
    assert not core & WEB_STACK, core & WEB_STACK
    # each one is imported by libv4e/ (nothing only the apps use)
    imported = set()
    for path in (ROOT / "libv4e").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    distributions = packages_distributions()
    used = {_canonical(d) for module in imported for d in distributions.get(module, [])}
    assert core <= used, core - used
    # and the web stack is there, behind the apps extra
    apps = {
        _canonical(re.match(r"[A-Za-z0-9._-]+", r).group())
        for r in _metadata(wheel).get_all("Requires-Dist") or []
        if re.search(r"""extra\s*==\s*["']apps["']""", r)
    }
    assert WEB_STACK - {"mcp"} <= apps, WEB_STACK - apps


@pytest.mark.slow
def test_pip_install_libv4e_imports_every_layer_without_quart(wheel, tmp_path):
    """In a fresh virtual environment: the wheel with its core requirements (from the
    configured index), every layer imports, none of the web stack is installed, and ``v4e``
    says which extra it needs."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    code = (
        "import importlib, importlib.util\n"
        f"for name in {LAYERS!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(sorted(m for m in {WEB_MODULES!r} if importlib.util.find_spec(m)))\n"
        "print(importlib.util.find_spec('apps'))\n"
        "print(importlib.util.find_spec('trio_websocket'))\n"
        "from libv4e.transport._websocket import transport_named\n"
        "transport_named('wsproto')\n"
        "try:\n"
        "    transport_named('trio-websocket')\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [str(python), "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path
    ).stdout.splitlines()
    assert out == [
        "[]",
        "None",
        "None",  # trio-websocket is an optional transport: the core runs on wsproto
        "the trio-websocket transport needs trio-websocket: pip install 'libv4e[trio-websocket]'",
    ]
    v4e = subprocess.run(
        [str(venv / "bin" / "v4e"), "--help"], capture_output=True, text=True, cwd=tmp_path
    )
    assert v4e.returncode != 0
    assert "pip install 'libv4e[apps]'" in v4e.stderr


def test_the_layers_are_found():
    assert {"libv4e", "libv4e.protocol", "libv4e.transport", "libv4e.csms"} < set(LAYERS)
    assert {"libv4e.charger", "libv4e.scenarios", "libv4e.sandbox"} < set(LAYERS)


def test_nothing_names_the_apps_by_their_folder():
    """The apps are the package libv4e_apps: no import or ``python -m`` names ``apps``."""
    pattern = re.compile(
        r"""^\s*(from|import)\s+apps\b|["']-m["'],\s*["']apps\b|-m[ ]apps\b""", re.M
    )
    found = []
    for folder in ("apps", "libv4e", "tests", "bench", "examples", "docs"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".md") and "__pycache__" not in path.parts:
                text = path.read_text(encoding="utf-8")
                found += [f"{path.relative_to(ROOT)}: {m.group()}" for m in pattern.finditer(text)]
    for name in ("README.md", "Dockerfile", "docker-compose.yml", "noxfile.py"):
        text = (ROOT / name).read_text(encoding="utf-8")
        found += [f"{name}: {m.group()}" for m in pattern.finditer(text)]
    assert not found
