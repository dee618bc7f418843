"""Events for agents: what happened on a charger, in words an agent can speak from
("your session has started"), derived from the CSMS's state — not from its messages.

:class:`AgentEventFeed` keeps one small snapshot per charger (its link, which connectors
are faulted, which sessions run, the phase of each scenario run) and :meth:`~AgentEventFeed.look`
compares the charger's present state with it: every difference is one
:class:`AgentEvent`. Looking after every message of a charger and, for time alone
(a charger falling silent, a disconnection), at every charger once a second
(:meth:`~AgentEventFeed.tick`) gives each change exactly once, in order, whatever the
messages were (a StartTransaction, a reconnect that closed a session, a cluster node
taking a charger over). No I/O: the apps' event hub (``apps/csms/events.py``) calls it
and delivers the events (server-sent events, webhooks).

The first look at a charger only records its state (no event for what was already so
when the feed started). Per charger the events alternate: ``session_started`` /
``session_stopped`` per transaction, ``connector_faulted`` / ``connector_recovered`` per
connector, ``charger_offline`` / ``charger_back``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from libv4e.protocol._time import iso

if TYPE_CHECKING:
    from libv4e.csms._central import CentralSystem
    from libv4e.csms._registry import ChargePointState

log = logging.getLogger("libv4e.events")

__all__ = ["EVENT_KINDS", "AgentEvent", "AgentEventFeed", "RunPhase", "charger_link"]

EVENT_KINDS = (
    "session_started",
    "session_stopped",
    "connector_faulted",
    "connector_recovered",
    "charger_offline",
    "charger_back",
    "scenario_phase_changed",
)
"""Every kind of :class:`AgentEvent` (a closed set)."""

RunPhase = tuple[str, int | None, str]
"""A scenario run as the feed sees it: (scenario, connector or None, phase)."""


@dataclasses.dataclass(frozen=True, slots=True)
class AgentEvent:
    """One change on one charger."""

    id: int
    """Increasing across the feed (gaps never; restarts begin again at 1)."""
    kind: str
    cp_id: str
    connector_id: int | None
    at: dt.datetime
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "id": self.id,
            "kind": self.kind,
            "cp_id": self.cp_id,
            "connector_id": self.connector_id,
            "at": iso(self.at),
            **self.data,
        }


@dataclasses.dataclass(slots=True)
class _Snapshot:
    link: str
    """online, unresponsive or offline (:func:`charger_link`)."""
    faults: dict[int, tuple[str, str, str | None]]
    """connector → (status, error code, info) while faulted."""
    sessions: dict[int, tuple[int, str]]
    """transaction id → (connector, card)."""
    runs: dict[str, RunPhase]

    @property
    def online(self) -> bool:
        return self.link == "online"


def charger_link(state: ChargePointState, now: dt.datetime, tolerance: float) -> str:
    """``online``; ``unresponsive`` (socket open but silent past the tolerance, or a probe
    went unanswered); or ``offline`` (no socket)."""
    if not state.connected:
        return "offline"
    return "online" if state.is_online(now, tolerance) else "unresponsive"


def _faulted(status: str | None, error_code: str | None) -> bool:
    return status == "Faulted" or error_code not in (None, "NoError")


class AgentEventFeed:
    """The semantic events of ``csms``'s chargers (see the module docstring).

    ``runs(cp_id)``: the charger's scenario runs as ``{run key: (scenario, connector,
    phase)}`` (the apps pass the scenario manager's; None: no scenario events).
    """

    def __init__(
        self,
        csms: CentralSystem,
        runs: Callable[[str], Mapping[str, RunPhase]] | None = None,
    ) -> None:
        self.csms = csms
        self._runs = runs
        self._seen: dict[str, _Snapshot] = {}
        self._next_id = 1

    @property
    def last_id(self) -> int:
        """The id of the newest event (0: none yet)."""
        return self._next_id - 1

    def look(self, cp_id: str) -> list[AgentEvent]:
        """The events of ``cp_id`` since the last look (none at the first)."""
        state = self.csms.registry.get(cp_id)
        if state is None:
            self._seen.pop(cp_id, None)
            return []
        now = self.csms.clock()
        new = self._snapshot(state, now)
        old = self._seen.get(cp_id)
        self._seen[cp_id] = new
        if old is None:
            return []
        return self._changes(cp_id, old, new, now)

    def tick(self) -> list[AgentEvent]:
        """Look at every charger (time changes links; a disconnection has no message);
        forget the chargers the registry forgot. A charger whose look fails (logged) costs
        only itself: it is looked at again next time."""
        events: list[AgentEvent] = []
        known = set()
        for state in list(self.csms.registry):
            known.add(state.cp_id)
            try:
                events += self.look(state.cp_id)
            except Exception:
                log.exception("events of %s: the look failed", state.cp_id)
        for gone in set(self._seen) - known:
            del self._seen[gone]
        return events

    def baseline(self, cp_ids: Iterable[str] | None = None) -> None:
        """Record the present state of ``cp_ids`` (default every charger), no events."""
        for cp_id in cp_ids if cp_ids is not None else [s.cp_id for s in self.csms.registry]:
            self.look(cp_id)

    # -- internals ----------------------------------------------------------------------------

    def _snapshot(self, state: ChargePointState, now: dt.datetime) -> _Snapshot:
        book = self.csms.transactions
        faults: dict[int, tuple[str, str, str | None]] = {}
        sessions: dict[int, tuple[int, str]] = {}
        for cid, c in state.connectors.items():
            if _faulted(c.status, c.error_code):
                faults[cid] = (c.status or "", c.error_code or "", c.info)
            if cid:
                tx = book.active_on(state.cp_id, cid)
                if tx is not None:
                    sessions[tx.transaction_id] = (cid, tx.id_tag)
        kind = charger_link(state, now, self.csms.registry.offline_tolerance)
        runs = dict(self._runs(state.cp_id)) if self._runs is not None else {}
        return _Snapshot(kind, faults, sessions, runs)

    def _event(
        self, kind: str, cp_id: str, connector_id: int | None, now: dt.datetime, **data: Any
    ) -> AgentEvent:
        event = AgentEvent(self._next_id, kind, cp_id, connector_id, now, data)
        self._next_id += 1
        return event

    def _changes(
        self, cp_id: str, old: _Snapshot, new: _Snapshot, now: dt.datetime
    ) -> list[AgentEvent]:
        out: list[AgentEvent] = []
        if not old.online and new.online:
            out.append(self._event("charger_back", cp_id, None, now))
        if old.online and not new.online:
            reason = "disconnected" if new.link == "offline" else "silent"
            out.append(self._event("charger_offline", cp_id, None, now, reason=reason))
        for tx_id, (cid, tag) in old.sessions.items():
            if tx_id not in new.sessions:
                tx = self.csms.transactions.get(tx_id)
                energy = None
                if tx is not None and tx.meter_stop is not None:
                    energy = max(0, tx.meter_stop - tx.meter_start)
                out.append(
                    self._event(
                        "session_stopped",
                        cp_id,
                        cid,
                        now,
                        transaction_id=tx_id,
                        id_tag=tag,
                        reason=tx.stop_reason if tx is not None else None,
                        energy_wh=energy,
                    )
                )
        for cid in sorted(old.faults.keys() - new.faults.keys()):
            out.append(self._event("connector_recovered", cp_id, cid, now))
        for cid in sorted(new.faults.keys() - old.faults.keys()):
            status, code, info = new.faults[cid]
            out.append(
                self._event(
                    "connector_faulted",
                    cp_id,
                    cid,
                    now,
                    status=status,
                    error_code=code,
                    info=info,
                )
            )
        for tx_id in sorted(new.sessions.keys() - old.sessions.keys()):
            cid, tag = new.sessions[tx_id]
            out.append(
                self._event("session_started", cp_id, cid, now, transaction_id=tx_id, id_tag=tag)
            )
        for key, (scenario, where, phase) in new.runs.items():
            before = old.runs.get(key)
            if before is None or before[2] != phase:
                out.append(
                    self._event(
                        "scenario_phase_changed",
                        cp_id,
                        where,
                        now,
                        scenario=scenario,
                        run=key,
                        previous=before[2] if before is not None else None,
                        phase=phase,
                    )
                )
        return out
