"""Tool profiles (``--profile``) and the OpenAI Realtime export (``--format realtime``).

A support agent under test gets only the tools a support agent needs: with
``clear_scenarios`` it would "solve" every fault. The profile is enforced where the
tools are served (MCP ``tools/list`` and ``tools/call``), not only where they are listed.
"""

from __future__ import annotations

import json
import re
import sys

import jsonschema
import pytest

from libv4e.scenarios import ActionKind
from libv4e_apps.cli import main as v4e
from libv4e_apps.csms.tools import (
    PROFILES,
    TOOLS,
    TOOLS_BY_NAME,
    mcp_tools,
    openai_tools,
    profile_tools,
    realtime_tools,
)
from libv4e_apps.csms.wording import TOOLS as TOOLS_OF_ACTIONS
from tests.support import api, charger_running, running_backend

SUPPORT = "driver-support"

# Tools a support agent under test must never have: demo controls (clear_scenarios ends
# every fault), firmware, reservations, charging profiles, certificates, clearing.
FORBIDDEN = {
    "list_scenarios",
    "trigger_scenario",
    "clear_scenarios",
    "update_firmware",
    "signed_update_firmware",
    "get_diagnostics",
    "get_log",
    "reserve_now",
    "cancel_reservation",
    "set_charging_profile",
    "clear_charging_profile",
    "clear_cache",
    "install_certificate",
    "delete_certificate",
    "change_configuration",
    "data_transfer",
}

# The OpenAI Realtime API's function tool (session.update → session.tools[]): the
# documented RealtimeFunctionTool has exactly these keys (type "function", name,
# description, parameters as JSON Schema); there is no ``strict``.
REALTIME_KEYS = {"type", "name", "description", "parameters"}


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = v4e(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_every_profile_names_existing_tools_and_full_is_everything():
    assert PROFILES["full"] == tuple(t.name for t in TOOLS)
    for name, tools in PROFILES.items():
        assert tools, name
        assert set(tools) <= set(TOOLS_BY_NAME), (name, set(tools) - set(TOOLS_BY_NAME))
        assert len(tools) == len(set(tools)), name


def test_driver_support_has_what_a_support_agent_needs_and_nothing_that_cheats():
    names = {t.name for t in profile_tools(SUPPORT)}
    assert 8 <= len(names) <= 13
    assert {
        "list_chargers",
        "get_charger",
        "diagnose_charger",
        "recent_messages",
        "remote_start",
        "remote_stop",
        "unlock_connector",
        "reset_charger",
        "change_availability",
        "send_local_list",
        "create_ticket",
    } <= names
    assert not names & FORBIDDEN
    # served in TOOLS order (the order an agent usually needs them)
    assert [t.name for t in profile_tools(SUPPORT)] == [t.name for t in TOOLS if t.name in names]


def test_every_action_a_diagnosis_prescribes_is_in_the_support_profile():
    """The agent follows the diagnosis's actions: the tool of every kind of action must be
    offered."""
    prescribed = {TOOLS_OF_ACTIONS[kind] for kind in ActionKind}
    assert {"diagnose_charger", "reset_charger", "remote_start"} <= prescribed
    assert prescribed <= set(PROFILES[SUPPORT]), prescribed - set(PROFILES[SUPPORT])


def test_unknown_profile_is_one_line_naming_the_choices(capsys):
    with pytest.raises(ValueError, match="driver-support"):
        profile_tools("nope")
    for argv in (
        ["tools", "--profile", "nope"],
        ["tools", "--format", "realtime", "--profile", "nope"],
        ["mcp", "--profile", "nope"],
    ):
        code, out, err = run_cli(capsys, *argv)
        assert code == 2 and out == ""
        assert err.count("\n") == 1, err
        assert "'nope'" in err and all(p in err for p in PROFILES), err


@pytest.mark.parametrize("fmt", ["openai", "openai-flat", "realtime", "mcp"])
def test_cli_exports_only_the_profile(capsys, fmt):
    code, out, _ = run_cli(capsys, "tools", "--format", fmt, "--profile", SUPPORT)
    assert code == 0
    exported = json.loads(out)
    names = [e["function"]["name"] if fmt == "openai" else e["name"] for e in exported]
    assert names == [t.name for t in profile_tools(SUPPORT)]
    code, out, _ = run_cli(capsys, "tools", "--format", fmt)  # default: full
    assert len(json.loads(out)) == len(TOOLS)


def test_cli_profile_from_the_environment(capsys, monkeypatch):
    monkeypatch.setenv("V4E_TOOL_PROFILE", SUPPORT)
    code, out, _ = run_cli(capsys, "tools", "--format", "mcp")
    assert code == 0
    assert json.loads(out) == mcp_tools(SUPPORT)


def _example(schema: dict) -> object:
    """A value of ``schema`` (first enum value, smallest allowed number, ...)."""
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return _example(schema["anyOf"][0])
    kind = schema.get("type")
    if kind == "string":
        return "A" * max(1, schema.get("minLength", 1))
    if kind == "integer":
        return max(schema.get("minimum", 1), schema.get("exclusiveMinimum", 0) + 1)
    if kind == "number":
        return schema.get("minimum", 1)
    if kind == "boolean":
        return True
    if kind == "array":
        return [_example(schema["items"])] * schema.get("minItems", 1)
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _example(props[k]) for k in schema.get("required", [])}
    raise AssertionError(schema)


