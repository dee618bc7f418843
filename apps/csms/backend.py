"""The whole backend in one nursery: store, CSMS (OCPP server), REST API, and optionally
simulated chargers. This is what ``v4e up`` and ``v4e csms`` run."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import ssl
from collections.abc import Callable, Iterable
from typing import Any

import trio

from libv4e.csms import (
    CentralSystem,
    CertificateAuthority,
    ClusterConfig,
    ClusterNode,
    CsmsConfig,
    PostgresStore,
    Store,
    WebhookPolicy,
    WebhookSubscription,
    store_for,
)
from libv4e.sandbox import Sandbox
from libv4e.scenarios import DEFAULT_SCENARIOS, ScenarioManager, ScenarioSpec

from .api import ApiAccess, create_app, serve_api
from .events import EventHub
from .gc import GcPauses, tune_gc
from .tickets import TicketDesk

log = logging.getLogger("libv4e.backend")


@dataclasses.dataclass(frozen=True)
class BackendConfig:
    """Where and how the backend runs. Port 0 picks a free port (tests)."""

    host: str = "localhost"
    ws_port: int = 9000
    api_host: str | None = None
    """Host for the REST API (default: same as ``host``)."""
    api_port: int = 8000
    db_path: str = "v4e.db"
    """A SQLite file, or a ``postgresql://`` URL (then this process is a cluster node)."""
    api_auth: str = "auto"
    """auto (a token is required when the API binds beyond loopback), on, or off."""
    api_token: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    """Extra ``Host`` names the API answers to (besides loopback and the bound host)."""
    csms: CsmsConfig = dataclasses.field(default_factory=CsmsConfig)
    ssl_context: ssl.SSLContext | None = None
    tune_gc: bool = True
    """Freeze long-lived objects periodically to keep GC pauses short (see ``_gc``)."""
    cluster: ClusterConfig = dataclasses.field(default_factory=ClusterConfig)
    """How this node takes part in a cluster (PostgreSQL stores only)."""
    ws_fd: int | None = None
    """A listening socket to serve OCPP on instead of binding ``ws_port`` (``--workers``)."""
    api_fd: int | None = None
    """A listening socket to serve the API on instead of binding ``api_port``."""
    charger_ca: CertificateAuthority | None = None
    """Signs charger certificates (SignCertificate); what security profile 3 trusts."""
    sandbox: bool = False
    """Serve an evaluation sandbox: ``POST /sandbox/setup`` starts simulated chargers in
    this process, ``/driver/{cp_id}/…`` acts on them as their driver."""
    webhooks: tuple[tuple[str, str], ...] = ()
    """(url, secret) of webhook subscriptions present from the start (``--webhook``);
    more come and go over ``/webhooks``."""
    webhook_policy: WebhookPolicy = dataclasses.field(default_factory=WebhookPolicy)
    """Attempts, backoff, timeouts and bounds of webhook deliveries."""
    http_idle_timeout: float = 20.0
    """Seconds a REST connection may go without a complete request: idle between requests
    (keep-alive), and while a request's head trickles in (slowloris). Behind a load
    balancer, set it above the balancer's idle timeout (e.g. 75 behind a 60 s one)."""


@dataclasses.dataclass(frozen=True)
class Backend:
    """A running backend: its CSMS and the addresses it listens on."""

    csms: CentralSystem
    ws_port: int
    api_port: int
    ws_url: str
    api_url: str
    node: ClusterNode | None = None
    """This process's cluster node (PostgreSQL stores only)."""
    scenarios: ScenarioManager | None = None
    """The fault scenarios (``/demo``) of this backend."""
    sandbox: Sandbox | None = None
    """The evaluation sandbox (``BackendConfig.sandbox``): ``/sandbox`` and ``/driver``."""


def bind_host(host: str) -> str:
    """``localhost`` binds the IPv4 loopback (clients fall back to it from ``::1``)."""
    return "127.0.0.1" if host == "localhost" else host


