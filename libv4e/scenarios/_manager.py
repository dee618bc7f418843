"""Fault scenarios as explicit state machines, driven by the OCPP messages the CSMS sees.

A :class:`ScenarioSpec` describes one scenario (the driver's words, the fault to start in
the charger, what counts as remediation and resolution); a :class:`ScenarioRun` is one
occurrence on one charger, moving through :data:`SCENARIO_TRANSITIONS`. The
:class:`ScenarioManager` starts and clears faults over OCPP (DataTransfer, see
``_faults``) and feeds every message to the active runs. Library users add scenarios by
registering more specs; the apps need no change.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import trio

from libv4e._errors import CallTimeoutError, ConnectionLostError, RemoteCallError
from libv4e.csms._central import ChargerNotConnectedError
from libv4e.protocol._session import MessageType
from libv4e.scenarios._catalog import AUTH_FAILURE as AUTH_FAILURE
from libv4e.scenarios._catalog import DEFAULT_SCENARIOS as DEFAULT_SCENARIOS
from libv4e.scenarios._catalog import OFFLINE_CHARGER as OFFLINE_CHARGER
from libv4e.scenarios._catalog import SESSION_START_FAILURE as SESSION_START_FAILURE
from libv4e.scenarios._catalog import SLOW_CHARGING as SLOW_CHARGING
from libv4e.scenarios._catalog import STUCK_CONNECTOR as STUCK_CONNECTOR
from libv4e.scenarios._faults import fault_clear_request, fault_start_request
from libv4e.scenarios._machines import ACTIVE_PHASES as ACTIVE_PHASES
from libv4e.scenarios._machines import SCENARIO_TRANSITIONS as SCENARIO_TRANSITIONS
from libv4e.scenarios._machines import Phase as Phase
from libv4e.scenarios._machines import ScenarioError as ScenarioError
from libv4e.scenarios._machines import ScenarioEvent as ScenarioEvent
from libv4e.scenarios._machines import ScenarioRun as ScenarioRun
from libv4e.scenarios._machines import ScenarioSpec as ScenarioSpec
from libv4e.transport._connection import MessageRecord
from libv4e.transport._websocket import ConnectionRequest, Refusal

if TYPE_CHECKING:
    from libv4e.csms._central import CentralSystem

log = logging.getLogger("libv4e.scenarios")


def _where(params: dict[str, Any]) -> int | None:
    """The connector a run plays on (None: the whole charger)."""
    cid = params.get("connector_id")
    return None if cid is None else int(cid)


def _overlap(a: int | None, b: int | None) -> bool:
    return a is None or b is None or a == b


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
        csms.messages.add_observer(self._observe)
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

        Runs are per (charger, connector): the same scenario may run on each connector
        (a scenario without ``connector_id``, e.g. offline_charger, covers the whole
        charger). A run still ``remediating`` where the new one plays is ended first
        (phase ``cleared``, noted "superseded by ..."); one still ``active`` there with the
        same scenario is a conflict.

        Raises :class:`ScenarioError` (404 unknown scenario, 409 charger not connected or
        the scenario already active on that connector, 502 the charger refused the fault).
        """
        spec = self.specs.get(name)
        if spec is None:
            raise ScenarioError("unknown_scenario", f"unknown scenario {name!r}")
        if self.csms.connection(cp_id) is None:
            raise ScenarioError("charger_not_connected", f"charge point {cp_id} is not connected")
        merged = {**spec.defaults, **(params or {})}
        where = _where(merged)
        overlapping = [r for r in self.active(cp_id) if _overlap(_where(r.params), where)]
        for run in overlapping:
            if run.spec.name == name and run.phase is not Phase.REMEDIATING:
                at = f" connector {where}" if where is not None else ""
                raise ScenarioError("scenario_active", f"{name} is already active on {cp_id}{at}")
        for run in overlapping:
            if run.phase is Phase.REMEDIATING:
                run.fire(
                    ScenarioEvent.CLEAR,
                    self.csms.clock(),
                    f"superseded by a new trigger of {name}"
                    + (f" on connector {where}" if where is not None else ""),
                )
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
            async with self.csms.messages.subscribe() as received:
                waiting = {cp for cp in cp_ids if self.csms.connection(cp) is None}
                async for record in received:
                    if not waiting:
                        break
                    if (
                        record.action == "BootNotification"
                        and record.message_type == MessageType.CALLRESULT
                    ):
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
