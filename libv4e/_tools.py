"""Tools for LLM agents: one definition each, served over MCP and exported as OpenAI-style
function-calling JSON. Every tool is a call to the REST API, so it works against any
running backend."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal

import httpx

Where = Literal["path", "query", "body"]


@dataclasses.dataclass(frozen=True)
class Param:
    """One tool parameter: its JSON schema, whether it is required, where it goes."""

    schema: dict[str, Any]
    required: bool = True
    where: Where = "body"


@dataclasses.dataclass(frozen=True)
class Tool:
    """A tool: the description an LLM reads, and the API call it makes."""

    name: str
    description: str
    method: str
    path: str
    params: dict[str, Param] = dataclasses.field(default_factory=dict)
    read_only: bool = False

    def input_schema(self) -> dict[str, Any]:
        """The JSON schema of the tool's arguments."""
        return {
            "type": "object",
            "properties": {name: p.schema for name, p in self.params.items()},
            "required": [name for name, p in self.params.items() if p.required],
            "additionalProperties": False,
        }

    def request(self, arguments: dict[str, Any]) -> tuple[str, str, dict[str, Any], Any]:
        """(method, path, query, body) for ``arguments``; ValueError if they do not fit."""
        unknown = set(arguments) - set(self.params)
        if unknown:
            raise ValueError(f"unknown argument(s): {', '.join(sorted(unknown))}")
        missing = [n for n, p in self.params.items() if p.required and arguments.get(n) is None]
        if missing:
            raise ValueError(f"missing argument(s): {', '.join(missing)}")
        path, query, body = self.path, {}, {}
        for name, param in self.params.items():
            value = arguments.get(name)
            if value is None:
                continue
            if param.where == "path":
                path = path.replace("{" + name + "}", httpx.URL(str(value)).raw_path.decode())
            elif param.where == "query":
                query[name] = str(value).lower() if isinstance(value, bool) else value
            else:
                body[name] = value
        return self.method, path, query, (body if self.method != "GET" else None)


CP_ID = Param({"type": "string", "description": "Charge point id, e.g. EVSE001."}, True, "path")
CONNECTOR = {"type": "integer", "minimum": 1, "description": "Connector number, usually 1."}
ID_TAG = {"type": "string", "maxLength": 20, "description": "The driver's card (id tag)."}

