"""Sandboxes for evaluating agents: one call sets up a task's whole initial state
(chargers, cards, other drivers' sessions, faults, a seed), a canonical snapshot reads
the world back, and assertions judge it (docs/evaluation-environment.md)."""

from ._assertions import ASSERTIONS as ASSERTIONS
from ._assertions import Check as Check
from ._assertions import cable_unlocked as cable_unlocked
from ._assertions import charger_online as charger_online
from ._assertions import connector_ok as connector_ok
from ._assertions import evaluate as evaluate
from ._assertions import no_forbidden as no_forbidden
from ._assertions import no_session_stopped as no_session_stopped
from ._assertions import no_ticket as no_ticket
from ._assertions import session_not_running as session_not_running
from ._assertions import session_running as session_running
from ._assertions import ticket_filed as ticket_filed
from ._clock import trio_clock as trio_clock
from ._sandbox import STOPPED_BY as STOPPED_BY
from ._sandbox import Sandbox as Sandbox
from ._state import CardSpec as CardSpec
from ._state import ChargerSpec as ChargerSpec
from ._state import ErrorSpec as ErrorSpec
from ._state import FaultSpec as FaultSpec
from ._state import InitialState as InitialState
from ._state import InvalidInitialState as InvalidInitialState
from ._state import PlugSpec as PlugSpec
from ._state import ReservationSpec as ReservationSpec
from ._state import SessionSpec as SessionSpec

__all__ = [
    "ASSERTIONS",
    "STOPPED_BY",
    "CardSpec",
    "ChargerSpec",
    "Check",
    "ErrorSpec",
    "FaultSpec",
    "InitialState",
    "InvalidInitialState",
    "PlugSpec",
    "ReservationSpec",
    "Sandbox",
    "SessionSpec",
    "cable_unlocked",
    "charger_online",
    "connector_ok",
    "evaluate",
    "no_forbidden",
    "no_session_stopped",
    "no_ticket",
    "session_not_running",
    "session_running",
    "ticket_filed",
    "trio_clock",
]
