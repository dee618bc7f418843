"""Diagnosis for agents: what is wrong with a charger, inferred only from OCPP.

A diagnosis is evidence with a time window. The window opens at the charger's last
BootNotification or the last accepted Voice4EVs ``FaultStart`` / ``FaultClear``
DataTransfer (a sandbox reset, visible on the wire); older messages are not evidence of
the present. Every finding cites the messages it rests on (unique id and time) and
expires when later telemetry contradicts it: a StartTransaction, an accepted card, a
newer local list with the card Accepted, a StatusNotification with ``NoError``.

The answer is one of three verdicts, per connector and then for the charger:

- ``fault_found``: at least one finding, each with ``say`` (≤ 20 words for the driver),
  ``agent_note`` (for the LLM) and ``actions`` as MCP tool calls ``{tool, arguments}``;
- ``inconclusive``: nothing wrong seen, but something was not observed yet; ``next_action``
  is the one tool call that would reveal more (``retry_after_s`` when it is just waiting);
- ``healthy``: every connector asked about was seen working in the window.

By default the diagnosis has no side effects: it reads the registry and the message log
and never blocks. ``probe=True`` lets it send TriggerMessage / GetLocalListVersion and
wait up to ``probe_timeout`` for their answers. Which scenario was triggered is never
read: a real charger with the same messages gets the same diagnosis.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any

import trio
from ocpp.v16 import call, enums

from libv4e._errors import CallTimeoutError, ConnectionLostError, RemoteCallError
from libv4e.csms._central import ChargerNotConnectedError
from libv4e.csms._registry import ChargePointState, ConnectorState, iso
from libv4e.protocol._session import MESSAGE_KINDS
from libv4e.transport._connection import MessageRecord

if TYPE_CHECKING:
    from libv4e.csms._central import CentralSystem

LOW_POWER_RATIO = 0.25
"""Delivered power below this share of the offered power counts as slow charging."""

FAULT_VENDOR_ID = "Voice4EVs"
IN_SESSION = frozenset({"Charging", "SuspendedEV", "SuspendedEVSE"})
IDLE = frozenset({"Available", "Preparing", "Finishing"})

Action = dict[str, Any]
"""``{"tool": <MCP tool name>, "arguments": {...}}`` (``needs``: arguments to ask for)."""


def tool_call(tool: str, **arguments: Any) -> Action:
    """An action: an MCP tool call (arguments that are None are left out)."""
    return {"tool": tool, "arguments": {k: v for k, v in arguments.items() if v is not None}}


@dataclasses.dataclass
class Finding:
    """One problem: a code, words for the driver and the agent, evidence, what to do."""

    code: str
    title: str
    say: str
    agent_note: str
    connector_id: int | None = None
    actions: list[Action] = dataclasses.field(default_factory=list)
    evidence: list[tuple[MessageRecord | None, str]] = dataclasses.field(default_factory=list)
    """(message, note); None for a fact that is not one message (e.g. a disconnection)."""

    @property
    def summary(self) -> str:
        """The driver's line (kept for older clients)."""
        return self.say

    def as_dict(self, *, evidence: bool = False) -> dict[str, Any]:
        """A JSON-ready dict: compact (message ids cited) or with the full evidence."""
        out: dict[str, Any] = {
            "code": self.code,
            "title": self.title,
            "connector_id": self.connector_id,
            "say": self.say,
            "agent_note": self.agent_note,
            "actions": self.actions,
            "cites": [_cite(r) for r, _ in self.evidence if r is not None],
        }
        if evidence:
            out["evidence"] = [_evidence(r, note) for r, note in self.evidence]
        return out


@dataclasses.dataclass
class Pending:
    """Something not observed yet, and the one action that would reveal it."""

    connector_id: int | None
    say: str
    agent_note: str
    next_action: Action
    retry_after_s: float | None = None


@dataclasses.dataclass(frozen=True)
class DiagnosisOptions:
    """Hints from the driver, whether to probe, and how long a start may take."""

    id_tag: str | None = None
    connector_id: int | None = None
    probe: bool = False
    """Send TriggerMessage / GetLocalListVersion to the charger (off by default)."""
    probe_timeout: float = 2.0
    start_timeout: float = 5.0
    """A start request with no StartTransaction for this long is a failed start; before
    that the diagnosis is inconclusive ("ask again in N s"), it never waits."""
    evidence: bool = False
    """Include every cited message in full (payloads), not just ids and times."""


