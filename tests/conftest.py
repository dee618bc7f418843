"""Shared test helpers: sample payloads built from the OCPP 1.6 JSON schemas."""

from __future__ import annotations

from typing import Any

import pytest

from libv4e.protocol._validation import schema_for
from libv4e.transport import _websocket as _transport
from libv4e.transport._websocket import TRANSPORTS


def sample_from_schema(
    schema: dict[str, Any], root: dict[str, Any] | None = None, *, minimal: bool = False
) -> Any:
    """A valid instance of ``schema`` with every optional property filled in (``minimal``:
    only the properties the schema requires, at every level)."""
    root = root or schema
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return sample_from_schema(root["definitions"][ref.split("/")[-1]], root, minimal=minimal)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        required = set(schema.get("required", ()))
        return {
            name: sample_from_schema(sub, root, minimal=minimal)
            for name, sub in schema.get("properties", {}).items()
            if not minimal or name in required
        }
    if kind == "array":
        return [sample_from_schema(schema["items"], root, minimal=minimal)]
    if kind == "string":
        if schema.get("format") == "date-time":
            return "2024-05-01T12:00:00+00:00"
        if schema.get("format") == "uri":
            return "ftp://example.invalid/upload"
        return "x"
    if kind == "integer":
        return 7
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind is None and set(schema) <= {"description", "javaType"}:
        return {"any": ["JSON"]}  # 2.0.1 DataTransfer's data: any JSON value
    raise AssertionError(f"no sample for {schema}")


def sample_payload(kind: str, action: str, *, minimal: bool = False) -> dict[str, Any]:
    """A complete, valid payload of ``action`` (kind ``call`` or ``result``); ``minimal``:
    the required properties only."""
    data: dict[str, Any] = sample_from_schema(schema_for(kind, action), minimal=minimal)  # type: ignore[arg-type]
    return data


@pytest.fixture(params=TRANSPORTS)
def both_transports(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once per websocket transport: every server and ``open_ocpp`` client
    started without an explicit ``transport`` uses this one."""
    monkeypatch.setattr(_transport, "DEFAULT_TRANSPORT", request.param)
    monkeypatch.setattr(_transport, "DEFAULT_CLIENT_TRANSPORT", request.param)
    return str(request.param)


# -- PostgreSQL ------------------------------------------------------------------------------

import itertools  # noqa: E402

import pytest  # noqa: E402

_db_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server():
    """A throwaway PostgreSQL server for the whole session (skips only when PostgreSQL is
    not installed or cannot start here; .ci/run installs it)."""
    from tests.pgserver import PgUnavailable, pg_server

    try:
        with pg_server() as server:
            yield server
    except PgUnavailable as exc:
        pytest.skip(f"needs PostgreSQL: {exc}")


@pytest.fixture
def pg_url(pg_server):
    """The URL of a fresh, empty database on the session's PostgreSQL server."""
    return pg_server.create_database(f"t{next(_db_numbers)}")