async def serve_backend(
    config: BackendConfig,
    *,
    store: Store | None = None,
    setup: Callable[[CentralSystem], Any] | None = None,
    specs: Iterable[ScenarioSpec] = DEFAULT_SCENARIOS,
    extra_routes: Callable[[Any], None] | None = None,
    clock: Callable[[], dt.datetime] | None = None,
    task_status: trio.TaskStatus[Backend] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Open the store, load the CSMS, serve OCPP and the REST API until cancelled.

    ``clock``: the CSMS's wall clock (default the real one; ``libv4e.sandbox.trio_clock``
    for simulated time). ``setup(csms)`` runs before serving; ``specs`` are the fault
    scenarios offered on ``/demo`` (the five defaults; add your own). Reports a
    :class:`Backend` once both servers listen. On cancellation the websockets close with
    1001, the message log is flushed and the database is closed.
    """
    store = store or store_for(config.db_path)
    await store.open()
    try:
        csms = (
            CentralSystem(store, config.csms)
            if clock is None
            else CentralSystem(store, config.csms, clock=clock)
        )
        csms.ca = config.charger_ca
        await csms.load()
        if setup is not None:
            setup(csms)
        scenarios = ScenarioManager(csms, specs)
        access = ApiAccess.for_binding(
            config.api_host or config.host,
            config.api_auth,
            config.api_token,
            allowed_hosts=config.allowed_hosts,
            token_file=None if config.db_path == ":memory:" else f"{config.db_path}.api-token",
        )
        desk = TicketDesk(store)
        sandbox = Sandbox(csms, scenarios, tickets=desk.tickets) if config.sandbox else None
        events = EventHub(csms, scenarios, policy=config.webhook_policy)
        for i, (url, secret) in enumerate(config.webhooks, start=1):
            events.webhooks.subscribe(WebhookSubscription(f"wh_cli{i}", url, secret))
        app = create_app(
            csms,
            scenarios=scenarios,
            access=access,
            extra=_with_sandbox(sandbox, extra_routes),
            events=events,
            tickets=desk,
        )
        async with trio.open_nursery() as nursery:
            host = bind_host(config.host)
            api_host = bind_host(config.api_host or config.host)
            if config.tune_gc:
                pauses = GcPauses()
                app.extensions["v4e_metrics"].registry.register(pauses)
                nursery.start_soon(functools.partial(tune_gc, pauses=pauses))
            await nursery.start(events.run)
            node = None
            if isinstance(store, PostgresStore):  # one node of a (possibly 1-node) cluster
                node = await nursery.start(ClusterNode(csms, store, config.cluster).run)
            ws_port = await nursery.start(
                lambda task_status: csms.serve(
                    host,
                    config.ws_port,
                    ssl_context=config.ssl_context,
                    fd=config.ws_fd,
                    task_status=task_status,
                )
            )
            api_port = await nursery.start(
                functools.partial(
                    serve_api,
                    app,
                    api_host,
                    config.api_port,
                    fd=config.api_fd,
                    idle_timeout=config.http_idle_timeout,
                )
            )
            scheme = "wss" if config.ssl_context else "ws"
            shown = "localhost" if config.host in ("localhost", "127.0.0.1") else config.host
            backend = Backend(
                csms,
                ws_port,
                api_port,
                f"{scheme}://{shown}:{ws_port}",
                f"http://{shown}:{api_port}",
                node,
                scenarios,
                sandbox,
            )
            if sandbox is not None:
                sandbox.url, sandbox.nursery = f"ws://127.0.0.1:{ws_port}", nursery
            task_status.started(backend)
    finally:
        with trio.CancelScope(shield=True):
            await store.close()


def _with_sandbox(
    sandbox: Sandbox | None, extra: Callable[[Any], None] | None
) -> Callable[[Any], None] | None:
    """``extra`` routes, plus the sandbox and driver routes when there is a sandbox."""
    if sandbox is None:
        return extra

    def register(app: Any) -> None:
        from .driver_api import blueprint

        app.register_blueprint(blueprint(sandbox))
        if extra is not None:
            extra(app)

    return register