def _cite(record: MessageRecord) -> dict[str, Any]:
    return {"id": record.unique_id, "at": iso(record.at), "action": record.action}


def _evidence(record: MessageRecord | None, note: str) -> dict[str, Any]:
    if record is None:
        return {"note": note}
    kind = MESSAGE_KINDS.get(record.message_type, "?")
    return {
        "id": record.unique_id,
        "at": iso(record.at),
        "direction": record.direction,
        "type": kind,
        "action": record.action,
        "payload": record.payload,
        "note": note,
    }


def _is(record: MessageRecord, kind: int, action: str, direction: str) -> bool:
    return (record.message_type, record.action, record.direction) == (kind, action, direction)


def _clock(at: dt.datetime) -> str:
    return at.strftime("%H:%M:%S")


_ERROR_WORDS = {
    "HighTemperature": "The charger has overheated and paused charging. It needs to cool down "
    "before it can restart.",
    "OverCurrentFailure": "The charger stopped because it drew too much current. A restart "
    "usually clears this.",
    "OverVoltage": "The charger stopped because of a problem with the grid voltage. A restart "
    "may clear this.",
    "UnderVoltage": "The charger stopped because of a problem with the grid voltage. A restart "
    "may clear this.",
    "GroundFailure": "The charger detected an electrical safety problem and stopped. A "
    "technician should check it.",
    "PowerMeterFailure": "The charger's meter has a problem, so it can't charge right now.",
    "EVCommunicationError": "The charger can't talk to your car. Please unplug, plug in again "
    "and retry.",
    "ReaderFailure": "The card reader isn't working. I can start the charge for you remotely.",
}
_GENERIC_FAULT = "This plug reports a fault and can't charge right now. A restart may clear it."


