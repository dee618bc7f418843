"""The rules of the diagnosis: offline, connector status and error codes, starts without
StartTransaction, slow power, refused cards (:mod:`._card`) and, when nothing was seen,
what to try next. Every ``say`` is a :class:`~._voice.Line` and every note a set of facts:
the apps word them."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import trio
from ocpp.v16 import call, enums

from libv4e._errors import CallTimeoutError, ConnectionLostError, RemoteCallError
from libv4e.csms._central import ChargerNotConnectedError
from libv4e.csms._registry import ChargePointState, ConnectorState
from libv4e.protocol._session import MessageType
from libv4e.scenarios._card import card_findings
from libv4e.scenarios._findings import (
    Action,
    ActionKind,
    DiagnosisCheck,
    DiagnosisOptions,
    Evidence,
    EvidenceKind,
    Finding,
    FindingCode,
    Pending,
)
from libv4e.scenarios._impact import stops_others
from libv4e.scenarios._resolved import RESOLVED_POWER_RATIO, energy_above, power_normal
from libv4e.scenarios._voice import Line, Say
from libv4e.scenarios._window import EvidenceWindow, is_message
from libv4e.transport._connection import Direction, MessageRecord

if TYPE_CHECKING:
    from libv4e.csms._central import CentralSystem

LOW_POWER_RATIO = 0.25
"""Delivered power below this share of the offered power counts as slow charging."""

IN_SESSION = frozenset({"Charging", "SuspendedEV", "SuspendedEVSE"})
IDLE = frozenset({"Available", "Preparing", "Finishing"})

_ERROR_LINES = {
    # error code → the driver's line (others: Say.FAULT_GENERIC)
    "HighTemperature": Say.FAULT_HIGH_TEMPERATURE,
    "OverCurrentFailure": Say.FAULT_OVER_CURRENT,
    "OverVoltage": Say.FAULT_VOLTAGE,
    "UnderVoltage": Say.FAULT_VOLTAGE,
    "GroundFailure": Say.FAULT_GROUND,
    "PowerMeterFailure": Say.FAULT_POWER_METER,
    "EVCommunicationError": Say.FAULT_EV_COMMUNICATION,
    "ReaderFailure": Say.FAULT_READER,
}

SAFETY_ERRORS = frozenset({"GroundFailure"})
"""Error codes of a safety fault: a technician inspects it; never reset or unlock it away."""


class Diagnoser:
    """The diagnosis of one charger: the rules over its evidence window (:attr:`window`),
    each adding findings or things still pending."""

    def __init__(self, csms: CentralSystem, cp_id: str, options: DiagnosisOptions) -> None:
        self.csms, self.cp_id, self.options = csms, cp_id, options
        self.window = EvidenceWindow(csms, cp_id, options)
        self.now = self.window.now
        self.findings: list[Finding] = []
        self.pending: list[Pending] = []
        self.checks: list[DiagnosisCheck] = []
        self.unlocked: dict[int, MessageRecord] = {}
        """connector → the UnlockConnector answered Unlocked in the window."""
        self.failed_starts: dict[int, int] = {}
        """connector → accepted starts in the window that brought no session."""
        self.working: set[int] = set()
        """Connectors where the driver's session was seen delivering energy."""

    # -- running ----------------------------------------------------------------------------

    async def run(self, state: ChargePointState) -> None:
        await self.window.load()
        if await self.offline(state):
            return
        if self.options.probe:
            await self.window.load()  # the probe's answers are evidence too
        wanted = self.options.connector_id
        connectors = sorted(
            (c for c in state.connectors.values() if wanted in (None, c.connector_id)),
            key=lambda c: c.connector_id,
        )
        if wanted is not None and wanted not in state.connectors:
            connectors = [ConnectorState(wanted)]  # never reported (not added to the registry)
        self.checks += [
            DiagnosisCheck.CONNECTION,
            DiagnosisCheck.STATUS,
            DiagnosisCheck.STARTS,
            DiagnosisCheck.AUTHORIZATION,
            DiagnosisCheck.POWER,
        ]
        c0 = ConnectorState(0)
        zero = state.connectors.get(0)
        if zero is not None and wanted is not None:
            self.connector_status(zero)
        for connector in connectors:
            self.connector_status(connector)
        tested = {c.connector_id: False for c in connectors if c.connector_id}
        for connector in connectors:
            if connector.connector_id:
                tested[connector.connector_id] = await self.connector(connector)
        self.auth_failure(state)
        untested = [cid for cid, ok in tested.items() if not ok]
        if not tested:  # no connector reported yet: nothing seen working
            untested = [wanted or 1]
        failed = [cid for cid, n in self.failed_starts.items() if n >= 2]
        if failed:  # never a third start: inconclusive, escalate
            self.findings = [f for f in self.findings if f.connector_id not in (*failed, None)]
            self.findings = [f for f in self.findings if f.code != FindingCode.AUTH_FAILURE]
            if not self.findings:
                self.pending.clear()
                self.escalation(failed[0])
                return
        idle = [cid for cid in untested if state.connectors.get(cid, c0).status in IDLE]
        if not self.findings and not self.pending and untested:
            self.untested((idle or untested)[0])
        if not self.findings and not self.pending:
            self.heartbeat_after_boot()

    def heartbeat_after_boot(self) -> None:
        """Back (see ``_resolved``): after a reset and the boot, a heartbeat before
        anything is healthy."""
        if not self.window.reset_before_boot or any(
            is_message(r, MessageType.CALL, "Heartbeat", Direction.IN) for r in self.window.records
        ):
            return
        self.pending.append(
            Pending(
                None,
                Line(Say.PENDING_RESTARTED),
                {"since": self.window.window_start},
                Action.of(
                    ActionKind.DIAGNOSE,
                    self.cp_id,
                    connector_id=self.options.connector_id,
                    id_tag=self.options.id_tag,
                    probe=True,
                ),
            )
        )

    # -- offline ----------------------------------------------------------------------------

    async def offline(self, state: ChargePointState) -> bool:
        cp = self.cp_id
        tolerance = self.csms.registry.offline_tolerance
        last_in = [r for r in self.window.records if r.direction == Direction.IN][-2:]
        evidence = [Evidence(r, EvidenceKind.LAST_RECEIVED) for r in last_in]
        ticket = Action.of(
            ActionKind.OPEN_TICKET, cp, scenario=FindingCode.OFFLINE_CHARGER
        ).as_fallback()
        if not state.connected or not self.csms.reachable(cp):
            since = state.disconnected_at or state.last_seen
            evidence.append(Evidence(None, EvidenceKind.DISCONNECTED, {"since": since}))
            # facts: connected (False), since (None: unknown)
            self.findings.append(
                Finding(
                    FindingCode.OFFLINE_CHARGER,
                    Line(Say.OFFLINE_DISCONNECTED),
                    None,
                    {"connected": False, "since": since},
                    [Action.of(ActionKind.CHECK_CONNECTION, cp), ticket],
                    evidence,
                )
            )
            return True
        silence = state.silence(self.now) or 0.0
        interval = state.heartbeat_interval
        silent_too_long = silence > interval * tolerance
        unanswered = state.unresponsive_since is not None
        if not silent_too_long and not unanswered and self.options.probe:
            self.checks.append(DiagnosisCheck.HEARTBEAT_PROBE)
            unanswered = await self._heartbeat_probe()
        if silent_too_long or unanswered:
            # facts: connected (True), silence_s, heartbeat_interval_s, silent_too_long
            # (False: it accepted a request for a heartbeat but sent nothing)
            self.findings.append(
                Finding(
                    FindingCode.OFFLINE_CHARGER,
                    Line(Say.OFFLINE_SILENT),
                    None,
                    {
                        "connected": True,
                        "silence_s": silence,
                        "heartbeat_interval_s": interval,
                        "silent_too_long": silent_too_long,
                    },
                    [Action.of(ActionKind.RESET, cp, type="Hard"), ticket],
                    evidence,
                )
            )
            return True
        if silence > interval:
            wait = max(1.0, interval * tolerance - silence)
            self.pending.append(
                Pending(
                    None,
                    Line(Say.PENDING_QUIET_MOMENT),
                    {"silence_s": silence, "heartbeat_interval_s": interval, "wait_s": wait},
                    Action.of(ActionKind.DIAGNOSE, cp, probe=True),
                    round(wait, 1),
                )
            )
        return False

    def silent_since(self, since: MessageRecord | None = None) -> bool:
        """Whether nothing came from the charger on its own since the window opened (or
        since ``since``): then, before a start is suggested or a start is called failed,
        the probe asks it for a heartbeat (a silent charger accepts a start and ignores
        it). Adds that pending step; never when probing already."""
        if self.options.probe:
            return False
        after = (
            self.window.records
            if since is None
            else [r for r in self.window.records if r.at >= since.at]
        )
        if any(r.direction == Direction.IN and r.message_type == MessageType.CALL for r in after):
            return False
        cp = self.cp_id
        self.pending.append(
            Pending(
                None,
                Line(Say.PENDING_QUIET_PROBE),
                {"since": self.window.window_start, "window_reason": self.window.window_reason},
                Action.of(
                    ActionKind.DIAGNOSE,
                    cp,
                    connector_id=self.options.connector_id,
                    id_tag=self.options.id_tag,
                    probe=True,
                ),
            )
        )
        return True

    async def _heartbeat_probe(self) -> bool:
        """True when the charger accepts TriggerMessage(Heartbeat) but sends nothing."""
        async with self.csms.messages.subscribe() as received:
            try:
                result = await self.csms.send(
                    self.cp_id,
                    call.TriggerMessage(enums.MessageTrigger.heartbeat),
                    timeout=self.options.probe_timeout,
                )
            except RemoteCallError:
                return False  # it answered: alive, just without TriggerMessage
            except (CallTimeoutError, ConnectionLostError, ChargerNotConnectedError):
                return True  # no answer at all
            if result.status != enums.TriggerMessageStatus.accepted:
                return False
            with trio.move_on_after(self.options.probe_timeout):
                async for record in received:
                    if (
                        record.cp_id == self.cp_id
                        and record.direction == Direction.IN
                        and record.message_type == MessageType.CALL
                    ):
                        return False
        state = self.csms.registry.get(self.cp_id)
        if state is not None:
            state.unresponsive_since = self.csms.clock()
        return True

    # -- connector status -------------------------------------------------------------------

    def _last_status(self, connector_id: int) -> MessageRecord | None:
        found = None
        for r in self.all_status:
            if r.payload.get("connectorId") == connector_id:
                found = r
        return found

    @property
    def all_status(self) -> list[MessageRecord]:
        return [
            r
            for r in self.window.records
            if is_message(r, MessageType.CALL, "StatusNotification", Direction.IN)
        ]

    def connector_status(self, c: ConnectorState) -> None:
        """Any error code other than NoError, Faulted or Unavailable is a finding."""
        cp, cid = self.cp_id, c.connector_id
        if c.status == "Reserved" and c.error_code == "NoError":
            self.reserved(c)
            return
        if c.error_code == "NoError" and c.status not in ("Faulted", "Unavailable"):
            return
        if c.error_code == "LocalListConflict":
            return  # the card: auth_failure
        cited = self._last_status(cid)
        shown = {"status": c.status, "error_code": c.error_code}
        evidence = [Evidence(cited, EvidenceKind.STATUS, shown)]
        if cited is None:
            evidence = [Evidence(None, EvidenceKind.STATUS, {**shown, "since": c.timestamp})]
        # facts of every status finding: status, error_code, info, vendor_error_code (the
        # charger's words: data, never instructions), with connector_id 0 for the charger
        facts: dict[str, Any] = {
            **shown,
            "info": c.info or None,
            "vendor_error_code": c.vendor_error_code or None,
        }
        ticket = {"connector_id": cid, "error_code": c.error_code, "info": c.info or None}
        if c.error_code == "ConnectorLockFailure":
            self.findings.append(
                Finding(
                    FindingCode.STUCK_CONNECTOR,
                    Line(Say.STUCK_CONNECTOR, cid),
                    cid,
                    facts,
                    [Action.of(ActionKind.UNLOCK, cp, connector_id=cid)],
                    evidence,
                )
            )
        elif c.status == "Unavailable" and c.error_code == "NoError":
            self.findings.append(
                Finding(
                    FindingCode.CONNECTOR_UNAVAILABLE,
                    Line(Say.CONNECTOR_UNAVAILABLE, cid),
                    cid,
                    facts,
                    [
                        Action.of(
                            ActionKind.SET_AVAILABILITY, cp, connector_id=cid, type="Operative"
                        )
                    ],
                    evidence,
                )
            )
        elif c.error_code in SAFETY_ERRORS:
            self.findings.append(
                Finding(
                    FindingCode.SAFETY_FAULT,
                    Line(_ERROR_LINES.get(c.error_code, Say.FAULT_GENERIC), cid),
                    cid,
                    facts,
                    [
                        Action.of(
                            ActionKind.OPEN_TICKET, cp, scenario=FindingCode.SAFETY_FAULT, **ticket
                        )
                    ],
                    evidence,
                )
            )
        else:
            self.findings.append(
                Finding(
                    FindingCode.CONNECTOR_FAULT,
                    Line(_ERROR_LINES.get(c.error_code, Say.FAULT_GENERIC), cid),
                    cid,
                    facts,
                    [
                        Action.of(ActionKind.RESET, cp, type="Soft"),
                        Action.of(
                            ActionKind.OPEN_TICKET,
                            cp,
                            scenario=FindingCode.CONNECTOR_FAULT,
                            **ticket,
                        ).as_fallback(),
                    ],
                    evidence,
                )
            )

    def reserved(self, c: ConnectorState) -> None:
        """The driver's connector is reserved for another card: nothing is broken, and
        nothing should be done (a start there is refused, cancelling it takes the plug
        from whoever booked it)."""
        cid, tag = c.connector_id, self.options.id_tag
        if self.options.connector_id != cid:
            return
        holders = {
            r.id_tag
            for r in self.csms.reservations
            if r.cp_id == self.cp_id and r.connector_id in (cid, 0) and r.active
        }
        if tag is not None and tag in holders:
            return  # the driver's own reservation: a start with their card uses it
        self.findings.append(
            Finding(
                FindingCode.CONNECTOR_RESERVED,
                Line(Say.RESERVED, cid),
                cid,
                {"status": c.status},
                [],
                [Evidence(self._last_status(cid), EvidenceKind.STATUS, {"status": c.status})],
            )
        )

    # -- one connector: starts, sessions, power -----------------------------------------------

    async def connector(self, c: ConnectorState) -> bool:
        """Look at starts and power on ``c``; True when it was seen working in the window."""
        cid = c.connector_id
        if any(f.connector_id == cid for f in self.findings):
            return True  # a finding explains it
        start: MessageRecord | None = None
        worked = False
        own_meter_start: float | None = None  # the driver's session on cid, when started
        failed_starts = 0
        self.unlocked.pop(cid, None)
        for r in self.window.records:
            p = r.payload
            if is_message(
                r, MessageType.CALL, "RemoteStartTransaction", Direction.OUT
            ) and self.window.accepted(r):
                target = p.get("connectorId") or self.options.connector_id or 1
                if target == cid:
                    if start is not None:
                        failed_starts += 1
                    start = r
            elif (
                is_message(r, MessageType.CALL, "StartTransaction", Direction.IN)
                and p.get("connectorId") == cid
            ):
                start, failed_starts = None, 0
                own = self.options.id_tag in (None, p.get("idTag"))
                own_meter_start = p.get("meterStart") if own and self.window.accepted(r) else None
            elif (
                is_message(r, MessageType.CALL, "MeterValues", Direction.IN)
                and p.get("connectorId") == cid
            ):
                # seen working (see _resolved): the driver's session delivers energy
                if p.get("transactionId") is not None and energy_above(p, own_meter_start):
                    worked = True
            elif (
                is_message(r, MessageType.CALL, "UnlockConnector", Direction.OUT)
                and p.get("connectorId") == cid
            ):
                answer = self.window.answer(r)
                if answer is not None and answer.payload.get("status") == "Unlocked":
                    self.unlocked[cid] = r
            elif start is not None and self._refusal(r, start):
                start = None  # the card was refused: an authorization matter
                failed_starts += 1
        if start is not None and c.status in IDLE:
            waited = (self.now - start.at).total_seconds()
            if waited >= self.options.start_timeout:
                failed_starts += 1
            self.failed_starts[cid] = failed_starts
            self.start_failure(c, start)
            return True
        self.failed_starts[cid] = failed_starts
        if c.status in IN_SESSION:
            tx = self.csms.transactions.get(c.transaction_id) if c.transaction_id else None
            mine = tx is not None and self.options.id_tag in (None, tx.id_tag)
            normal = await self.power(c)
            if c.status != "Charging":
                return normal and mine  # paused by the car or the schedule: not a fault
            if normal and mine and not worked:
                self.pending.append(
                    Pending(
                        cid,
                        Line(Say.PENDING_ENERGY, cid),
                        {},
                        Action.of(
                            ActionKind.DIAGNOSE,
                            self.cp_id,
                            connector_id=cid,
                            id_tag=self.options.id_tag,
                            probe=True,
                        ),
                        2.0,
                    )
                )
            if normal and worked and mine:
                self.working.add(cid)
            return normal and worked  # delivering: power normal and energy rising

        if cid in self.unlocked and c.status == "Available" and self.options.intent != "charge":
            return True  # released: the driver unplugs and leaves (see _resolved)
        return worked or (self.options.intent == "leave" and c.status in IDLE)

    @property
    def list_updated(self) -> bool:
        """Whether a SendLocalList was accepted in the window (a card fix)."""
        return any(
            is_message(r, MessageType.CALL, "SendLocalList", Direction.OUT)
            and self.window.accepted(r)
            for r in self.window.records
        )

    def _refusal(self, r: MessageRecord, start: MessageRecord) -> bool:
        tag = start.payload.get("idTag")
        if (
            is_message(r, MessageType.CALL, "Authorize", Direction.IN)
            and r.payload.get("idTag") == tag
        ):
            return not self.window.accepted(r)
        return (
            is_message(r, MessageType.CALL, "StatusNotification", Direction.IN)
            and r.payload.get("errorCode") == "LocalListConflict"
        )

    def start_failure(self, c: ConnectorState, start: MessageRecord) -> None:
        cp, cid = self.cp_id, c.connector_id
        waited = (self.now - start.at).total_seconds()
        tag = start.payload.get("idTag") or self.options.id_tag
        if waited < self.options.start_timeout:
            wait = max(0.5, self.options.start_timeout - waited)
            self.pending.append(
                Pending(
                    cid,
                    Line(Say.PENDING_START_WAIT, cid),
                    {"waited_s": waited, "wait_s": wait},
                    Action.of(ActionKind.DIAGNOSE, cp, connector_id=cid, id_tag=tag),
                    round(wait, 1),
                )
            )
            return
        if self.silent_since(start):
            return
        answer = self.window.answer(start)
        # facts: id_tag (None: unknown), requested_at, waited_s, status
        self.findings.append(
            Finding(
                FindingCode.SESSION_START_FAILURE,
                Line(Say.SESSION_START_FAILURE, cid),
                cid,
                {"id_tag": tag, "requested_at": start.at, "waited_s": waited, "status": c.status},
                [
                    *self.connector_restart(cid),
                    Action.of(ActionKind.START, cp, connector_id=cid, id_tag=tag),
                ],
                [
                    Evidence(start, EvidenceKind.START_REQUESTED),
                    Evidence(answer, EvidenceKind.ACCEPTED),
                    Evidence(None, EvidenceKind.NO_START, {"by": self.now, "status": c.status}),
                ],
            )
        )

    async def power(self, c: ConnectorState) -> bool:
        """A session runs on ``c``: True when power was seen normal, a finding when slow."""
        cp, cid = self.cp_id, c.connector_id
        if self.options.probe:
            await self._meter_probe(cid)
        samples = [
            r
            for r in self.window.records
            if is_message(r, MessageType.CALL, "MeterValues", Direction.IN)
            and r.payload.get("connectorId") == cid
        ][-3:]
        meter = c.meter
        offered = meter.offered_w
        if c.status != "Charging":
            return True  # the car (or the charger's schedule) paused it: not a fault
        if not samples or meter.power_w is None or not offered:
            self.pending.append(
                Pending(
                    cid,
                    Line(Say.PENDING_FIRST_READING, cid),
                    {"since": self.window.window_start},
                    Action.of(ActionKind.DIAGNOSE, cp, connector_id=cid, probe=True),
                    5.0,
                )
            )
            return False
        if power_normal(meter.power_w, offered):
            return True
        if meter.power_w >= LOW_POWER_RATIO * offered:
            self.pending.append(
                Pending(
                    cid,
                    Line(Say.PENDING_BELOW_FULL, cid),
                    {
                        "power_w": meter.power_w,
                        "offered_w": offered,
                        "normal_ratio": RESOLVED_POWER_RATIO,
                    },
                    Action.of(ActionKind.DIAGNOSE, cp, connector_id=cid, probe=True),
                    5.0,
                )
            )
            return False
        tag = self._tag_of(c.transaction_id) or self.options.id_tag
        # facts: power_w, offered_w
        self.findings.append(
            Finding(
                FindingCode.SLOW_CHARGING,
                Line(Say.SLOW_CHARGING, cid),
                cid,
                {"power_w": meter.power_w, "offered_w": offered},
                [
                    *self.restart_for(c),
                    Action.of(ActionKind.START, cp, connector_id=cid, id_tag=tag),
                ],
                [Evidence(r, EvidenceKind.METER_VALUES) for r in samples],
            )
        )
        return True

    def connector_restart(self, cid: int) -> list[Action]:
        """Restart one connector: Inoperative, then Operative (no other session touched)."""
        cp = self.cp_id
        return [
            Action.of(ActionKind.SET_AVAILABILITY, cp, connector_id=cid, type="Inoperative"),
            Action.of(ActionKind.SET_AVAILABILITY, cp, connector_id=cid, type="Operative"),
        ]

    def restart_for(self, c: ConnectorState) -> list[Action]:
        """A Soft reset, or when it would stop another driver's session, the connector's
        own session stopped and the connector restarted."""
        if not stops_others(self.csms, self.cp_id, self.options, c.connector_id):
            return [Action.of(ActionKind.RESET, self.cp_id, type="Soft")]
        stop = []
        if c.transaction_id is not None:
            stop = [Action.of(ActionKind.STOP, self.cp_id, transaction_id=c.transaction_id)]
        return [*stop, *self.connector_restart(c.connector_id)]

    def _tag_of(self, transaction_id: int | None) -> str | None:
        if transaction_id is None:
            return None
        tx = self.csms.transactions.get(transaction_id)
        return getattr(tx, "id_tag", None)

    async def _meter_probe(self, connector_id: int) -> None:
        async with self.csms.messages.subscribe() as received:
            result = await self.probe(
                call.TriggerMessage(enums.MessageTrigger.meter_values, connector_id)
            )
            if result is None or result.status != enums.TriggerMessageStatus.accepted:
                return
            with trio.move_on_after(self.options.probe_timeout):
                async for record in received:
                    if record.cp_id == self.cp_id and is_message(
                        record, MessageType.CALLRESULT, "MeterValues", Direction.OUT
                    ):
                        break
        await self.window.load()

    async def probe(self, payload: Any) -> Any:
        try:
            return await self.csms.send(self.cp_id, payload, timeout=self.options.probe_timeout)
        except (CallTimeoutError, RemoteCallError, ConnectionLostError, ChargerNotConnectedError):
            return None

    # -- the card ---------------------------------------------------------------------------

    def auth_failure(self, state: ChargePointState) -> None:
        """A card refused in the window, not contradicted by later telemetry."""
        self.findings += card_findings(self.window)
        if self.options.probe and any(f.code == FindingCode.AUTH_FAILURE for f in self.findings):
            self.checks.append(DiagnosisCheck.LIST_VERSION_PROBE)

    async def list_version_note(self) -> None:
        result = await self.probe(call.GetLocalListVersion())
        if result is None:
            return
        versions = {"charger_version": result.list_version, "csms_version": self.csms.auth.version}
        for f in self.findings:
            if f.code == FindingCode.AUTH_FAILURE:
                f.facts.update(versions)
                f.evidence.append(Evidence(None, EvidenceKind.LIST_VERSION, versions))

    # -- nothing seen -----------------------------------------------------------------------

    def escalation(self, cid: int) -> None:
        """Two accepted starts brought no session: a ticket, never a third start."""
        cp = self.cp_id
        self.pending.append(
            Pending(
                cid,
                Line(Say.PENDING_ESCALATE, cid),
                {"starts": self.failed_starts[cid], "since": self.window.window_start},
                Action.of(
                    ActionKind.OPEN_TICKET,
                    cp,
                    scenario=FindingCode.SESSION_START_FAILURE,
                    connector_id=cid,
                ),
            )
        )

    def untested(self, cid: int) -> None:
        cp, tag = self.cp_id, self.options.id_tag
        if self.failed_starts.get(cid, 0) >= 2:
            self.escalation(cid)
            return
        if cid in self.unlocked and self.options.intent != "charge":
            return  # the driver unplugs and leaves: no start unless they asked to charge
        if self.silent_since():
            return
        action = Action.of(ActionKind.START, cp, connector_id=cid, id_tag=tag)
        if tag is None:
            action = dataclasses.replace(action, needs=("id_tag",))
        self.pending.append(
            Pending(
                cid,
                Line(Say.PENDING_TRY_START, cid),
                {
                    "since": self.window.window_start,
                    "window_reason": self.window.window_reason,
                    "id_tag": tag,
                },
                action,
            )
        )
