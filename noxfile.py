"""Developer tasks: `nox -l` lists them."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.default_venv_backend = "venv"


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (real servers on 127.0.0.1, ephemeral ports)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and common bugs with ruff."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the library (strict) and the apps with mypy."""
    session.install("-e", ".[test]", "mypy")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Run the load benchmark and print its figures (not part of CI)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "bench", *session.posargs)
    session.run("python", "-m", "bench.eval_suite")


@nox.session(name="bench-eval")
def bench_eval(session: nox.Session) -> None:
    """Only the evaluation figure: the built-in suite x 4 trials, scripted agent, 2 workers."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "bench.eval_suite", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Regenerate docs/api.md from the OpenAPI document."""
    session.install("-e", ".")
    session.run("python", "docs/gen_api.py", "docs/api.md")
