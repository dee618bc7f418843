"""Fault scenarios as explicit state machines, driven by the OCPP messages the CSMS sees.

A :class:`ScenarioSpec` describes one scenario (the driver's words, the fault to start in
the charger, what counts as remediation and resolution); a :class:`ScenarioRun` is one
occurrence on one charger, moving through :data:`SCENARIO_TRANSITIONS`. The
:class:`ScenarioManager` starts and clears faults over OCPP (DataTransfer, see
``_faults``) and feeds every message to the active runs. Library users add scenarios by
registering more specs; the apps need no change.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import trio

from libv4e._errors import CallTimeoutError, ConnectionLostError, Libv4eError, RemoteCallError
from libv4e.csms._central import ChargerNotConnectedError
from libv4e.csms._registry import iso
from libv4e.scenarios._faults import DEFAULT_ID_TAG, fault_clear_request, fault_start_request
from libv4e.transport._connection import MessageRecord
from libv4e.transport._websocket import ConnectionRequest, Refusal

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


P, V = Phase, ScenarioEvent
SCENARIO_TRANSITIONS: dict[tuple[Phase, ScenarioEvent], Phase] = {
    (P.INACTIVE, V.TRIGGER): P.ACTIVE,
    (P.ACTIVE, V.REMEDIATION_SEEN): P.REMEDIATING,
    (P.ACTIVE, V.ESCALATE): P.ESCALATED,
    (P.ACTIVE, V.CLEAR): P.CLEARED,
    (P.REMEDIATING, V.REMEDIATION_SEEN): P.REMEDIATING,
    (P.REMEDIATING, V.RESOLUTION_SEEN): P.RESOLVED,
    (P.REMEDIATING, V.ESCALATE): P.ESCALATED,
    (P.REMEDIATING, V.CLEAR): P.CLEARED,
}
"""The scenario state machine: (phase, event) → phase. Resolved, escalated and cleared
are final."""

ACTIVE_PHASES = frozenset({P.ACTIVE, P.REMEDIATING})


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
            "phase": str(self.phase),
            "params": self.params,
            "history": [{"at": iso(at), "phase": str(p), "note": n} for at, p, n in self.history],
        }


Observer = Callable[[ScenarioRun, MessageRecord], ScenarioEvent | None]


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
    observe: Observer
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)
    prepare: Callable[[CentralSystem, dict[str, Any]], Awaitable[dict[str, Any]]] | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "name": self.name,
            "title": self.title,
            "driver_says": self.driver_says,
            "description": self.description,
            "remediation": self.remediation,
            "parameters": self.defaults,
        }


# -- the five scenarios' observers --------------------------------------------------------------


def _call(record: MessageRecord, action: str, direction: str) -> bool:
    return record.message_type == 2 and record.action == action and record.direction == direction


def _result(record: MessageRecord, action: str, direction: str) -> bool:
    return record.message_type == 3 and record.action == action and record.direction == direction


def _connector(run: ScenarioRun) -> int:
    return int(run.params.get("connector_id", 1))


def _watch_reset_then(run: ScenarioRun, record: MessageRecord) -> ScenarioEvent | None:
    """Shared by the faults a reset cures: Reset accepted → remediating."""
    if _result(record, "Reset", "in") and record.payload.get("status") == "Accepted":
        run.marks["reset_at"] = record.at
        return ScenarioEvent.REMEDIATION_SEEN
    return None


def _observe_session_start_failure(run: ScenarioRun, record: MessageRecord) -> ScenarioEvent | None:
    event = _watch_reset_then(run, record)
    if event is not None:
        return event
    if "reset_at" not in run.marks:
        return None
    if _call(record, "StartTransaction", "in"):
        run.marks["started"] = True
    if run.marks.get("started") and _call(record, "MeterValues", "in"):
        if record.payload.get("transactionId") is not None and _energy_rises(run, record):
            return ScenarioEvent.RESOLUTION_SEEN
    return None


def _energy_rises(run: ScenarioRun, record: MessageRecord) -> bool:
    for mv in record.payload.get("meterValue", []):
        for sv in mv.get("sampledValue", []):
            if (
                sv.get("measurand", "Energy.Active.Import.Register")
                == "Energy.Active.Import.Register"
            ):
                try:
                    value = float(sv["value"])
                except (KeyError, ValueError):
                    continue
                first = run.marks.setdefault("first_energy", value)
                if value > first:
                    return True
    return False


def _observe_stuck_connector(run: ScenarioRun, record: MessageRecord) -> ScenarioEvent | None:
    if _call(record, "UnlockConnector", "out"):
        run.marks["unlock_id"] = record.unique_id
    if _result(record, "UnlockConnector", "in") and record.payload.get("status") == "Unlocked":
        run.marks["unlocked"] = True
        return ScenarioEvent.REMEDIATION_SEEN
    if run.marks.get("unlocked") and _call(record, "StatusNotification", "in"):
        p = record.payload
        if (
            p.get("connectorId") == _connector(run)
            and p.get("status") == "Available"
            and p.get("errorCode") == "NoError"
        ):
            return ScenarioEvent.RESOLUTION_SEEN
    return None


def _observe_offline_charger(run: ScenarioRun, record: MessageRecord) -> ScenarioEvent | None:
    event = _watch_reset_then(run, record)
    if event is not None:
        return event
    if "reset_at" in run.marks and _call(record, "BootNotification", "in"):
        run.marks["booted"] = True
    if run.marks.get("booted") and _call(record, "Heartbeat", "in"):
        return ScenarioEvent.RESOLUTION_SEEN
    return None


def _observe_auth_failure(run: ScenarioRun, record: MessageRecord) -> ScenarioEvent | None:
    tag = run.params.get("id_tag", DEFAULT_ID_TAG)
    if _call(record, "SendLocalList", "out"):
        for entry in record.payload.get("localAuthorizationList", []):
            status = (entry.get("idTagInfo") or {}).get("status")
            if entry.get("idTag") == tag and status == "Accepted":
                run.marks["list_sent"] = record.unique_id
    if _result(record, "SendLocalList", "in") and record.payload.get("status") == "Accepted":
        if run.marks.get("list_sent") == record.unique_id:
            return ScenarioEvent.REMEDIATION_SEEN
    if run.phase is Phase.REMEDIATING and _call(record, "StartTransaction", "in"):
        if record.payload.get("idTag") == tag:
            run.marks["start_id"] = record.unique_id
    if _result(record, "StartTransaction", "out") and record.unique_id == run.marks.get("start_id"):
        if (record.payload.get("idTagInfo") or {}).get("status") == "Accepted":
            return ScenarioEvent.RESOLUTION_SEEN
    return None


def _observe_slow_charging(run: ScenarioRun, record: MessageRecord) -> ScenarioEvent | None:
    event = _watch_reset_then(run, record)
    if event is not None:
        return event
    if "reset_at" not in run.marks or not _call(record, "MeterValues", "in"):
        return None
    power, offered = _power_and_offered(record.payload)
    if power is not None and offered and power >= 0.5 * offered:
        return ScenarioEvent.RESOLUTION_SEEN
    return None


def _power_and_offered(payload: dict[str, Any]) -> tuple[float | None, float | None]:
    from ocpp.v16 import call

    from libv4e.csms._registry import MeterReading, read_meter_values
    from libv4e.protocol._convert import from_json_payload

    reading = MeterReading()
    try:
        read_meter_values(from_json_payload(call.MeterValues, payload).meter_value, reading)
    except Exception:
        return None, None
    return reading.power_w, reading.offered_w


async def _prepare_auth_failure(csms: CentralSystem, params: dict[str, Any]) -> dict[str, Any]:
    """The card is valid at the CSMS (listed Accepted); the charger is told the CSMS's
    list version so that its corrupted list can be older."""
    from libv4e.csms._auth import IdTag

    tag = params.setdefault("id_tag", DEFAULT_ID_TAG)
    entry = csms.auth.get(tag)
    if entry is None or entry.status != "Accepted":
        await csms.upsert_tag(IdTag(tag, "Accepted"))
    params["list_version"] = csms.auth.version
    return params


SESSION_START_FAILURE = ScenarioSpec(
    name="session_start_failure",
    title="Session does not start",
    driver_says="It says it's available but nothing happens.",
    description="The charger reports Available and accepts start requests, but never sends "
    "StartTransaction and delivers no energy.",
    remediation="Soft reset the charger, then start the session again.",
    observe=_observe_session_start_failure,
    defaults={"connector_id": 1},
)
STUCK_CONNECTOR = ScenarioSpec(
    name="stuck_connector",
    title="Cable locked after charging",
    driver_says="It won't unlock, I can't unplug.",
    description="After the session ends the connector stays locked: StatusNotification with "
    "error code ConnectorLockFailure.",
    remediation="UnlockConnector on that connector.",
    observe=_observe_stuck_connector,
    defaults={
        "connector_id": 1,
        "id_tag": DEFAULT_ID_TAG,
        "start_session": True,
        "session_seconds": 2,
    },
)
OFFLINE_CHARGER = ScenarioSpec(
    name="offline_charger",
    title="Charger offline",
    driver_says="The charger is offline.",
    description="The charger stops sending heartbeats (mode 'silent': the connection stays "
    "open but nothing comes; mode 'dead': the socket drops and it stays away for "
    "recover_after seconds).",
    remediation="Hard reset and wait for BootNotification; if it does not come back in "
    "time, file a support ticket.",
    observe=_observe_offline_charger,
    defaults={"mode": "silent", "recover_after": 60},
)
AUTH_FAILURE = ScenarioSpec(
    name="auth_failure",
    title="Card rejected",
    driver_says="It keeps saying my card is invalid.",
    description="The charger's local authorization list is corrupted and older than the "
    "CSMS's: it refuses the driver's valid card and reports LocalListConflict.",
    remediation="send_local_list with the card Accepted, then a reset; the driver tries again.",
    observe=_observe_auth_failure,
    defaults={"id_tag": DEFAULT_ID_TAG, "connector_id": 1},
    prepare=_prepare_auth_failure,
)
SLOW_CHARGING = ScenarioSpec(
    name="slow_charging",
    title="Charging very slowly",
    driver_says="Charging is very slow.",
    description="The charger delivers about 1.4 kW although it offers 22 kW (Power.Offered).",
    remediation="Explain load sharing, soft reset, start again; power returns to normal.",
    observe=_observe_slow_charging,
    defaults={"connector_id": 1, "id_tag": DEFAULT_ID_TAG, "start_session": True},
)

DEFAULT_SCENARIOS: tuple[ScenarioSpec, ...] = (
    SESSION_START_FAILURE,
    STUCK_CONNECTOR,
    OFFLINE_CHARGER,
    AUTH_FAILURE,
    SLOW_CHARGING,
)


class ScenarioManager:
    """Starts, observes and clears scenarios on a :class:`CentralSystem`'s chargers."""

    def __init__(
        self, csms: CentralSystem, specs: Iterable[ScenarioSpec] = DEFAULT_SCENARIOS
    ) -> None:
        self.csms = csms
        self.specs: dict[str, ScenarioSpec] = {}
        self.runs: list[ScenarioRun] = []
        self._unreachable: dict[str, float] = {}
        """cp_id → trio time until which the sandbox refuses its reconnections (dead mode)."""
        for spec in specs:
            self.register(spec)
        csms.add_observer(self._observe)
        self._next_admit = csms.extra_admit
        csms.extra_admit = self._admit

    async def _admit(self, request: ConnectionRequest) -> Refusal | None:
        """offline_charger dead mode: the charger's network is down until the fault is
        cleared or ``recover_after`` has passed (the charger keeps knocking)."""
        until = self._unreachable.get(request.cp_id)
        if until is not None:
            if trio.current_time() < until:
                return Refusal(503, "offline_charger (dead mode): unreachable")
            del self._unreachable[request.cp_id]
        if self._next_admit is not None:
            return await self._next_admit(request)
        return None

    def register(self, spec: ScenarioSpec) -> None:
        """Make ``spec`` available (replacing one of the same name)."""
        self.specs[spec.name] = spec

    def active(self, cp_id: str | None = None) -> list[ScenarioRun]:
        """Runs in progress (on ``cp_id``, if given)."""
        return [r for r in self.runs if r.active and cp_id in (None, r.cp_id)]

    async def trigger(
        self, name: str, cp_id: str, params: dict[str, Any] | None = None
    ) -> ScenarioRun:
        """Start scenario ``name`` on ``cp_id``: the fault is started in the charger.

        Raises :class:`ScenarioError` (404 unknown scenario, 409 charger not connected or
        the scenario already active there, 502 the charger refused the fault).
        """
        spec = self.specs.get(name)
        if spec is None:
            raise ScenarioError("unknown_scenario", f"unknown scenario {name!r}")
        if self.csms.connection(cp_id) is None:
            raise ScenarioError("charger_not_connected", f"charge point {cp_id} is not connected")
        if any(r.spec.name == name for r in self.active(cp_id)):
            raise ScenarioError("scenario_active", f"{name} is already active on {cp_id}")
        merged = {**spec.defaults, **(params or {})}
        if spec.prepare is not None:
            merged = await spec.prepare(self.csms, merged)
        run = ScenarioRun(spec, cp_id, merged)
        try:
            result = await self.csms.send(cp_id, fault_start_request(name, merged))
        except RemoteCallError as exc:
            raise ScenarioError(
                "fault_refused",
                f"{cp_id} answered the {name} fault with CallError "
                f"{exc.code}; does it implement the Voice4EVs fault protocol?",
            ) from exc
        except (CallTimeoutError, ConnectionLostError, ChargerNotConnectedError) as exc:
            raise ScenarioError(
                "charger_timeout", f"{cp_id} did not take the fault: {exc}"
            ) from exc
        if str(result.status) != "Accepted":
            raise ScenarioError(
                "fault_refused",
                f"{cp_id} refused the {name} fault "
                f"({result.status}); does it implement the Voice4EVs fault "
                "protocol?",
            )
        run.fire(ScenarioEvent.TRIGGER, self.csms.clock(), "fault started")
        self.runs.append(run)
        if name == "offline_charger" and merged.get("mode") == "dead":
            seconds = float(merged.get("recover_after", 60))
            self._unreachable[cp_id] = trio.current_time() + seconds
        return run

    async def clear(self, *, reconnect_timeout: float = 5.0) -> list[ScenarioRun]:
        """Put the sandbox back to a known-good state: end every active scenario, let dead
        chargers back in (waiting up to ``reconnect_timeout`` for them), and send every
        connected charger a full FaultClear (the simulator then restores its card list,
        stops sessions, unlocks and reports every connector Available / NoError)."""
        cleared = []
        returning = set(self._unreachable)
        self._unreachable.clear()
        for run in self.active():
            run.fire(ScenarioEvent.CLEAR, self.csms.clock(), "cleared")
            cleared.append(run)
        if returning:
            await self._wait_for_boots(returning, reconnect_timeout)
        for cp_id in sorted(set(self.csms.connected_ids)):
            if self.csms.connection(cp_id) is not None:
                try:
                    await self.csms.send(cp_id, fault_clear_request(), timeout=5)
                except Exception as exc:  # a charger without the protocol: nothing to clear
                    log.info("clearing faults on %s: %s", cp_id, exc)
        return cleared

    async def _wait_for_boots(self, cp_ids: set[str], timeout: float) -> None:
        """Wait (up to ``timeout``) until each of ``cp_ids`` not connected has booted."""
        with trio.move_on_after(timeout):
            async with self.csms.subscribe() as received:
                waiting = {cp for cp in cp_ids if self.csms.connection(cp) is None}
                async for record in received:
                    if not waiting:
                        break
                    if record.action == "BootNotification" and record.message_type == 3:
                        waiting.discard(record.cp_id)
                    if not waiting:
                        break

    def escalated(self, cp_id: str, scenario: str | None) -> list[ScenarioRun]:
        """A ticket was filed for ``cp_id``: escalate its matching active runs."""
        moved = []
        for run in self.active(cp_id):
            if scenario in (None, run.spec.name):
                run.fire(ScenarioEvent.ESCALATE, self.csms.clock(), "ticket filed")
                moved.append(run)
        return moved

    def _observe(self, record: MessageRecord) -> None:
        for run in self.active(record.cp_id):
            event = run.spec.observe(run, record)
            if event is not None:
                run.fire(event, record.at, f"{record.direction} {record.action}")

    def catalog(self) -> list[dict[str, Any]]:
        """The scenarios with where each is active (for GET /demo/scenarios)."""
        out = []
        for spec in self.specs.values():
            runs = [r for r in self.runs if r.spec.name == spec.name]
            out.append(
                {
                    **spec.as_dict(),
                    "active_on": [r.cp_id for r in runs if r.active],
                    "runs": [r.as_dict() for r in runs[-5:]],
                }
            )
        return out
