"""Tools for LLM agents: one definition each, served over MCP and exported as OpenAI
function-calling JSON. Every tool is a call to the REST API, so it works against any
running backend.

The arguments of a tool come from the same pydantic request models the REST API
validates with (:mod:`libv4e_apps.csms.models`, :mod:`libv4e_apps.csms.demo_api`): a route's body or
query model is the tool's schema, so every parameter the API takes is a tool parameter.
Every command in ``COMMANDS`` becomes a tool without further code (named as in
``TOOL_NAMES``, described by ``DESCRIPTIONS`` or the model's docstring). The machinery
(:class:`Tool`, the strict schema) is :mod:`libv4e_apps.csms.toolkit`. Exports:

- :func:`mcp_tools` / ``Tool.input_schema()``: JSON schema with optional properties left
  out of ``required``;
- :func:`openai_tools` (``v4e tools --format openai``): Chat Completions shape in strict
  mode (``strict: true``, every property required, optional ones nullable,
  ``additionalProperties: false``, only keywords strict mode accepts; free-form objects
  are passed as JSON strings);
- :func:`openai_tools(flat=True)` (``--format openai-flat``): the flat shape of the
  Responses API (``{"type": "function", "name", "description", "parameters",
  "strict"}``);
- :func:`realtime_tools` (``--format realtime``): the Realtime API's ``session.tools``
  (``{"type": "function", "name", "description", "parameters"}``: no ``strict``).

Each export takes a ``profile`` (:data:`PROFILES`): ``full`` (every tool, the default)
or a smaller set, e.g. ``driver-support``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from libv4e.csms import ProfileStatus, ReservationStatus

from .demo_api import DiagnosisQuery, TriggerBody
from .models import COMMANDS, SendLocalListBody, SpokenNamesBody, TicketBody
from .openapi import CP_ID_SCHEMA
from .responses import RecentEventsQuery
from .toolkit import Param as Param
from .toolkit import Tool as Tool
from .toolkit import model_params as model_params
from .toolkit import strict_parameters as strict_parameters


class MessagesQuery(BaseModel):
    """Query of ``GET /chargers/{cp_id}/messages``."""

    model_config = ConfigDict(extra="forbid")
    limit: int | None = Field(None, ge=1, le=200, description="How many, newest first.")
    action: str | None = Field(
        None, max_length=50, description="Only this OCPP action, e.g. StatusNotification."
    )


class TransactionsQuery(BaseModel):
    """Query of ``GET /transactions``."""

    model_config = ConfigDict(extra="forbid")
    cp_id: str | None = Field(None, max_length=48, description="Only this charger.")
    active: bool | None = Field(None, description="Only running (true) or ended (false).")
    limit: int | None = Field(None, ge=1, le=200, description="How many, newest first.")


CP_ID = Param(
    {
        "type": "string",
        "description": "Charge point id, e.g. EVSE001.",
        "pattern": CP_ID_SCHEMA["pattern"],
        "maxLength": 48,
    },
    True,
    "path",
)

TOOL_NAMES = {"reset": "reset_charger"}
"""Tool name of a command route where it is not the route's name."""

DESCRIPTIONS = {
    "reset": "Restart a charger. Soft restarts its software (fixes most hangs, e.g. a session "
    "that will not start or low power); Hard restarts the whole unit (for a charger that "
    "stopped communicating). Running sessions are stopped. It reconnects within seconds.",
    "change_availability": "Make a connector (or the whole charger, connector 0 or omitted) "
    "Operative or Inoperative. If a session is running the change is Scheduled for its end.",
    "change_configuration": "Change a charger configuration key, e.g. HeartbeatInterval or "
    "MeterValueSampleInterval (values are strings).",
    "remote_start": "Start a charging session for the driver's card on a connector (the cable "
    "must be plugged in). Accepted means the charger will try; diagnose_charger again (or "
    "get_charger) to see the connector go to Charging.",
    "remote_stop": "Stop a running session by its transaction id (see get_charger or "
    "list_transactions).",
    "unlock_connector": "Release the cable lock of a connector, e.g. when the driver cannot "
    "unplug. Stops a running session on it first.",
    "trigger_message": "Ask the charger to send a message now, e.g. MeterValues for fresh "
    "power readings, or Heartbeat to check it is alive.",
    "send_local_list": "Update the charger's local authorization list. Simplest: give id_tag "
    "(and status) to add or update the driver's card in the CSMS's list and push it (fixes a "
    "valid card being refused; usually followed by a Soft reset). Or give update_type Full "
    "(replace the whole list; without local_authorization_list the CSMS's whole list is "
    "sent) or Differential (entries to add/update; an entry without id_tag_info removes the "
    "card), with an optional list_version. The answer is Accepted, Failed, NotSupported or "
    "VersionMismatch; after VersionMismatch the reply has 'offer', a Full update you can "
    "send as it is.",
    "reserve_now": "Reserve a connector for a driver's card until expiry_date (ISO 8601, "
    "UTC). The reservation id is allocated when omitted. The answer says Accepted (the "
    "connector shows Reserved), Occupied, Faulted, Unavailable or Rejected; the reservation "
    "is recorded (see list_reservations).",
    "cancel_reservation": "Cancel a reservation by its id (see list_reservations).",
    "set_charging_profile": "Limit charging power or current with an OCPP charging profile "
    "on a connector (0: the whole charger).",
    "clear_charging_profile": "Remove charging profiles: by id, or all matching connector_id "
    "/ purpose / stack_level (none given: all). The reply lists the profiles cleared.",
    "get_composite_schedule": "Ask the charger which limit it will apply on a connector for "
    "the next duration seconds; the reply shows it next to what the CSMS believes "
    "(csms_view).",
}
"""Descriptions an LLM reads, where the model's docstring is not enough."""

