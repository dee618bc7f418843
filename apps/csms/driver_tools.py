"""The driver's tools, for driver simulators (the other half of dual control): plug in,
unplug, present a card, press stop, read the screen, look at the car's app. Each is a
call to the sandbox's ``/driver/{cp_id}/…`` routes (:mod:`libv4e_apps.csms.driver_api`).

They are a tool set of their own (the ``driver`` profile): an agent under test is never
offered them, and the driver is never offered the agent's tools."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from .driver_api import CardBody, ConnectorBody
from .openapi import CP_ID_SCHEMA
from .toolkit import Param, Tool

CP_ID = Param(
    {
        "type": "string",
        "description": "The charger you are standing at, e.g. EVSE001.",
        "pattern": CP_ID_SCHEMA["pattern"],
        "maxLength": 48,
    },
    True,
    "path",
)

DRIVER_TOOLS: tuple[Tool, ...] = (
    Tool(
        "driver_read_screen",
        "Read the charger's screen and LED at your connector (blank when it is off).",
        "GET",
        "/driver/{cp_id}/screen",
        {"cp_id": CP_ID},
        read_only=True,
        query=ConnectorBody,
    ),
    Tool(
        "driver_car_app",
        "Look at your car's app: plugged in, charging, battery %, kW, kWh this session.",
        "GET",
        "/driver/{cp_id}/car",
        {"cp_id": CP_ID},
        read_only=True,
        query=ConnectorBody,
    ),
    Tool(
        "driver_plug_in",
        "Plug your car into the connector.",
        "POST",
        "/driver/{cp_id}/plug_in",
        {"cp_id": CP_ID},
        body=ConnectorBody,
    ),
    Tool(
        "driver_unplug",
        "Take the cable out (refused while it is locked: a session running, or a stuck lock).",
        "POST",
        "/driver/{cp_id}/unplug",
        {"cp_id": CP_ID},
        body=ConnectorBody,
    ),
    Tool(
        "driver_present_card",
        "Tap your charging card on the connector's reader (starts charging, or stops your "
        "own session if it is running).",
        "POST",
        "/driver/{cp_id}/present_card",
        {"cp_id": CP_ID},
        body=CardBody,
    ),
    Tool(
        "driver_press_stop",
        "Press the charger's stop button for your connector.",
        "POST",
        "/driver/{cp_id}/press_stop",
        {"cp_id": CP_ID},
        body=ConnectorBody,
    ),
)
"""The driver's tool set (profile ``driver``)."""

DRIVER_TOOLS_BY_NAME = {t.name: t for t in DRIVER_TOOLS}


async def call_driver_tool(
    client: httpx.AsyncClient, name: str, arguments: dict[str, Any]
) -> dict[str, Any]:
    """Run driver tool ``name`` against the sandbox API behind ``client``: ``{"ok",
    "status", "result"}`` as :func:`libv4e_apps.csms.tools.call_tool` (an agent tool name is
    unknown here: 400)."""
    return await call_tool_in(DRIVER_TOOLS_BY_NAME, client, name, arguments)


async def call_tool_in(
    tools: Mapping[str, Tool], client: httpx.AsyncClient, name: str, arguments: dict[str, Any]
) -> dict[str, Any]:
    """Run tool ``name`` of the set ``tools`` (a name outside the set: 400)."""
    tool = tools.get(name)
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
