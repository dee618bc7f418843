"""The scenario state machines as data: a :class:`ScenarioSpec` describes one scenario
(the driver's words, the fault to start in the charger, what counts as remediation and
resolution); a :class:`ScenarioRun` is one occurrence on one charger, moving through
:data:`SCENARIO_TRANSITIONS`. :class:`ScenarioError` says why a scenario cannot be played
as asked (the apps translate its ``reason``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from libv4e._errors import Libv4eError
from libv4e.protocol._time import iso
from libv4e.transport._connection import MessageRecord

if TYPE_CHECKING:
    from libv4e.csms._central import CentralSystem

log = logging.getLogger("libv4e.scenarios")


class Phase(enum.StrEnum):
    """Where a scenario run stands."""

    INACTIVE = "inactive"
    ACTIVE = "active"
    REMEDIATING = "remediating"
    RESOLVED = "resolved"
    ESCALATED = "escalated"
    CLEARED = "cleared"


class ScenarioEvent(enum.StrEnum):
    """What moves a scenario run."""

    TRIGGER = "trigger"
    REMEDIATION_SEEN = "remediation_seen"
    RESOLUTION_SEEN = "resolution_seen"
    ESCALATE = "escalate"
    CLEAR = "clear"


SCENARIO_TRANSITIONS: dict[tuple[Phase, ScenarioEvent], Phase] = {
    (Phase.INACTIVE, ScenarioEvent.TRIGGER): Phase.ACTIVE,
    (Phase.ACTIVE, ScenarioEvent.REMEDIATION_SEEN): Phase.REMEDIATING,
    (Phase.ACTIVE, ScenarioEvent.ESCALATE): Phase.ESCALATED,
    (Phase.ACTIVE, ScenarioEvent.CLEAR): Phase.CLEARED,
    (Phase.REMEDIATING, ScenarioEvent.REMEDIATION_SEEN): Phase.REMEDIATING,
    (Phase.REMEDIATING, ScenarioEvent.RESOLUTION_SEEN): Phase.RESOLVED,
    (Phase.REMEDIATING, ScenarioEvent.ESCALATE): Phase.ESCALATED,
    (Phase.REMEDIATING, ScenarioEvent.CLEAR): Phase.CLEARED,
}
"""The scenario state machine: (phase, event) → phase. Resolved, escalated and cleared
are final."""

ACTIVE_PHASES = frozenset({Phase.ACTIVE, Phase.REMEDIATING})


class ScenarioError(Libv4eError):
    """A scenario cannot be started as asked; ``reason`` says why, in domain terms:
    ``unknown_scenario``, ``charger_not_connected``, ``scenario_active``,
    ``fault_refused`` (the charger answered no), ``charger_timeout`` (it did not answer).
    """

    REASONS = frozenset(
        {
            "unknown_scenario",
            "charger_not_connected",
            "scenario_active",
            "fault_refused",
            "charger_timeout",
        }
    )

    def __init__(self, reason: str, message: str) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"unknown ScenarioError reason {reason!r}")
        super().__init__(message)
        self.reason = reason


@dataclasses.dataclass
class ScenarioRun:
    """One scenario on one charger."""

    spec: ScenarioSpec
    cp_id: str
    params: dict[str, Any]
    phase: Phase = Phase.INACTIVE
    history: list[tuple[dt.datetime, Phase, str]] = dataclasses.field(default_factory=list)
    marks: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Scratch state of the spec's observers (e.g. when the remediation was seen)."""

    @property
    def active(self) -> bool:
        """Active or remediating."""
        return self.phase in ACTIVE_PHASES

    def fire(self, event: ScenarioEvent, at: dt.datetime, note: str = "") -> bool:
        """Apply ``event`` if the state machine allows it; returns whether it moved."""
        new = SCENARIO_TRANSITIONS.get((self.phase, event))
        if new is None:
            return False
        if new is not self.phase:
            log.info("%s on %s: %s → %s (%s)", self.spec.name, self.cp_id, self.phase, new, note)
        self.phase = new
        self.history.append((at, new, note))
        return True

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "scenario": self.spec.name,
            "cp_id": self.cp_id,
            "connector_id": self.params.get("connector_id"),
            "phase": str(self.phase),
            "params": self.params,
            "history": [{"at": iso(at), "phase": str(p), "note": n} for at, p, n in self.history],
        }


ScenarioObserver = Callable[[ScenarioRun, MessageRecord], ScenarioEvent | None]


@dataclasses.dataclass(frozen=True)
class ScenarioSpec:
    """A fault scenario: words, fault, and how remediation and resolution look on the wire.

    ``observe(run, record)`` sees every OCPP message of the run's charger and returns the
    event it implies (or None). ``await prepare(csms, params)`` may adjust parameters (and
    the CSMS) before the fault starts, and returns the parameters.
    """

    name: str
    title: str
    driver_says: str
    description: str
    remediation: str
    observe: ScenarioObserver
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)
    prepare: Callable[[CentralSystem, dict[str, Any]], Awaitable[dict[str, Any]]] | None = None
    resolved_when: str = ""
    """When a run counts as resolved (the shared notion, see ``_resolved``)."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "name": self.name,
            "title": self.title,
            "driver_says": self.driver_says,
            "description": self.description,
            "remediation": self.remediation,
            "parameters": self.defaults,
            "resolved_when": self.resolved_when,
        }
