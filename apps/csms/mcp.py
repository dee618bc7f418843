"""An MCP server (Model Context Protocol, the maintained Python SDK) exposing the agent
tools of ``_tools``; each tool call is a REST call to the backend at ``api_url``."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import mcp_types as types
import trio
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from libv4e.transport import is_loopback

from .asgi_body import answer_json
from .guard import (
    WILDCARDS,
    ApiAccess,
    host_allowed,
    host_names,
    origin_allowed,
)
from .http import serve_http
from .tools import DEFAULT_PROFILE, DRIVER_PROFILE, Tool, call_tool, profile_tools

log = logging.getLogger("libv4e.mcp")

INSTRUCTIONS = (
    "Tools for an EV-charging support agent. Find the charger (list_chargers), ask for a "
    "diagnosis (diagnose_charger), carry out the recommended actions, then check the "
    "charger again to confirm the problem is gone. Read the diagnosis's `say` line to the "
    "driver; `agent_note` and ids are for you. When the verdict is inconclusive, make "
    "next_action (or wait retry_after_s) and diagnose again. Pass the driver's id_tag, "
    "connector_id and intent (charge or leave). Before an action with needs_consent: true "
    "(its impact stops someone else's session), ask; skip fallback actions unless the ones "
    "before did not cure. Each action has a `say` line for while you take it; pass lang "
    "(en, de, fr, es) for the driver's language. recent_events (with after_id) tells you "
    "when a session started or a connector faulted, so you can speak unasked."
)


Caller = Callable[[httpx.AsyncClient, str, dict[str, Any]], Awaitable[dict[str, Any]]]


def tool_profile(profile: str) -> tuple[tuple[Tool, ...], Caller]:
    """The tools of ``profile`` and the function that runs one (ValueError if unknown):
    :data:`~libv4e_apps.csms.tools.PROFILES`, or ``driver`` (the driver simulator's tools)."""
    tools = profile_tools(profile)
    if profile == DRIVER_PROFILE:
        from .driver_tools import call_driver_tool

        return tools, call_driver_tool
    return tools, functools.partial(call_tool, profile=profile)


def result_text(outcome: dict[str, Any]) -> types.TextContent:
    """A tool's answer, sent once: compact JSON text (no duplicate structured copy); an
    error carries its HTTP status."""
    result = outcome["result"]
    if not outcome["ok"]:
        result = {"status": outcome["status"], **result} if isinstance(result, dict) else result
    return types.TextContent(type="text", text=json.dumps(result, separators=(",", ":")))


def build_server(
    api_url: str, *, token: str | None = None, profile: str = DEFAULT_PROFILE
) -> tuple[Server[Any], httpx.AsyncClient]:
    """The MCP server offering the tools of ``profile`` (ValueError if unknown) and the
    HTTP client it uses (close it when done). Profile ``driver`` serves only a driver
    simulator's own actions on a sandbox charger, never the agent's tools."""
    tools, caller = tool_profile(profile)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    client = httpx.AsyncClient(base_url=api_url, timeout=60, headers=headers)

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=t.name,
                    description=t.description,
                    input_schema=t.input_schema(),
                    annotations=types.ToolAnnotations(
                        read_only_hint=t.read_only,
                        destructive_hint=not t.read_only,
                        open_world_hint=False,
                    ),
                )
                for t in tools
            ]
        )

    async def on_call(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        try:
            outcome = await caller(client, params.name, dict(params.arguments or {}))
        except httpx.HTTPError as exc:
            outcome = {
                "ok": False,
                "status": 503,
                "result": {"message": f"the backend at {api_url} did not answer: {exc}"},
            }
        return types.CallToolResult(content=[result_text(outcome)], is_error=not outcome["ok"])

    server: Server[Any] = Server(
        "voice4evs",
        version="0.1.0",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=on_call,
    )
    return server, client


async def serve_mcp_stdio(
    api_url: str, *, token: str | None = None, profile: str = DEFAULT_PROFILE
) -> None:
    """Serve the tools of ``profile`` over stdio until the client goes away."""
    server, client = build_server(api_url, token=token, profile=profile)
    async with client, stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


async def serve_mcp_http(
    api_url: str,
    host: str,
    port: int,
    *,
    token: str | None = None,
    profile: str = DEFAULT_PROFILE,
    mcp_token: str | None = None,
    allowed_hosts: tuple[str, ...] = (),
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the tools over MCP's streamable HTTP transport at ``http://host:port/mcp``
    (Hypercorn on Trio) until cancelled; reports the bound port.

    The endpoint holds the API token (``token``), so it is guarded like the API itself
    (:func:`guarded`): the ``Host`` must be a name of this server (loopback names, ``host``,
    ``allowed_hosts``: DNS rebinding), a browser ``Origin`` must be the server's own, and
    with ``mcp_token`` every request needs ``Authorization: Bearer <mcp_token>`` —
    required (ValueError) when ``host`` is not loopback or ``allowed_hosts`` are given.
    """
    if mcp_token is None and (not is_loopback(host) or allowed_hosts):
        raise ValueError(
            "MCP over HTTP beyond loopback (or behind --allowed-hosts) needs an MCP token"
        )
    access = ApiAccess(
        mcp_token, True, host_names(host, allowed_hosts), host.strip("[]") in WILDCARDS
    )
    server, client = build_server(api_url, token=token, profile=profile)
    app: Any = guarded(server.streamable_http_app(host=host), access)
    async with client:
        await serve_http(app, host, port, task_status=task_status)


def guarded(app: Any, access: ApiAccess) -> Any:
    """``app`` (ASGI) behind the API's checks: Host, Origin, then the bearer token."""

    async def guard(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
            }
            host = headers.get("host")
            client = scope.get("client")
            problem = None
            if not host_allowed(host, access.hosts, any_ip=access.any_ip):
                problem = (400, "bad_host", "this server does not answer to that Host name")
            elif not origin_allowed(headers.get("origin"), host):
                problem = (403, "cross_origin", "cross-origin requests are refused")
            elif not access.allows(
                scope["method"], client[0] if client else None, headers.get("authorization")
            ):
                problem = (401, "unauthorized", "this endpoint needs Authorization: Bearer <token>")
            if problem is not None:
                status, error, message = problem
                log.warning("MCP over HTTP: refused %s (%s)", error, client)
                await answer_json(send, status, error, message)
                return
        await app(scope, receive, send)

    return guard