RESERVATION_STATUSES = [str(s) for s in ReservationStatus]
PROFILE_STATUSES = ["all", *(str(s) for s in ProfileStatus)]

_OPERATOR_READS: tuple[Tool, ...] = (
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
        "list_reservations",
        "Reservations, newest first, with their status: Reserved, Used (by which "
        "transaction), Cancelled, Expired, or the charger's refusal (Occupied, Faulted, "
        "Unavailable, Rejected). Filter by charger and status.",
        "GET",
        "/reservations",
        {
            "cp_id": Param({"type": "string", "maxLength": 48}, False, "query"),
            "status": Param({"type": "string", "enum": RESERVATION_STATUSES}, False, "query"),
        },
        read_only=True,
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
)

_FIRST: tuple[Tool, ...] = (
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
        "Diagnose a charger from what it reported over OCPP. Returns verdict (healthy, "
        "fault_found or inconclusive), say (one line to read to the driver), agent_note, "
        "findings with actions (tool calls to make, in order) and next_action (the one call "
        "that would reveal more, or wait retry_after_s and ask again). Pass the driver's "
        "card and connector if known. Read-only unless probe is true; answers at once.",
        "POST",
        "/chargers/{cp_id}/diagnosis",
        {"cp_id": CP_ID},
        read_only=True,
        query=DiagnosisQuery,
    ),
    Tool(
        "recent_messages",
        "The charger's recent OCPP messages, newest first (for evidence and timing).",
        "GET",
        "/chargers/{cp_id}/messages",
        {"cp_id": CP_ID},
        read_only=True,
        query=MessagesQuery,
    ),
    Tool(
        "recent_events",
        "What happened on chargers lately, as events: session_started, session_stopped "
        "(reason, energy), connector_faulted, connector_recovered, charger_offline, "
        "charger_back, scenario_phase_changed. Pass after_id (the last_id of the previous "
        "answer) to get only newer ones: tell the driver when their session has started.",
        "GET",
        "/events/recent",
        read_only=True,
        query=RecentEventsQuery,
    ),
    Tool(
        "list_transactions",
        "Charging sessions (transactions), newest first, with energy delivered and why they "
        "stopped. Filter by charger and whether still active.",
        "GET",
        "/transactions",
        read_only=True,
        query=TransactionsQuery,
    ),
)


def _command_tools() -> tuple[Tool, ...]:
    """One tool per ``POST /commands/{name}/{cp_id}`` route, from its body model."""
    tools = []
    for route, model in COMMANDS.items():
        doc = (model.__doc__ or route).strip().split("\n\n")[0].replace("\n", " ")
        tools.append(
            Tool(
                TOOL_NAMES.get(route, route),
                DESCRIPTIONS.get(route, doc),
                "POST",
                f"/commands/{route}/{{cp_id}}",
                {"cp_id": CP_ID},
                body=model,
            )
        )
    return tuple(tools)


_LAST: tuple[Tool, ...] = (
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
        {"cp_id": CP_ID},
        body=SendLocalListBody,
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
        "Demo only: start a fault scenario on a charger (default EVSE001), optionally on "
        "another connector, for another card, or (offline_charger) in dead mode.",
        "POST",
        "/demo/trigger/{name}",
        {
            "name": Param(
                {
                    "type": "string",
                    "description": "The scenario (see list_scenarios), e.g. "
                    "session_start_failure, stuck_connector, offline_charger, auth_failure, "
                    "slow_charging.",
                },
                True,
                "path",
            )
        },
        body=TriggerBody,
    ),
    Tool(
        "clear_scenarios",
        "Demo only: end every fault and put the sandbox back to a known-good state.",
        "POST",
        "/demo/clear",
    ),
    Tool(
        "set_spoken_names",
        "Site setup: what people on site call a charger and its connectors (e.g. charger "
        "'bay 3', connector 1 'bay 3, left plug'). Every diagnosis say line then uses "
        "these names instead of 'the charger' / 'this plug'. Replaces the previous names.",
        "PUT",
        "/chargers/{cp_id}/spoken_names",
        {"cp_id": CP_ID},
        body=SpokenNamesBody,
    ),
    Tool("list_tickets", "Support tickets filed so far.", "GET", "/tickets", read_only=True),
    Tool(
        "create_ticket",
        "File a support ticket for field service when remote fixes did not work (e.g. the "
        "charger stays offline after a Hard reset). Say what was tried.",
        "POST",
        "/tickets",
        body=TicketBody,
    ),
)

