"""The agent's door to an episode's REST API: the routes of the ``driver-support`` tools
and nothing else.

An agent service (``--agent http``) calls the sandbox itself. Behind this gate it cannot
reach what would let it cheat — ``/demo`` (clear the fault), ``/driver`` (act as the
driver), ``/sandbox`` — which answer 403 ``not_offered``; every call it makes is recorded
as a tool call of the episode (the tool whose route it is), like the runner's own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx

from ..csms.api import BODY_TIMEOUT, MAX_BODY_BYTES
from ..csms.asgi_body import answer_json, whole_body
from ..csms.tools import profile_tools

__all__ = ["agent_gate"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Asgi = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]
_PARAM = re.compile(r"\\\{[a-z_]+\\\}")


def _routes(profile: str) -> list[tuple[str, str, re.Pattern[str]]]:
    routes = []
    for tool in profile_tools(profile):
        pattern = _PARAM.sub("[^/]+", re.escape(tool.path))
        routes.append((tool.name, tool.method, re.compile(pattern)))
    return routes


def agent_gate(
    client: httpx.AsyncClient, log: list[dict[str, Any]], profile: str = "driver-support"
) -> Asgi:
    """An ASGI app forwarding the routes of ``profile``'s tools to the API behind
    ``client`` and refusing every other with 403; each forwarded call is appended to
    ``log`` as ``{"tool", "arguments", "status", "via": "rest"}``."""
    routes = _routes(profile)

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        body = b""
        more = True
        while more and len(body) <= MAX_BODY_BYTES:  # the API's own bound
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        tool = next((n for n, m, p in routes if m == method and p.fullmatch(path)), None)
        if len(body) > MAX_BODY_BYTES:
            await answer_json(
                send, 413, "body_too_large", f"a request body has at most {MAX_BODY_BYTES} bytes"
            )
            return
        if tool is None:
            status, content = (
                403,
                json.dumps(
                    {
                        "error": "not_offered",
                        "message": f"{method} {path} is not an agent tool's route",
                    }
                ).encode(),
            )
            ctype = "application/json"
        else:
            query = scope.get("query_string", b"").decode()
            response = await client.request(
                method,
                path + (f"?{query}" if query else ""),
                content=body or None,
                headers={"content-type": "application/json"} if body else None,
            )
            status, content = response.status_code, response.content
            ctype = response.headers.get("content-type", "application/json")
            try:
                arguments = dict(json.loads(body)) if body else {}
            except (ValueError, TypeError):
                arguments = {}
            log.append(
                {
                    "tool": tool,
                    "arguments": {"path": path, **arguments},
                    "status": status,
                    "via": "rest",
                }
            )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", ctype.encode()),
                    (b"content-length", str(len(content)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})

    # the API's own body handling: bounded, drained past the bound so the 413 arrives
    return whole_body(app, max_bytes=MAX_BODY_BYTES, timeout=BODY_TIMEOUT)