@pytest.mark.parametrize("profile", ["full", SUPPORT])
def test_realtime_export_has_the_keys_the_realtime_api_takes(profile, capsys):
    exported = realtime_tools(profile)
    code, out, _ = run_cli(capsys, "tools", "--format", "realtime", "--profile", profile)
    assert code == 0 and json.loads(out) == exported
    assert "strict" not in out  # not a key of the Realtime function tool, anywhere
    for entry in exported:
        assert set(entry) == REALTIME_KEYS, entry["name"]
        assert entry["type"] == "function"
        assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", entry["name"])
        assert isinstance(entry["description"], str) and entry["description"]
        params = entry["parameters"]
        assert params["type"] == "object"
        jsonschema.Draft202012Validator.check_schema(params)
        # what the model would send: the required arguments, each of its declared type
        arguments = _example(params)
        jsonschema.validate(arguments, params)
        tool = TOOLS_BY_NAME[entry["name"]]
        method, path, _, _ = tool.request(arguments)  # the call the agent's loop makes
        assert method == tool.method and "{" not in path
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**arguments, "made_up": 1}, params)
    # a session.update event built from it is plain JSON
    event = {"type": "session.update", "session": {"type": "realtime", "tools": exported}}
    assert json.loads(json.dumps(event)) == event


def test_strict_exports_still_strict_for_a_profile():
    for entry in openai_tools(flat=True, profile=SUPPORT):
        assert entry["strict"] is True
        assert entry["parameters"]["additionalProperties"] is False


mcp = pytest.importorskip("mcp")
from mcp import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402


@pytest.mark.slow
async def test_mcp_server_with_a_profile_lists_and_allows_only_its_tools(tmp_path):
    """Driven the way an agent drives it: the MCP SDK's client over stdio against a real
    ``v4e mcp --profile driver-support`` process and a real backend with a charger."""
    async with (
        running_backend(str(tmp_path / "v4e.db")) as backend,
        charger_running(backend),
        api(backend) as client,
    ):
        params = StdioServerParameters(
            command=sys.executable,
            args=[
                "-m",
                "libv4e_apps",
                "mcp",
                "--url",
                f"http://127.0.0.1:{backend.api_port}",
                "--profile",
                SUPPORT,
            ],
        )
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            listed = [t.name for t in (await session.list_tools()).tools]
            assert listed == [t.name for t in profile_tools(SUPPORT)]

            triggered = await client.post("/demo/trigger/stuck_connector", json={})
            assert triggered.is_success, triggered.text

            cheat = await session.call_tool("clear_scenarios", {})
            assert cheat.is_error
            assert "unknown tool 'clear_scenarios'" in cheat.content[0].text
            active = (await client.get("/demo/scenarios")).json()["active"]
            assert [r["scenario"] for r in active] == ["stuck_connector"]  # not cleared

            status = await session.call_tool("get_charger", {"cp_id": "EVSE001"})
            assert not status.is_error
            assert json.loads(status.content[0].text)["online"] is True
