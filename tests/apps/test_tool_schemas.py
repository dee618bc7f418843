"""The agent tools are generated from the REST API's request models, so every parameter
the API takes is a tool parameter; the OpenAI export follows strict mode's published
rules (Structured Outputs "supported schemas"), in the nested and the flat shape."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import jsonschema
import pytest
from pydantic import BaseModel

from libv4e_apps.csms.demo_api import DiagnosisQuery, TriggerBody
from libv4e_apps.csms.models import COMMANDS
from libv4e_apps.csms.tools import TOOLS, TOOLS_BY_NAME, Tool, mcp_tools, openai_tools
from tests.support import ROOT

# What OpenAI's strict mode accepts (platform.openai.com/docs/guides/structured-outputs,
# "Supported schemas"): these keywords; every object with additionalProperties false and
# every property required; optional fields expressed as a union with null; the root an
# object (not anyOf); at most 5000 properties and 10 levels of nesting; enum values of
# the declared type.
STRICT_KEYWORDS = {
    "type",
    "description",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "anyOf",
    "$ref",
    "$defs",
}
NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def strict_violations(schema: dict, path: str = "$", depth: int = 0) -> list[str]:
    problems = []
    if depth > 10:
        problems.append(f"{path}: nested deeper than 10 levels")
    for key in schema:
        if key not in STRICT_KEYWORDS:
            problems.append(f"{path}: keyword {key!r} is not supported in strict mode")
    types = schema.get("type")
    types = [types] if isinstance(types, str) else (types or [])
    if "object" in types:
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            problems.append(f"{path}: additionalProperties must be false")
        if sorted(schema.get("required", [])) != sorted(props):
            problems.append(f"{path}: every property must be required")
        for name, sub in props.items():
            problems += strict_violations(sub, f"{path}.{name}", depth + 1)
    if "items" in schema:
        problems += strict_violations(schema["items"], f"{path}[]", depth + 1)
    for i, branch in enumerate(schema.get("anyOf", [])):
        problems += strict_violations(branch, f"{path}|{i}", depth + 1)
    py = {
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "null": type(None),
    }
    for value in schema.get("enum", []):
        if types and not any(isinstance(value, py[t]) for t in types if t in py):
            problems.append(f"{path}: enum value {value!r} is not of type {types}")
    return problems


def nullable(schema: dict) -> bool:
    types = schema.get("type")
    if isinstance(types, list) and "null" in types:
        return True
    return any(b.get("type") == "null" for b in schema.get("anyOf", []))


def export(fmt: str) -> list[dict]:
    out = subprocess.run(
        [sys.executable, "-m", "libv4e_apps", "tools", "--format", fmt],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


@pytest.mark.parametrize("fmt", ["openai", "openai-flat"])
def test_openai_export_is_strict_mode_valid(fmt):
    exported = export(fmt)
    assert exported == openai_tools(flat=fmt == "openai-flat")
    assert len(exported) == len(TOOLS)
    total = 0
    for entry in exported:
        assert entry["type"] == "function"
        function = entry if fmt == "openai-flat" else entry["function"]
        if fmt == "openai-flat":
            assert set(entry) == {"type", "name", "description", "parameters", "strict"}
        else:
            assert set(entry) == {"type", "function"}
        assert NAME.match(function["name"])
        assert function["strict"] is True
        params = function["parameters"]
        assert params["type"] == "object" and "anyOf" not in params
        jsonschema.Draft202012Validator.check_schema(params)
        assert strict_violations(params) == [], function["name"]
        total += len(params["properties"])
        # optional in the API ⇔ nullable in the export
        tool = TOOLS_BY_NAME[function["name"]]
        required = set(tool.input_schema()["required"])
        for name, prop in params["properties"].items():
            assert nullable(prop) == (name not in required), (function["name"], name)
    assert total <= 5000


def test_strict_arguments_with_nulls_make_the_same_request():
    """A strict-mode model sends every property, null for the ones it leaves out."""
    tool = TOOLS_BY_NAME["diagnose_charger"]
    params = openai_tools()[2]["function"]["parameters"]
    assert tool.name == "diagnose_charger"
    arguments = dict.fromkeys(params["properties"]) | {"cp_id": "EVSE001"}
    jsonschema.validate(arguments, params)
    assert tool.request(arguments) == ("POST", "/chargers/EVSE001/diagnosis", {}, {})
    profile = TOOLS_BY_NAME["set_charging_profile"]
    *_, body = profile.request(
        {"cp_id": "X", "connector_id": 1, "cs_charging_profiles": '{"chargingProfileId": 1}'}
    )
    assert body["cs_charging_profiles"] == {"chargingProfileId": 1}  # JSON text accepted


def _fields(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


def test_every_request_model_field_is_a_tool_parameter():
    """Generated, not hand-written: each command route has a tool, and every field of a
    route's request model (body or query) is in its tool's schema."""
    by_path = {t.path: t for t in TOOLS}
    for route, model in COMMANDS.items():
        tool = by_path[f"/commands/{route}/{{cp_id}}"]
        assert _fields(model) <= set(tool.input_schema()["properties"]), route
    assert _fields(TriggerBody) <= set(
        TOOLS_BY_NAME["trigger_scenario"].input_schema()["properties"]
    )
    assert {"mode", "connector_id", "id_tag"} <= _fields(TriggerBody)
    assert _fields(DiagnosisQuery) <= set(
        TOOLS_BY_NAME["diagnose_charger"].input_schema()["properties"]
    )
    assert "probe" in _fields(DiagnosisQuery)
    names = [t.name for t in TOOLS]
    assert len(names) == len(set(names))


def test_a_new_command_model_becomes_a_tool_without_more_code(monkeypatch):
    from libv4e_apps.csms import tools as _tools
    from libv4e_apps.csms.models import Command

    class PingBody(Command):
        """Ping the charger."""

        loud: bool = False

    monkeypatch.setitem(COMMANDS, "ping", PingBody)
    tools = {t.name: t for t in _tools._command_tools()}
    assert tools["ping"].description == "Ping the charger."
    assert tools["ping"].input_schema()["properties"]["loud"] == {"type": "boolean"}
    assert tools["ping"].request({"cp_id": "A", "loud": True})[1:] == (
        "/commands/ping/A",
        {},
        {"loud": True},
    )


def test_mcp_export_keeps_optional_parameters_out_of_required():
    listed = {t["name"]: t for t in mcp_tools()}
    trigger = listed["trigger_scenario"]["inputSchema"]
    assert trigger["required"] == ["name"]
    assert trigger["properties"]["mode"]["enum"] == ["silent", "dead"]
    assert trigger["additionalProperties"] is False
    assert listed["diagnose_charger"]["annotations"]["readOnlyHint"] is True
    for t in listed.values():
        jsonschema.Draft202012Validator.check_schema(t["inputSchema"])
    assert export("mcp") == mcp_tools()


def test_hand_written_parameters_still_work():
    from libv4e_apps.csms.tools import Param

    tool = Tool("x", "X.", "GET", "/x/{a}", {"a": Param({"type": "string"}, True, "path")})
    assert tool.request({"a": "b"}) == ("GET", "/x/b", {}, None)