class _Diagnoser:
    def __init__(self, csms: CentralSystem, cp_id: str, options: DiagnosisOptions) -> None:
        self.csms, self.cp_id, self.options = csms, cp_id, options
        self.findings: list[Finding] = []
        self.pending: list[Pending] = []
        self.checks: list[str] = []
        self.records: list[MessageRecord] = []
        self.answers: dict[tuple[str, str], MessageRecord] = {}
        self.window_start: dt.datetime | None = None
        self.window_reason = "no message kept"
        self.now = csms.clock()

    # -- the window -------------------------------------------------------------------------

    def answer(self, record: MessageRecord) -> MessageRecord | None:
        """The CALLRESULT / CALLERROR answering the CALL ``record``."""
        return self.answers.get((record.unique_id, record.direction))

    def accepted(self, record: MessageRecord) -> bool:
        answer = self.answer(record)
        if answer is None or answer.message_type != 3:
            return False
        payload = answer.payload
        status = payload.get("status") or (payload.get("idTagInfo") or {}).get("status")
        return status == "Accepted"

    async def load(self) -> None:
        everything = await self.csms.recent_messages(self.cp_id)
        for r in everything:
            if r.message_type in (3, 4):
                self.answers[(r.unique_id, "out" if r.direction == "in" else "in")] = r
        start = 0
        self.window_reason = "oldest message kept" if everything else "no message kept"
        for i, r in enumerate(everything):
            if _is(r, 2, "BootNotification", "in"):
                start, self.window_reason = i, "charger booted"
            elif (
                _is(r, 2, "DataTransfer", "out")
                and r.payload.get("vendorId") == FAULT_VENDOR_ID
                and r.payload.get("messageId") in ("FaultStart", "FaultClear")
                and self.accepted(r)
            ):
                start, self.window_reason = i, "sandbox fault started or cleared"
        self.records = everything[start:]
        self.window_start = self.records[0].at if self.records else None

    def since(self) -> str:
        return _clock(self.window_start) if self.window_start else "now"

    # -- running ----------------------------------------------------------------------------

    async def run(self, state: ChargePointState) -> None:
        await self.load()
        if await self.offline(state):
            return
        wanted = self.options.connector_id
        connectors = sorted(
            (c for c in state.connectors.values() if wanted in (None, c.connector_id)),
            key=lambda c: c.connector_id,
        )
        if wanted is not None and wanted not in state.connectors:
            connectors = [ConnectorState(wanted)]  # never reported (not added to the registry)
        self.checks += [
            "connection and heartbeat timing",
            "connector status and error codes",
            "start requests without StartTransaction",
            "authorization answers",
            "delivered vs offered power",
        ]
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
        if not self.findings and not self.pending and untested:
            self.untested(untested[0])

    # -- offline ----------------------------------------------------------------------------

    async def offline(self, state: ChargePointState) -> bool:
        cp = self.cp_id
        tolerance = self.csms.registry.offline_tolerance
        last_in = [r for r in self.records if r.direction == "in"][-2:]
        evidence: list[tuple[MessageRecord | None, str]] = [
            (r, "last message received") for r in last_in
        ]
        ticket = tool_call(
            "create_ticket",
            cp_id=cp,
            scenario="offline_charger",
            summary=f"{cp} is offline and did not recover after a hard reset",
        )
        if not state.connected or not self.csms.reachable(cp):
            since = state.disconnected_at or state.last_seen
            evidence.append((None, f"disconnected since {iso(since) if since else 'unknown'}"))
            self.findings.append(
                Finding(
                    "offline_charger",
                    "Charger offline",
                    "The charger isn't connected to our network, so I can't reach it remotely "
                    "right now.",
                    f"{cp} has no connection"
                    + (f" since {_clock(since)}" if since else "")
                    + ". Commands cannot reach it. Check again with get_charger; if it stays "
                    "away, file a ticket.",
                    None,
                    [tool_call("get_charger", cp_id=cp), ticket],
                    evidence,
                )
            )
            return True
        silence = state.silence(self.now) or 0.0
        interval = state.heartbeat_interval
        silent_too_long = silence > interval * tolerance
        unanswered = state.unresponsive_since is not None
        if not silent_too_long and not unanswered and self.options.probe:
            self.checks.append("TriggerMessage Heartbeat probe")
            unanswered = await self._heartbeat_probe()
        if silent_too_long or unanswered:
            why = (
                f"nothing received for {silence:.0f} s (heartbeat interval {interval} s)"
                if silent_too_long
                else "it accepted a request for a heartbeat but sent nothing"
            )
            self.findings.append(
                Finding(
                    "offline_charger",
                    "Charger offline",
                    "The charger has stopped talking to our network. I'll restart it "
                    "remotely; that takes a minute.",
                    f"{cp} is connected but silent: {why}. Hard reset, wait for its "
                    "BootNotification and heartbeats; if it does not come back, file a ticket.",
                    None,
                    [tool_call("reset_charger", cp_id=cp, type="Hard"), ticket],
                    evidence,
                )
            )
            return True
        if silence > interval:
            wait = max(1.0, interval * tolerance - silence)
            self.pending.append(
                Pending(
                    None,
                    "The charger has gone quiet for a moment. Give me a few seconds to check "
                    "again.",
                    f"{cp} last spoke {silence:.0f} s ago (heartbeat interval {interval} s); "
                    f"not yet past the offline tolerance. Ask again in {wait:.0f} s, or "
                    "diagnose with probe=true to ask it for a heartbeat.",
                    tool_call("diagnose_charger", cp_id=cp, probe=True),
                    round(wait, 1),
                )
            )
        return False

    async def _heartbeat_probe(self) -> bool:
        """True when the charger accepts TriggerMessage(Heartbeat) but sends nothing."""
        async with self.csms.subscribe() as received:
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
                        and record.direction == "in"
                        and record.message_type == 2
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
        return [r for r in self.records if _is(r, 2, "StatusNotification", "in")]

    def connector_status(self, c: ConnectorState) -> None:
        """Any error code other than NoError, Faulted or Unavailable is a finding."""
        cp, cid = self.cp_id, c.connector_id
        if c.error_code == "NoError" and c.status not in ("Faulted", "Unavailable"):
            return
        if c.error_code == "LocalListConflict":
            return  # the card: auth_failure
        cited = self._last_status(cid)
        evidence: list[tuple[MessageRecord | None, str]] = [
            (cited, f"status {c.status}, error {c.error_code}")
        ]
        if cited is None:
            since = iso(c.timestamp) if c.timestamp else "unknown"
            evidence = [(None, f"status {c.status}, error {c.error_code} since {since}")]
        where = "the charger" if cid == 0 else f"connector {cid}"
        detail = f"{c.error_code}" + (f" ({c.info})" if c.info else "")
        if c.error_code == "ConnectorLockFailure":
            self.findings.append(
                Finding(
                    "stuck_connector",
                    "Cable locked",
                    "The cable lock didn't release after charging. I can unlock it remotely for "
                    "you.",
                    f"{cp} {where} reports {c.status} with ConnectorLockFailure: the lock did "
                    "not release. Call unlock_connector; expect Unlocked, then Available/NoError.",
                    cid,
                    [tool_call("unlock_connector", cp_id=cp, connector_id=cid)],
                    evidence,
                )
            )
        elif c.status == "Unavailable" and c.error_code == "NoError":
            self.findings.append(
                Finding(
                    "connector_unavailable",
                    "Switched off",
                    "This plug has been switched off remotely. I can switch it back on for you.",
                    f"{cp} {where} is Unavailable (Inoperative). change_availability Operative "
                    "brings it back.",
                    cid,
                    [
                        tool_call(
                            "change_availability", cp_id=cp, connector_id=cid, type="Operative"
                        )
                    ],
                    evidence,
                )
            )
        else:
            self.findings.append(
                Finding(
                    "connector_fault",
                    "Charger fault",
                    _ERROR_WORDS.get(c.error_code, _GENERIC_FAULT),
                    f"{cp} {where} reports {c.status} with error {detail}"
                    + (f", vendor code {c.vendor_error_code}" if c.vendor_error_code else "")
                    + ". A Soft reset may clear it; if it comes back, file a ticket.",
                    cid,
                    [
                        tool_call("reset_charger", cp_id=cp, type="Soft"),
                        tool_call(
                            "create_ticket",
                            cp_id=cp,
                            scenario="connector_fault",
                            summary=f"{cp} {where}: {detail}",
                        ),
                    ],
                    evidence,
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
        for r in self.records:
            if _is(r, 2, "RemoteStartTransaction", "out") and self.accepted(r):
                target = r.payload.get("connectorId") or self.options.connector_id or 1
                if target == cid:
                    start = r
            elif _is(r, 2, "StartTransaction", "in") and r.payload.get("connectorId") == cid:
                start = None
                worked = worked or self.accepted(r)
            elif start is not None and self._refusal(r, start):
                start = None  # the card was refused: an authorization matter
        if start is not None and c.status in IDLE:
            self.start_failure(c, start)
            return True
        if c.status in IN_SESSION:
            return await self.power(c) or worked
        return worked

    def _refusal(self, r: MessageRecord, start: MessageRecord) -> bool:
        tag = start.payload.get("idTag")
        if _is(r, 2, "Authorize", "in") and r.payload.get("idTag") == tag:
            return not self.accepted(r)
        return (
            _is(r, 2, "StatusNotification", "in")
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
                    "I've asked the charger to start. Give it a few seconds and I'll check again.",
                    f"Waiting for the charger: RemoteStartTransaction on connector {cid} was "
                    f"accepted {waited:.0f} s ago and no StartTransaction yet. Ask again in "
                    f"{wait:.0f} s.",
                    tool_call("diagnose_charger", cp_id=cp, connector_id=cid, id_tag=tag),
                    round(wait, 1),
                )
            )
            return
        answer = self.answer(start)
        self.findings.append(
            Finding(
                "session_start_failure",
                "Session does not start",
                "The charger accepted the start request but charging never began. A restart "
                "usually fixes this.",
                f"{cp} accepted RemoteStartTransaction on connector {cid}"
                + (f" for {tag}" if tag else "")
                + f" at {_clock(start.at)} but sent no StartTransaction in {waited:.0f} s; "
                f"connector still {c.status}. Soft reset, wait for it to boot, then "
                "remote_start again.",
                cid,
                [
                    tool_call("reset_charger", cp_id=cp, type="Soft"),
                    tool_call("remote_start", cp_id=cp, connector_id=cid, id_tag=tag),
                ],
                [
                    (start, "start requested"),
                    (answer, "accepted"),
                    (None, f"no StartTransaction by {iso(self.now)}; connector {c.status}"),
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
            for r in self.records
            if _is(r, 2, "MeterValues", "in") and r.payload.get("connectorId") == cid
        ][-3:]
        meter = c.meter
        offered = meter.offered_w
        if c.status != "Charging":
            return True  # the car (or the charger's schedule) paused it: not a fault
        if not samples or meter.power_w is None or not offered:
            self.pending.append(
                Pending(
                    cid,
                    "Charging has started. I'm waiting for the first power reading.",
                    f"No MeterValues with power and offered power on connector {cid} since "
                    f"{self.since()}. Ask again shortly, or diagnose with probe=true to "
                    "trigger a reading.",
                    tool_call("diagnose_charger", cp_id=cp, connector_id=cid, probe=True),
                    5.0,
                )
            )
            return False
        if meter.power_w >= LOW_POWER_RATIO * offered:
            return True
        tag = self._tag_of(c.transaction_id) or self.options.id_tag
        self.findings.append(
            Finding(
                "slow_charging",
                "Charging slowly",
                "Charging is much slower than this charger can deliver, probably because power "
                "is shared. A restart should help.",
                f"{cp} connector {cid} delivers {meter.power_w / 1000:.1f} kW of "
                f"{offered / 1000:.0f} kW offered (Power.Active.Import vs Power.Offered). "
                "Explain load sharing, Soft reset, then remote_start a new session.",
                cid,
                [
                    tool_call("reset_charger", cp_id=cp, type="Soft"),
                    tool_call("remote_start", cp_id=cp, connector_id=cid, id_tag=tag),
                ],
                [(r, "meter values") for r in samples],
            )
        )
        return True

    def _tag_of(self, transaction_id: int | None) -> str | None:
        if transaction_id is None:
            return None
        tx = self.csms.transactions.get(transaction_id)
        return getattr(tx, "id_tag", None)

    async def _meter_probe(self, connector_id: int) -> None:
        async with self.csms.subscribe() as received:
            result = await self.probe(
                call.TriggerMessage(enums.MessageTrigger.meter_values, connector_id)
            )
            if result is None or result.status != enums.TriggerMessageStatus.accepted:
                return
            with trio.move_on_after(self.options.probe_timeout):
                async for record in received:
                    if record.cp_id == self.cp_id and _is(record, 3, "MeterValues", "out"):
                        break
        await self.load()

    async def probe(self, payload: Any) -> Any:
        try:
            return await self.csms.send(self.cp_id, payload, timeout=self.options.probe_timeout)
        except (CallTimeoutError, RemoteCallError, ConnectionLostError, ChargerNotConnectedError):
            return None

    # -- the card ---------------------------------------------------------------------------

    def auth_failure(self, state: ChargePointState) -> None:
        """A card refused in the window, not contradicted by later telemetry."""
        cp, hint = self.cp_id, self.options.id_tag
        refused: dict[str, tuple[int | None, list[tuple[MessageRecord | None, str]]]] = {}
        last_authorize: MessageRecord | None = None
        remote_connector: dict[str, int] = {}
        for r in self.records:
            p = r.payload
            if _is(r, 2, "RemoteStartTransaction", "out") and p.get("idTag"):
                remote_connector[p["idTag"]] = p.get("connectorId") or 1
            elif _is(r, 2, "Authorize", "in"):
                tag = p.get("idTag")
                last_authorize = r
                if not isinstance(tag, str):
                    continue
                answer = self.answer(r)
                if answer is None:
                    continue
                if self.accepted(r):
                    refused.pop(tag, None)  # (a LocalListConflict after it refuses it again)
                    continue
                status = (answer.payload.get("idTagInfo") or {}).get("status")
                refused[tag] = (
                    remote_connector.get(tag),
                    [(r, "card presented"), (answer, f"answered {status}")],
                )
            elif _is(r, 2, "StatusNotification", "in"):
                cid = p.get("connectorId")
                if p.get("errorCode") == "LocalListConflict" and last_authorize is not None:
                    tag = last_authorize.payload.get("idTag")
                    if isinstance(tag, str):
                        refused[tag] = (
                            cid,
                            [
                                (last_authorize, "card presented"),
                                (r, "the charger's own card list refused it"),
                            ],
                        )
                elif p.get("errorCode") == "NoError":
                    for tag, (where, _) in list(refused.items()):
                        if where == cid:
                            del refused[tag]  # the charger reports the conflict gone
            elif _is(r, 2, "StartTransaction", "in") and self.accepted(r):
                refused.pop(str(p.get("idTag")), None)
            elif _is(r, 2, "SendLocalList", "out") and self.accepted(r):
                for entry in p.get("localAuthorizationList") or []:
                    if (entry.get("idTagInfo") or {}).get("status") == "Accepted":
                        refused.pop(entry.get("idTag"), None)
        if self.options.connector_id is not None:
            refused = {
                t: v for t, v in refused.items() if v[0] in (None, self.options.connector_id)
            }
        for tag, (cid, evidence) in refused.items():
            if hint not in (None, tag):
                continue
            listed = self.csms.auth.get(tag)
            blocked = listed is not None and listed.status != "Accepted"
            if blocked:
                say = "Your card isn't active in our system, so the charger refuses it."
                note = (
                    f"{cp} refused {tag}: the card is {listed.status if listed else '?'} at the "
                    "central system. Check with the driver; send_local_list with Accepted only "
                    "if the card should be valid."
                )
            else:
                say = (
                    "Your card is being refused because the charger's card list is out of "
                    "date. I can fix that."
                )
                note = (
                    f"{cp} refused {tag} although the central system lists it Accepted: the "
                    "charger's local list is stale. send_local_list Accepted, Soft reset, then "
                    "remote_start."
                )
            self.findings.append(
                Finding(
                    "auth_failure",
                    "Card rejected",
                    say,
                    note,
                    cid,
                    [
                        tool_call("send_local_list", cp_id=cp, id_tag=tag, status="Accepted"),
                        tool_call("reset_charger", cp_id=cp, type="Soft"),
                        tool_call("remote_start", cp_id=cp, connector_id=cid or 1, id_tag=tag),
                    ],
                    evidence,
                )
            )
        if self.options.probe and any(f.code == "auth_failure" for f in self.findings):
            self.checks.append("GetLocalListVersion probe")

    async def list_version_note(self) -> None:
        result = await self.probe(call.GetLocalListVersion())
        if result is None:
            return
        note = (
            f" Charger list version {result.list_version}, central system version "
            f"{self.csms.auth.version}."
        )
        for f in self.findings:
            if f.code == "auth_failure":
                f.agent_note += note
                f.evidence.append((None, note.strip()))

    # -- nothing seen -----------------------------------------------------------------------

    def untested(self, cid: int) -> None:
        cp, tag = self.cp_id, self.options.id_tag
        action = tool_call("remote_start", cp_id=cp, connector_id=cid, id_tag=tag)
        if tag is None:
            action["needs"] = ["id_tag"]
        self.pending.append(
            Pending(
                cid,
                "I can't see a problem yet. Let's try starting a charge so I can see what happens.",
                f"No start attempt on connector {cid} of {cp} since {self.since()} "
                f"({self.window_reason}), and no fault reported. remote_start would show "
                "whether sessions start"
                + ("" if tag else " (ask the driver for their card id first)")
                + "; then diagnose again.",
                action,
            )
        )


_HEALTHY_SAY = "The charger looks fine: it's online, reporting normally and charging works."


async def diagnose(
    csms: CentralSystem, cp_id: str, options: DiagnosisOptions | None = None
) -> dict[str, Any]:
    """Diagnose ``cp_id`` (see the module docstring for the answer's shape).

    Reads only what the CSMS already has unless ``options.probe``; never waits for a
    pending start (the answer is then ``inconclusive`` with ``retry_after_s``).
    """
    options = options or DiagnosisOptions()
    diagnoser = _Diagnoser(csms, cp_id, options)
    state = csms.registry.get(cp_id)
    if state is not None:
        await diagnoser.run(state)
        if options.probe and any(f.code == "auth_failure" for f in diagnoser.findings):
            await diagnoser.list_version_note()
    findings, pending = diagnoser.findings, diagnoser.pending
    if findings:
        verdict, say, note = "fault_found", findings[0].say, findings[0].agent_note
        next_action: Action | None = findings[0].actions[0] if findings[0].actions else None
        retry = None
    elif pending:
        first = min(pending, key=lambda p: p.retry_after_s is None)
        verdict, say, note = "inconclusive", first.say, first.agent_note
        next_action, retry = first.next_action, first.retry_after_s
    else:
        verdict, say = "healthy", _HEALTHY_SAY
        note = f"{cp_id}: online, no error codes, charging seen working since {diagnoser.since()}."
        next_action, retry = None, None
    return {
        "cp_id": cp_id,
        "at": iso(diagnoser.now),
        "verdict": verdict,
        "healthy": verdict == "healthy",
        "say": say,
        "agent_note": note,
        "next_action": next_action,
        "retry_after_s": retry,
        "findings": [f.as_dict(evidence=options.evidence) for f in findings],
        "window": {
            "since": iso(diagnoser.window_start) if diagnoser.window_start else None,
            "reason": diagnoser.window_reason,
        },
        "checked": diagnoser.checks,
    }
