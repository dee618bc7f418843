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


QUICK = [
    # one or more files per layer, the fast ones (~35 s in all; the full suite ~10 min)
    "tests/protocol/test_session.py",  # protocol
    "tests/protocol/test_convert.py",
    "tests/charger/test_fast_paths.py",
    "tests/protocol/test_datetime_bounds.py",
    "tests/protocol/test_session_201.py",
    "tests/transport/test_transport.py",  # transport
    "tests/transport/test_frame_budgets.py",
    "tests/transport/test_close_drain.py",
    "tests/transport/test_flow_budgets.py",
    "tests/csms/test_txbook.py",  # csms
    "tests/csms/test_txbook201.py",
    "tests/csms/test_commands201.py",
    "tests/csms/test_operator_books.py",
    "tests/csms/test_store_contract.py",
    "tests/charger/test_charger_model.py",  # charger
    "tests/charger/test_charger_protocol.py",
    "tests/scenarios/test_voice.py",  # scenarios
    "tests/scenarios/test_diagnosis_plain.py",
    "tests/scenarios/test_sandbox.py",  # sandbox, eval
    "tests/apps/test_eval_tasks.py",
    "tests/scenarios/test_advice_not_to_act.py",
    "tests/apps/test_api_schema.py",  # apps
    "tests/apps/test_tool_profiles.py",
    "tests/apps/test_openapi_complete.py",
    "tests/apps/test_http_idle.py",
    "tests/apps/test_big_body.py",
    "tests/codebase/test_layers.py",  # structure
    "tests/codebase/test_packaging.py",
    "tests/codebase/test_code_shape.py",
    "tests/codebase/test_test_clock.py",
]


@nox.session
def quick(session: nox.Session) -> None:
    """The inner loop (< 60 s): the fast tests of every layer, not those marked slow.
    CI and the README's test command run everything."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", "-q", "-m", "not slow", *QUICK, *session.posargs)


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
    session.run("python", "-m", "bench.flood")
    session.run("python", "-m", "bench.versions")


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
