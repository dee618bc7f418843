"""The REST API: Quart-Trio over a :class:`CentralSystem`; JSON in, JSON out.

``create_app(csms)`` builds the app from one Blueprint per resource (:mod:`libv4e_apps.csms.routes`,
the demo and diagnosis routes of :mod:`libv4e_apps.csms.demo_api`, the dashboard); serve it with
Hypercorn on Trio in the same nursery as the OCPP server (see :func:`serve_api`). Request
bodies are validated by quart-schema with pydantic models (:mod:`libv4e_apps.csms.models`), which
also feed the OpenAPI document at ``/openapi.json``. Every error is a JSON object
``{"error": code, "message": text, ...}``, libv4e's errors through the one translation
:func:`libv4e_apps.csms.errors.translate_error`; every request passes the guard of
:mod:`libv4e_apps.csms.guard` first.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import trio
from quart import Quart, current_app
from quart_schema import QuartSchema
from quart_trio import QuartTrio

from libv4e.csms import CentralSystem
from libv4e.scenarios import ScenarioManager

from . import demo_api
from .asgi_body import whole_body
from .dashboard import add_dashboard_routes
from .errors import ApiError as ApiError
from .errors import add_error_handlers
from .errors import translate_error as translate_error
from .events import EventHub
from .events import blueprint as events_routes
from .guard import ApiAccess as ApiAccess
from .guard import add_guard
from .http import serve_http
from .openapi import TrueOpenAPIProvider
from .routes import chargers, commands, id_tags, security, transactions
from .routes import tickets as ticket_routes
from .tickets import TicketDesk

log = logging.getLogger("libv4e.api")

API_NAME = "Voice4EVs CSMS API"
API_VERSION = "0.1.0"
MAX_BODY_BYTES = 256 * 1024
BODY_TIMEOUT = 30.0
"""Seconds a request body may take to arrive (then 408)."""


def create_app(
    csms: CentralSystem,
    *,
    scenarios: ScenarioManager | None = None,
    access: ApiAccess | None = None,
    extra: Callable[[QuartTrio], None] | None = None,
    events: EventHub | None = None,
    tickets: TicketDesk | None = None,
) -> QuartTrio:
    """The REST API of ``csms`` as a Quart-Trio app, with the demo and diagnosis routes of
    ``scenarios`` (the five default scenarios if None). ``extra`` may add routes.
    ``events``: the event hub (a new one if None; its ``run`` must be started for the
    time-driven events and the webhooks: ``app.extensions["v4e_events"]``).
    ``tickets``: where the support tickets are kept (a desk on ``csms.store`` if None)."""
    scenarios = scenarios or ScenarioManager(csms)
    events = events or EventHub(csms, scenarios)
    app = QuartTrio(__name__, static_folder=None)  # assets: the dashboard's own route
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["JSON_SORT_KEYS"] = False
    QuartSchema(
        app,
        info={"title": API_NAME, "version": API_VERSION},
        openapi_provider_class=TrueOpenAPIProvider,
    )
    add_guard(app, access or ApiAccess())
    add_error_handlers(app)

    @app.get("/")
    async def overview() -> Any:
        """API overview: name, version, connected chargers, commands and demo routes."""
        return {
            "name": API_NAME,
            "version": API_VERSION,
            "connected_charge_points": csms.all_connected_ids,
            **route_list(current_app),
        }

    app.register_blueprint(chargers.blueprint(csms))
    app.register_blueprint(transactions.blueprint(csms))
    app.register_blueprint(id_tags.blueprint(csms))
    app.register_blueprint(commands.blueprint(csms))
    app.register_blueprint(security.blueprint(csms))
    app.register_blueprint(
        ticket_routes.blueprint(csms, tickets or TicketDesk(csms.store), scenarios)
    )
    app.register_blueprint(demo_api.blueprint(scenarios))
    app.register_blueprint(events_routes(events))
    app.extensions["v4e_events"] = events
    app.extensions["v4e_metrics"] = add_dashboard_routes(app, csms, scenarios, events=events)
    if extra is not None:
        extra(app)
    return app


_VARIABLE = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_NOT_LISTED = frozenset({"overview", "static_asset", "commands.unknown_command"})
"""Endpoints the overview leaves out: itself, the dashboard's assets, and the 404 answer
for unknown command names."""


def route_list(app: Quart) -> dict[str, list[str]]:
    """The app's routes as ``METHOD /path/{variable}``, from its URL map: the commands
    (``POST /commands/...``), the demo routes (``/demo/...``) and all others."""
    listed: dict[str, list[str]] = {"commands": [], "routes": [], "demo_routes": []}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in _NOT_LISTED:
            continue
        path = _VARIABLE.sub(r"{\1}", rule.rule)
        group = "routes"
        if path.startswith("/commands/"):
            group = "commands"
        elif path.startswith("/demo/"):
            group = "demo_routes"
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        listed[group].extend(f"{method} {path}" for method in methods)
    return listed


async def serve_api(
    app: QuartTrio,
    host: str,
    port: int,
    *,
    fd: int | None = None,
    idle_timeout: float = 20.0,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` with Hypercorn on Trio until cancelled (on the listening socket
    ``fd`` if given: several worker processes share one); reports the bound port.
    ``idle_timeout``: seconds a connection may go without a complete request (between
    requests, and while a request head trickles in: Hypercorn's keep-alive timer runs
    until the head is complete)."""
    served = whole_body(
        app,  # type: ignore[arg-type]
        max_bytes=MAX_BODY_BYTES,
        timeout=BODY_TIMEOUT,
    )
    await serve_http(
        served,
        host,
        port,
        fd=fd,
        keep_alive_timeout=idle_timeout,
        graceful_timeout=2,
        task_status=task_status,
    )