TOOLS: tuple[Tool, ...] = (
    Tool(
        "list_chargers",
        "List every known charger with its connection state (online/offline), the status "
        "and error code of each connector, power and energy, and active sessions. Start "
        "here to find the charger the driver is talking about.",
        "GET",
        "/status",
        read_only=True,
    ),
    Tool(
        "get_charger",
        "Get one charger's full state: connection, boot information, heartbeat timing, "
        "each connector's status, error code, power, energy, and its active sessions.",
        "GET",
        "/chargers/{cp_id}",
        {"cp_id": CP_ID},
        read_only=True,
    ),
    Tool(
        "diagnose_charger",
        "Diagnose what is wrong with a charger from what it reported over OCPP. Returns "
        "findings, each with a code, a summary you can read to the driver, the evidence, "
        "and recommended actions (tool calls to make). An empty list means it looks "
        "healthy. Pass the driver's card id if you know it. May take a few seconds.",
        "GET",
        "/chargers/{cp_id}/diagnosis",
        {
            "cp_id": CP_ID,
            "id_tag": Param(ID_TAG, False, "query"),
            "connector_id": Param(CONNECTOR, False, "query"),
        },
        read_only=True,
    ),
    Tool(
        "recent_messages",
        "The charger's recent OCPP messages, newest first (for evidence and timing).",
        "GET",
        "/chargers/{cp_id}/messages",
        {
            "cp_id": CP_ID,
            "limit": Param({"type": "integer", "minimum": 1, "maximum": 200}, False, "query"),
            "action": Param(
                {
                    "type": "string",
                    "description": "Only this OCPP action, e.g. StatusNotification.",
                },
                False,
                "query",
            ),
        },
        read_only=True,
    ),
    Tool(
        "list_transactions",
        "Charging sessions (transactions), newest first, with energy delivered and why they "
        "stopped. Filter by charger and whether still active.",
        "GET",
        "/transactions",
        {
            "cp_id": Param({"type": "string"}, False, "query"),
            "active": Param({"type": "boolean"}, False, "query"),
        },
        read_only=True,
    ),
    Tool(
        "reset_charger",
        "Restart a charger. Soft restarts its software (fixes most hangs, e.g. a session "
        "that will not start or low power); Hard restarts the whole unit (for a charger "
        "that stopped communicating). Running sessions are stopped. It reconnects within "
        "seconds.",
        "POST",
        "/commands/reset/{cp_id}",
        {"cp_id": CP_ID, "type": Param({"type": "string", "enum": ["Soft", "Hard"]})},
    ),
    Tool(
        "change_availability",
        "Make a connector (or the whole charger, connector 0 or omitted) Operative or "
        "Inoperative. If a session is running the change is Scheduled for its end.",
        "POST",
        "/commands/change_availability/{cp_id}",
        {
            "cp_id": CP_ID,
            "type": Param({"type": "string", "enum": ["Operative", "Inoperative"]}),
            "connector_id": Param({"type": "integer", "minimum": 0}, False),
        },
    ),
    Tool(
        "change_configuration",
        "Change a charger configuration key, e.g. HeartbeatInterval or "
        "MeterValueSampleInterval (values are strings).",
        "POST",
        "/commands/change_configuration/{cp_id}",
        {"cp_id": CP_ID, "key": Param({"type": "string"}), "value": Param({"type": "string"})},
    ),
    Tool(
        "remote_start",
        "Start a charging session for the driver's card on a connector (the cable must be "
        "plugged in). Accepted means the charger will try; check with get_charger that the "
        "connector goes to Charging.",
        "POST",
        "/commands/remote_start/{cp_id}",
        {"cp_id": CP_ID, "id_tag": Param(ID_TAG), "connector_id": Param(CONNECTOR, False)},
    ),
    Tool(
        "remote_stop",
        "Stop a running session by its transaction id (see get_charger or list_transactions).",
        "POST",
        "/commands/remote_stop/{cp_id}",
        {"cp_id": CP_ID, "transaction_id": Param({"type": "integer"})},
    ),
    Tool(
        "unlock_connector",
        "Release the cable lock of a connector, e.g. when the driver cannot unplug. Stops "
        "a running session on it first.",
        "POST",
        "/commands/unlock_connector/{cp_id}",
        {"cp_id": CP_ID, "connector_id": Param(CONNECTOR)},
    ),
    Tool(
        "send_local_list",
        "Add or update the driver's card in the authorization list and push it to the "
        "charger's local list (fixes a valid card being refused). Usually followed by a "
        "Soft reset.",
        "POST",
        "/commands/send_local_list/{cp_id}",
        {
            "cp_id": CP_ID,
            "id_tag": Param(ID_TAG),
            "status": Param(
                {"type": "string", "enum": ["Accepted", "Blocked", "Expired", "Invalid"]}, False
            ),
        },
    ),
    Tool(
        "list_scenarios",
        "Demo only: the fault scenarios that can be played, with which are active.",
        "GET",
        "/demo/scenarios",
        read_only=True,
    ),
    Tool(
        "trigger_scenario",
        "Demo only: start a fault scenario on a charger (default EVSE001).",
        "POST",
        "/demo/trigger/{name}",
        {
            "name": Param(
                {
                    "type": "string",
                    "enum": [
                        "session_start_failure",
                        "stuck_connector",
                        "offline_charger",
                        "auth_failure",
                        "slow_charging",
                    ],
                },
                True,
                "path",
            ),
            "cp_id": Param({"type": "string"}, False),
        },
    ),
    Tool("clear_scenarios", "Demo only: end every active fault scenario.", "POST", "/demo/clear"),
    Tool("list_tickets", "Support tickets filed so far.", "GET", "/tickets", read_only=True),
    Tool(
        "create_ticket",
        "File a support ticket for field service when remote fixes did not work (e.g. the "
        "charger stays offline after a Hard reset). Say what was tried.",
        "POST",
        "/tickets",
        {
            "cp_id": Param({"type": "string"}),
            "summary": Param({"type": "string"}),
            "scenario": Param({"type": "string"}, False),
        },
    ),
)
"""Every tool, in the order an agent would usually need them."""

TOOLS_BY_NAME = {t.name: t for t in TOOLS}


def openai_tools() -> list[dict[str, Any]]:
    """The tools as OpenAI-style function-calling definitions."""
    return [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description,
                "parameters": t.input_schema(),
            },
        }
        for t in TOOLS
    ]


async def call_tool(
    client: httpx.AsyncClient, name: str, arguments: dict[str, Any]
) -> dict[str, Any]:
    """Run tool ``name`` against the API behind ``client``.

    Returns ``{"ok": bool, "status": http status, "result": JSON answer}``; a bad tool
    name or bad arguments give ``ok: false`` with status 400 and a message.
    """
    tool = TOOLS_BY_NAME.get(name)
    if tool is None:
        return {"ok": False, "status": 400, "result": {"message": f"unknown tool {name!r}"}}
    try:
        method, path, query, body = tool.request(arguments)
    except ValueError as exc:
        return {"ok": False, "status": 400, "result": {"message": str(exc)}}
    response = await client.request(method, path, params=query or None, json=body)
    try:
        result = response.json()
    except json.JSONDecodeError:
        result = {"text": response.text}
    return {"ok": response.is_success, "status": response.status_code, "result": result}
