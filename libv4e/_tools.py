"""Tools for LLM agents: one definition each, served over MCP and exported as OpenAI-style
function-calling JSON. Every tool is a call to the REST API, so it works against any
running backend."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal

import httpx

from ._profiles import ProfileStatus
from ._reservations import ReservationStatus

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
AUTH_STATUSES = ["Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"]
RESERVATION_STATUSES = [str(s) for s in ReservationStatus]
PROFILE_STATUSES = ["all", *(str(s) for s in ProfileStatus)]

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
        "Update the charger's local authorization list. Simplest: give id_tag (and status) "
        "to add or update the driver's card in the CSMS's list and push it (fixes a valid "
        "card being refused; usually followed by a Soft reset). Or give update_type Full "
        "(replace the whole list; without local_authorization_list the CSMS's whole list "
        "is sent) or Differential (entries to add/update; an entry without id_tag_info "
        "removes the card), with an optional list_version. The answer is Accepted, Failed, "
        "NotSupported or VersionMismatch; after VersionMismatch the reply has 'offer', a "
        "Full update you can send as it is.",
        "POST",
        "/commands/send_local_list/{cp_id}",
        {
            "cp_id": CP_ID,
            "id_tag": Param(ID_TAG, False),
            "status": Param(
                {"type": "string", "enum": ["Accepted", "Blocked", "Expired", "Invalid"]}, False
            ),
            "update_type": Param({"type": "string", "enum": ["Full", "Differential"]}, False),
            "list_version": Param({"type": "integer", "minimum": 0}, False),
            "local_authorization_list": Param(
                {
                    "type": "array",
                    "description": "Entries: {id_tag, id_tag_info: {status, expiry_date?, "
                    "parent_id_tag?}}; id_tag_info omitted removes the card (Differential).",
                    "items": {
                        "type": "object",
                        "properties": {
                            "id_tag": ID_TAG,
                            "id_tag_info": {
                                "type": "object",
                                "properties": {
                                    "status": {"type": "string", "enum": AUTH_STATUSES},
                                    "expiry_date": {"type": "string", "format": "date-time"},
                                    "parent_id_tag": ID_TAG,
                                },
                                "required": ["status"],
                            },
                        },
                        "required": ["id_tag"],
                    },
                },
                False,
            ),
            "update_csms_list": Param(
                {"type": "boolean", "description": "Also apply to the CSMS's list (default)."},
                False,
            ),
            "on_version_mismatch": Param({"type": "string", "enum": ["offer", "send_full"]}, False),
        },
    ),
    Tool(
        "get_local_list",
        "What the CSMS sent to a charger's local authorization list: the version the "
        "charger accepted, the cards it is believed to hold, the version it last reported, "
        "and the last updates with their answers.",
        "GET",
        "/chargers/{cp_id}/local_list",
        {"cp_id": CP_ID},
        read_only=True,
    ),
    Tool(
        "get_firmware_status",
        "A charger's firmware and diagnostics: the last firmware / diagnostics status it "
        "reported, and the last UpdateFirmware / GetDiagnostics sent with their progress "
        "(e.g. Downloading → Installed, Uploading → Uploaded).",
        "GET",
        "/chargers/{cp_id}/firmware",
        {"cp_id": CP_ID},
        read_only=True,
    ),
    Tool(
        "reserve_now",
        "Reserve a connector for a driver's card until expiry_date (ISO 8601, UTC). The "
        "reservation id is allocated when omitted. The answer says Accepted (the connector "
        "shows Reserved), Occupied, Faulted, Unavailable or Rejected; the reservation is "
        "recorded (see list_reservations).",
        "POST",
        "/commands/reserve_now/{cp_id}",
        {
            "cp_id": CP_ID,
            "connector_id": Param({"type": "integer", "minimum": 0}),
            "expiry_date": Param({"type": "string", "format": "date-time"}),
            "id_tag": Param(ID_TAG),
            "reservation_id": Param({"type": "integer", "minimum": 0}, False),
            "parent_id_tag": Param(ID_TAG, False),
        },
    ),
    Tool(
        "cancel_reservation",
        "Cancel a reservation by its id (see list_reservations).",
        "POST",
        "/commands/cancel_reservation/{cp_id}",
        {"cp_id": CP_ID, "reservation_id": Param({"type": "integer"})},
    ),
    Tool(
        "list_reservations",
        "Reservations, newest first, with their status: Reserved, Used (by which "
        "transaction), Cancelled, Expired, or the charger's refusal (Occupied, Faulted, "
        "Unavailable, Rejected). Filter by charger and status.",
        "GET",
        "/reservations",
        {
            "cp_id": Param({"type": "string"}, False, "query"),
            "status": Param({"type": "string", "enum": RESERVATION_STATUSES}, False, "query"),
        },
        read_only=True,
    ),
    Tool(
        "set_charging_profile",
        "Limit charging power or current with an OCPP charging profile on a connector (0: "
        "the whole charger). cs_charging_profiles is the OCPP ChargingProfile in camelCase, "
        "e.g. {chargingProfileId: 1, stackLevel: 0, chargingProfilePurpose: "
        "TxDefaultProfile, chargingProfileKind: Absolute, chargingSchedule: "
        "{chargingRateUnit: W, chargingSchedulePeriod: [{startPeriod: 0, limit: 7000}]}}.",
        "POST",
        "/commands/set_charging_profile/{cp_id}",
        {
            "cp_id": CP_ID,
            "connector_id": Param({"type": "integer", "minimum": 0}),
            "cs_charging_profiles": Param({"type": "object"}),
        },
    ),
    Tool(
        "clear_charging_profile",
        "Remove charging profiles: by id, or all matching connector_id / purpose / "
        "stack_level (none given: all). The reply lists the profiles cleared.",
        "POST",
        "/commands/clear_charging_profile/{cp_id}",
        {
            "cp_id": CP_ID,
            "id": Param({"type": "integer"}, False),
            "connector_id": Param({"type": "integer", "minimum": 0}, False),
            "charging_profile_purpose": Param(
                {
                    "type": "string",
                    "enum": ["ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"],
                },
                False,
            ),
            "stack_level": Param({"type": "integer", "minimum": 0}, False),
        },
    ),
    Tool(
        "get_charging_profiles",
        "The charging profiles the CSMS set on a charger (by default those it believes "
        "installed) and the limit that applies to each connector now. Answers 'what limit "
        "did we set?' without asking the charger.",
        "GET",
        "/chargers/{cp_id}/charging_profiles",
        {
            "cp_id": CP_ID,
            "status": Param({"type": "string", "enum": PROFILE_STATUSES}, False, "query"),
        },
        read_only=True,
    ),
    Tool(
        "get_composite_schedule",
        "Ask the charger which limit it will apply on a connector for the next duration "
        "seconds; the reply shows it next to what the CSMS believes (csms_view).",
        "POST",
        "/commands/get_composite_schedule/{cp_id}",
        {
            "cp_id": CP_ID,
            "connector_id": Param({"type": "integer", "minimum": 0}),
            "duration": Param({"type": "integer", "minimum": 1}),
            "charging_rate_unit": Param({"type": "string", "enum": ["A", "W"]}, False),
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