TOOLS: tuple[Tool, ...] = (*_FIRST, *_command_tools(), *_OPERATOR_READS, *_LAST)
"""Every tool, in the order an agent would usually need them."""

TOOLS_BY_NAME = {t.name: t for t in TOOLS}

PROFILES: dict[str, tuple[str, ...]] = {
    "full": tuple(t.name for t in TOOLS),
    # What a driver-support agent needs: find and diagnose the charger, read its recent
    # messages, and the remedies the diagnosis prescribes. No demo tools (an agent under
    # test that can call clear_scenarios "solves" every fault), no firmware, reservation,
    # charging-profile, certificate or clearing tools.
    "driver-support": (
        "list_chargers",
        "get_charger",
        "diagnose_charger",
        "recent_messages",
        "recent_events",
        "remote_start",
        "remote_stop",
        "unlock_connector",
        "reset_charger",
        "change_availability",
        "trigger_message",
        "send_local_list",
        "create_ticket",
    ),
}
"""Tool profiles: the names of the tools each one offers (``v4e mcp --profile``,
``v4e tools --profile``), in :data:`TOOLS` order. ``full`` is every tool (the default)."""

DEFAULT_PROFILE = "full"
DRIVER_PROFILE = "driver"
"""Not an agent profile: a driver simulator's tools (:mod:`libv4e_apps.csms.driver_tools`),
served by ``v4e mcp --profile driver`` and exported by ``v4e tools --profile driver``."""


def profile_tools(profile: str = DEFAULT_PROFILE) -> tuple[Tool, ...]:
    """The tools of ``profile``, in :data:`TOOLS` order; ValueError naming the profiles
    for an unknown one."""
    if profile == DRIVER_PROFILE:
        from .driver_tools import DRIVER_TOOLS

        return DRIVER_TOOLS
    names = PROFILES.get(profile)
    if names is None:
        raise ValueError(f"unknown tool profile {profile!r}; choose one of: {', '.join(PROFILES)}")
    wanted = set(names)
    return tuple(t for t in TOOLS if t.name in wanted)


def mcp_tools(profile: str = DEFAULT_PROFILE) -> list[dict[str, Any]]:
    """The tools of ``profile`` as MCP ``tools/list`` entries."""
    return [
        {
            "name": t.name,
            "description": t.description,
            "inputSchema": t.input_schema(),
            "annotations": {"readOnlyHint": t.read_only},
        }
        for t in profile_tools(profile)
    ]


def openai_tools(*, flat: bool = False, profile: str = DEFAULT_PROFILE) -> list[dict[str, Any]]:
    """The tools of ``profile`` as OpenAI function definitions in strict mode: nested
    (Chat Completions) or ``flat`` (Responses API)."""
    out = []
    for t in profile_tools(profile):
        function = {
            "name": t.name,
            "description": t.description,
            "parameters": strict_parameters(t),
            "strict": True,
        }
        out.append(
            {"type": "function", **function} if flat else {"type": "function", "function": function}
        )
    return out


def realtime_tools(profile: str = DEFAULT_PROFILE) -> list[dict[str, Any]]:
    """The tools of ``profile`` for the OpenAI Realtime API's ``session.update``
    (``session.tools``): ``{"type": "function", "name", "description", "parameters"}``,
    the only keys its function tool takes (no ``strict``: the Realtime API has no strict
    mode), with the plain JSON schema (optional arguments left out of ``required``)."""
    return [
        {
            "type": "function",
            "name": t.name,
            "description": t.description,
            "parameters": t.input_schema(),
        }
        for t in profile_tools(profile)
    ]


async def call_tool(
    client: httpx.AsyncClient,
    name: str,
    arguments: dict[str, Any],
    *,
    profile: str = DEFAULT_PROFILE,
) -> dict[str, Any]:
    """Run tool ``name`` against the API behind ``client``.

    Returns ``{"ok": bool, "status": http status, "result": JSON answer}``; a bad tool
    name (or one not in ``profile``) or bad arguments give ``ok: false`` with status 400
    and a message.
    """
    tool = TOOLS_BY_NAME.get(name)
    if tool is None or name not in PROFILES.get(profile, ()):
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
