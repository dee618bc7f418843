"""The live dashboard (``/dashboard``), its server-sent events (``/events``), the power
history it charts (``/chargers/{cp_id}/meter_history``) and the Prometheus metrics
(``/metrics``). Assets, uPlot included, are served from the package: no CDN.

``/events`` pushes ``event: message`` for every OCPP message as it passes,
``event: state`` — every charger's state, its link (online / unresponsive / offline, which
is derived from time), sessions and scenario runs — shortly after messages *and* when time
alone changes it (the stream wakes up when the next charger would fall silent past its
tolerance, so a charger that stops talking is shown within its heartbeat interval without
a reload), and the semantic events for agents (``event: session_started`` … with an
``id:``, see :mod:`libv4e_apps.csms.events`). ``?cp_id=A,B`` keeps only those chargers (in
``state`` too) and ``?kind=`` only those kinds (``message``, ``state``, ``semantic`` for
every semantic kind, or one of them).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

import trio
from quart import Response, request
from quart_trio import QuartTrio

from libv4e.csms import EVENT_KINDS, AgentEvent, MeterHistory
from libv4e.csms import charger_link as link
from libv4e.protocol import MESSAGE_KINDS, iso

from .errors import int_arg
from .events import STREAM_KINDS, EventHub, parse_list
from .metrics import CONTENT_TYPE, CsmsMetrics

if TYPE_CHECKING:
    from libv4e.csms import CentralSystem
    from libv4e.scenarios import ScenarioManager

_ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "vendor/uplot/uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "vendor/uplot/uPlot.min.css": "text/css; charset=utf-8",
    "vendor/uplot/LICENSE": "text/plain; charset=utf-8",
}
KEEPALIVE_SECONDS = 15.0
STATE_DEBOUNCE_SECONDS = 0.3
"""After a message, the state is pushed at most this much later (messages are batched)."""
STATE_MAX_SECONDS = 5.0
"""The state is recomputed at least this often (sent only when it changed)."""
STATE_BUSY_FACTOR = 10.0
"""A state that takes t seconds to compute is pushed at most every t × this (so a big
fleet costs the event loop at most a tenth of its time, however many dashboards)."""
RUNS_PER_CHARGER = 8
"""Scenario runs (newest) shown per charger."""
HISTORY_MINUTES = 30


def _asset(name: str) -> bytes:
    package = __name__.rpartition(".")[0]  # libv4e_apps.csms when installed
    return (resources.files(package) / "static").joinpath(*name.split("/")).read_bytes()


def next_change(csms: CentralSystem, now: dt.datetime) -> float | None:
    """Seconds until the first online charger would count as silent (None if none is)."""
    tolerance = csms.registry.offline_tolerance
    soonest: float | None = None
    for state in csms.registry:
        silence = state.silence(now)
        if silence is None or not state.is_online(now, tolerance):
            continue
        left = state.heartbeat_interval * tolerance - silence
        soonest = left if soonest is None else min(soonest, left)
    return soonest


def dashboard_state(
    csms: CentralSystem,
    scenarios: ScenarioManager | None,
    now: dt.datetime,
    *,
    only: frozenset[str] | None = None,
) -> dict[str, Any]:
    """Everything the dashboard shows about the chargers (``only`` these, if given), as
    of ``now`` (JSON-ready)."""
    tolerance = csms.registry.offline_tolerance
    active = csms.active_transactions()
    runs: dict[str, list[dict[str, Any]]] = {}
    for run in reversed(scenarios.runs if scenarios is not None else []):
        kept = runs.setdefault(run.cp_id, [])
        if len(kept) < RUNS_PER_CHARGER:
            kept.append({**run.as_dict(), "title": run.spec.title, "active": run.active})
    chargers = []
    online = 0
    for state in csms.registry:
        if only is not None and state.cp_id not in only:
            continue
        try:
            data = state.as_dict(now, tolerance)
            data["active_transactions"] = [t.as_dict() for t in active.get(state.cp_id, [])]
        except Exception:  # one record costs only itself (see routes.common.describe)
            data = {"cp_id": state.cp_id, "error": "unrenderable_state", "connectors": []}
        data["link"] = link(state, now, tolerance)
        online += data["link"] == "online"
        data["scenario_runs"] = runs.get(state.cp_id, [])
        chargers.append(data)
    return {
        "total_connected": len(csms.connected_ids),
        "total_online": online,
        "total_known": len(chargers),
        "offline_tolerance": tolerance,
        "charge_points": chargers,
    }


def add_dashboard_routes(
    app: QuartTrio,
    csms: CentralSystem,
    scenarios: ScenarioManager | None = None,
    *,
    history: MeterHistory | None = None,
    events: EventHub | None = None,
) -> CsmsMetrics:
    """Add ``/dashboard``, ``/static/*``, ``/events``, ``/metrics`` and
    ``/chargers/{cp_id}/meter_history`` to ``app``. ``history`` (a new one if None) is fed
    every OCPP message of ``csms``."""

    metrics = CsmsMetrics(csms)
    if history is None:
        book = csms.transactions

        def session_of(cp_id: str, charger_transaction_id: str) -> int | None:
            tx = book.of_charger(cp_id, charger_transaction_id)
            return None if tx is None else tx.transaction_id

        history = MeterHistory(session_of=session_of)
        csms.messages.add_observer(history.observe)
    app.extensions["v4e_meter_history"] = history

    @app.get("/dashboard")
    async def dashboard() -> Response:
        """The live dashboard (HTML)."""
        return Response(_asset("dashboard.html"), content_type="text/html; charset=utf-8")

    @app.get("/static/<path:name>")
    async def static_asset(name: str) -> Response:
        """Dashboard assets (the page's script and style, and the vendored uPlot)."""
        kind = _ASSETS.get(name)
        if kind is None:
            return Response(
                b'{"error": "not_found", "message": "no such asset"}',
                404,
                content_type="application/json",
            )
        response = Response(_asset(name), content_type=kind)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.get("/chargers/<cp_id>/meter_history")
    async def meter_history(cp_id: str) -> Any:
        """Power and energy over time, per connector, from the MeterValues the CSMS
        received (in memory, the last samples of each connector; ?connector_id=&minutes=30).
        Each sample: ``at``, ``received``, ``transaction_id``, ``power_w``, ``offered_w``
        (Power.Offered, else Current.Offered × voltage × 3), ``energy_wh``, ``soc_percent``."""
        csms.registry.require(cp_id)
        minutes = int_arg("minutes", HISTORY_MINUTES, 1, 24 * 60)
        since = csms.clock() - dt.timedelta(minutes=minutes)
        ids = history.connectors(cp_id)
        if request.args.get("connector_id") is not None:
            wanted = int_arg("connector_id", 0, 0, 10**6)
            ids = [i for i in ids if i == wanted]
        return {
            "cp_id": cp_id,
            "minutes": minutes,
            "capacity": history.capacity,
            "connectors": [
                {
                    "connector_id": i,
                    "samples": [s.as_dict() for s in history.samples(cp_id, i, since=since)],
                }
                for i in ids
            ],
        }

    snapshot = _SharedState(lambda: json.dumps(dashboard_state(csms, scenarios, csms.clock())))

    hub = events

    @app.get("/events")
    async def event_stream() -> Response:
        """Server-sent events: every OCPP message as it passes (``event: message``), the
        chargers' state when it changes (``event: state``), by time as well, and the
        semantic events for agents (``event: session_started`` …); filter with
        ``?cp_id=A,B`` and ``?kind=message,state,semantic,<kind>``."""
        cp_ids = parse_list("cp_id")
        kinds = set(parse_list("kind", STREAM_KINDS) or STREAM_KINDS)
        if "semantic" in kinds:
            kinds |= set(EVENT_KINDS)
        wanted = frozenset(cp_ids) if cp_ids is not None else None
        semantic = kinds & set(EVENT_KINDS)
        state_of = snapshot.get
        if wanted is not None:
            mine = _SharedState(
                lambda: json.dumps(dashboard_state(csms, scenarios, csms.clock(), only=wanted))
            )
            state_of = mine.get

        async def stream() -> AsyncIterator[bytes]:
            send, received = trio.open_memory_channel[Any](1000)

            def forward(record: Any) -> None:
                if wanted is not None and record.cp_id not in wanted:
                    return
                try:
                    send.send_nowait(record)
                except trio.WouldBlock:
                    pass  # a slow reader misses messages rather than slowing chargers

            if "message" in kinds:
                csms.messages.add_observer(forward)
            with contextlib.ExitStack() as stack:
                stack.callback(csms.messages.remove_observer, forward)
                listener = None
                if hub is not None and semantic:
                    listener = stack.enter_context(hub.listen(send, cp_ids, semantic))
                yield b"retry: 2000\n: connected\n\n"
                last_state: str | None = None
                last_sent = trio.current_time()
                push_at = trio.current_time() if "state" in kinds else float("inf")
                dropped = 0
                while True:
                    if listener is not None and listener.dropped > dropped:
                        yield f": dropped {listener.dropped - dropped}\n\n".encode()
                        dropped = listener.dropped
                    if trio.current_time() >= push_at:
                        data = state_of(fresh_from=push_at)
                        if data != last_state:
                            last_state, last_sent = data, trio.current_time()
                            yield f"event: state\ndata: {data}\n\n".encode()
                        wait = next_change(csms, csms.clock())
                        wait = STATE_MAX_SECONDS if wait is None else min(wait, STATE_MAX_SECONDS)
                        push_at = trio.current_time() + max(snapshot.min_gap, wait + 0.05)
                    record = None
                    with trio.move_on_at(min(push_at, last_sent + KEEPALIVE_SECONDS)):
                        record = await received.receive()
                    if record is None:
                        if trio.current_time() >= last_sent + KEEPALIVE_SECONDS:
                            last_sent = trio.current_time()
                            yield b": keepalive\n\n"
                        continue
                    if "state" in kinds:
                        push_at = min(push_at, trio.current_time() + snapshot.min_gap)
                    last_sent = trio.current_time()
                    if isinstance(record, AgentEvent):
                        data = json.dumps(record.as_dict())
                        yield f"id: {record.id}\nevent: {record.kind}\ndata: {data}\n\n".encode()
                        continue
                    message = json.dumps(
                        {
                            "cp_id": record.cp_id,
                            "direction": record.direction,
                            "message_type": record.message_type,
                            "type": MESSAGE_KINDS.get(record.message_type),
                            "action": record.action,
                            "unique_id": record.unique_id,
                            "at": iso(record.at),
                            "payload": record.payload,
                        }
                    )
                    yield f"event: message\ndata: {message}\n\n".encode()

        response = Response(stream(), content_type="text/event-stream")
        response.headers["Cache-Control"] = "no-cache"
        response.timeout = None
        return response

    @app.get("/metrics")
    async def prometheus() -> Response:
        """Prometheus metrics."""
        return Response(metrics.render(), content_type=CONTENT_TYPE)

    return metrics


class _SharedState:
    """The ``state`` event's JSON, shared by all streams (what one computed after the
    moment another needs serves both); ``min_gap``, the shortest time between two pushes
    of a stream, grows with the cost of computing it."""

    def __init__(self, compute: Callable[[], str]) -> None:
        self._compute = compute
        self._value = ""
        self._at = -float("inf")
        self.min_gap = STATE_DEBOUNCE_SECONDS

    def get(self, fresh_from: float) -> str:
        """The state as of ``fresh_from`` (Trio time) or later: computed by another
        stream since then, or now."""
        now = trio.current_time()
        if self._at < fresh_from:
            started = time.perf_counter()
            self._value = self._compute()
            cost = time.perf_counter() - started
            self.min_gap = max(STATE_DEBOUNCE_SECONDS, cost * STATE_BUSY_FACTOR)
            self._at = now
        return self._value
