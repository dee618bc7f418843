"""The live dashboard (``/dashboard``), its server-sent events (``/events``) and the
Prometheus metrics (``/metrics``). Assets are served from the package: no CDN."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from importlib import resources
from typing import TYPE_CHECKING

import trio
from quart import Response
from quart_trio import QuartTrio

from ._metrics import CONTENT_TYPE, CsmsMetrics
from ._registry import iso

if TYPE_CHECKING:
    from ._csms import CentralSystem

_ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
KEEPALIVE_SECONDS = 15.0


def _asset(name: str) -> bytes:
    return (resources.files("libv4e") / "static" / name).read_bytes()


def add_dashboard_routes(app: QuartTrio, csms: CentralSystem) -> CsmsMetrics:
    """Add ``/dashboard``, ``/static/*``, ``/events`` and ``/metrics`` to ``app``."""
    metrics = CsmsMetrics(csms)

    @app.get("/dashboard")
    async def dashboard() -> Response:
        """The live dashboard (HTML)."""
        return Response(_asset("dashboard.html"), content_type="text/html; charset=utf-8")

    @app.get("/static/<name>")
    async def static_asset(name: str) -> Response:
        """Dashboard assets."""
        kind = _ASSETS.get(name)
        if kind is None:
            return Response(
                b'{"error": "not_found", "message": "no such asset"}',
                404,
                content_type="application/json",
            )
        return Response(_asset(name), content_type=kind)

    @app.get("/events")
    async def events() -> Response:
        """Server-sent events: every OCPP message as it passes (``event: message``)."""

        async def stream() -> AsyncIterator[bytes]:
            async with csms.subscribe(buffer=1000) as received:
                yield b"retry: 2000\n: connected\n\n"
                while True:
                    with trio.move_on_after(KEEPALIVE_SECONDS) as idle:
                        record = await received.receive()
                    if idle.cancelled_caught:
                        yield b": keepalive\n\n"
                        continue
                    data = json.dumps(
                        {
                            "cp_id": record.cp_id,
                            "direction": record.direction,
                            "type": {2: "call", 3: "result", 4: "error"}.get(record.message_type),
                            "action": record.action,
                            "unique_id": record.unique_id,
                            "at": iso(record.at),
                            "payload": record.payload,
                        }
                    )
                    yield f"event: message\ndata: {data}\n\n".encode()

        response = Response(stream(), content_type="text/event-stream")
        response.headers["Cache-Control"] = "no-cache"
        response.timeout = None
        return response

    @app.get("/metrics")
    async def prometheus() -> Response:
        """Prometheus metrics."""
        return Response(metrics.render(), content_type=CONTENT_TYPE)

    return metrics
