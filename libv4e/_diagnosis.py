"""Diagnosis for agents: what is wrong with a charger, inferred only from OCPP.

The evidence is the message log, timing, and the answers to harmless commands the CSMS may
send (TriggerMessage, GetLocalListVersion). Which scenario was triggered is never read: a
real charger with the same fault gets the same diagnosis.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import trio
from ocpp.v16 import call, enums

from ._connection import MessageRecord
from ._csms import ChargerNotConnectedError
from ._errors import CallTimeoutError, ConnectionLostError, RemoteCallError
from ._registry import ChargePointState, iso

if TYPE_CHECKING:
    from ._csms import CentralSystem

LOW_POWER_RATIO = 0.25
"""Delivered power below this share of the offered power counts as slow charging."""


@dataclasses.dataclass
class Finding:
    """One problem: a code, words for the driver, the evidence and what to do."""

    code: str
    title: str
    summary: str
    connector_id: int | None = None
    evidence: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    actions: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class DiagnosisOptions:
    """Hints from the driver and how long the probes may take."""

    id_tag: str | None = None
    connector_id: int | None = None
    probe: bool = True
    probe_timeout: float = 2.0
    start_timeout: float = 5.0
    """A start request with no StartTransaction for this long is a failed start."""


def _evidence(record: MessageRecord, note: str = "") -> dict[str, Any]:
    kind = {2: "call", 3: "result", 4: "error"}.get(record.message_type, "?")
    out = {
        "at": iso(record.at),
        "direction": record.direction,
        "type": kind,
        "action": record.action,
        "payload": record.payload,
    }
    if note:
        out["note"] = note
    return out


def _action(method: str, path: str, body: dict[str, Any] | None, why: str) -> dict[str, Any]:
    return {"method": method, "path": path, "body": body, "why": why}


def _is(record: MessageRecord, kind: int, action: str, direction: str) -> bool:
    return (record.message_type, record.action, record.direction) == (kind, action, direction)


def _answer_to(records: list[MessageRecord], call_record: MessageRecord) -> MessageRecord | None:
    for r in records:
        if (
            r.unique_id == call_record.unique_id
            and r.message_type in (3, 4)
            and r.direction != call_record.direction
        ):
            return r
    return None


class _Diagnoser:
    def __init__(self, csms: CentralSystem, cp_id: str, options: DiagnosisOptions) -> None:
        self.csms, self.cp_id, self.options = csms, cp_id, options
        self.findings: list[Finding] = []
        self.checks: list[str] = []

    def _state(self, check: str) -> ChargePointState:
        """The charger's registry state; notes ``check`` as done."""
        self.checks.append(check)
        state = self.csms.registry.get(self.cp_id)
        assert state is not None  # run() returns early for unknown chargers
        return state

    async def records(self) -> list[MessageRecord]:
        return await self.csms.recent_messages(self.cp_id)

    async def probe(self, payload: Any) -> Any:
        try:
            return await self.csms.send(self.cp_id, payload, timeout=self.options.probe_timeout)
        except (CallTimeoutError, RemoteCallError, ConnectionLostError, ChargerNotConnectedError):
            return None

    async def run(self) -> list[Finding]:
        state = self.csms.registry.get(self.cp_id)
        if state is None:
            return []
        if not await self.offline():
            await self.session_start_failure()
            await self.auth_failure()
            await self.stuck_connector()
            await self.slow_charging()
        return self.findings

    # -- offline -------------------------------------------------------------------------------

    async def offline(self) -> bool:
        cp = self.cp_id
        state = self.csms.registry.get(cp)
        assert state is not None
        now = self.csms.clock()
        tolerance = self.csms.registry.offline_tolerance
        last = [r for r in await self.records() if r.direction == "in"][-3:]
        evidence = [_evidence(r, "last messages received") for r in last]
        self.checks.append("connection and heartbeat timing")
        ticket = _action(
            "POST",
            "/tickets",
            {
                "cp_id": cp,
                "scenario": "offline_charger",
                "summary": f"{cp} is offline and did not recover",
            },
            "if it does not come back in time, hand it to field service",
        )
        if not state.connected or not self.csms.reachable(cp):
            since = state.disconnected_at or state.last_seen
            self.findings.append(
                Finding(
                    "offline_charger",
                    "Charger offline",
                    f"The charger {cp} has no connection to the central system"
                    + (f" since {iso(since)}" if since else "")
                    + ". It cannot be reached remotely "
                    "until it reconnects; if it does not come back soon, a technician is needed.",
                    None,
                    [*evidence, {"at": iso(since) if since else None, "note": "disconnected"}],
                    [
                        _action("GET", f"/chargers/{cp}", None, "check whether it reconnected"),
                        ticket,
                    ],
                )
            )
            return True
        silence = state.silence(now) or 0.0
        silent_too_long = silence > state.heartbeat_interval * tolerance
        unanswered = state.unresponsive_since is not None
        if not silent_too_long and not unanswered and self.options.probe:
            self.checks.append("TriggerMessage Heartbeat probe")
            unanswered = await self._heartbeat_probe()
        if not (silent_too_long or unanswered):
            return False
        why = (
            (
                f"nothing received for {silence:.0f} s (heartbeat interval "
                f"{state.heartbeat_interval} s)"
            )
            if silent_too_long
            else ("it accepted a request for a heartbeat but sent nothing")
        )
        self.findings.append(
            Finding(
                "offline_charger",
                "Charger offline",
                f"The charger {cp} has stopped talking to the central system: {why}. A hard reset "
                "usually brings it back; it then reconnects and sends a BootNotification.",
                None,
                evidence,
                [
                    _action(
                        "POST",
                        f"/commands/reset/{cp}",
                        {"type": "Hard"},
                        "restart the charger; wait for BootNotification and heartbeats",
                    ),
                    ticket,
                ],
            )
        )
        return True

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

    # -- a start that never happens ------------------------------------------------------------

    async def session_start_failure(self) -> None:
        cp = self.cp_id
        records = await self.records()
        self.checks.append("start requests without StartTransaction")
        start: MessageRecord | None = None
        for r in records:
            accepted = False
            if _is(r, 2, "RemoteStartTransaction", "out"):
                answer = _answer_to(records, r)
                accepted = answer is not None and answer.payload.get("status") == "Accepted"
            elif _is(r, 2, "Authorize", "in"):
                answer = _answer_to(records, r)
                accepted = (
                    answer is not None
                    and (answer.payload.get("idTagInfo") or {}).get("status") == "Accepted"
                )
            if accepted:
                start = r
            elif _is(r, 2, "StartTransaction", "in"):
                start = None
        if start is None:
            return
        if self._refused_since(records, start):
            return
        waited = (self.csms.clock() - start.at).total_seconds()
        if waited < self.options.start_timeout:
            await trio.sleep(self.options.start_timeout - waited)
            records = await self.records()
        if self._refused_since(records, start):
            return
        tag = start.payload.get("idTag")
        connector = start.payload.get("connectorId") or self.options.connector_id or 1
        status = self.csms.registry.ensure(cp).connector(connector).status
        if status not in ("Available", "Preparing"):
            return
        answer = _answer_to(records, start)
        self.findings.append(
            Finding(
                "session_start_failure",
                "Session does not start",
                f"The charger {cp} accepted the request to start charging"
                + (f" with card {tag}" if tag else "")
                + f" but has not started a session after "
                f"{max(waited, self.options.start_timeout):.0f} seconds, and connector {connector} "
                f"still shows {status}. A soft reset usually clears this; then try again.",
                connector,
                [
                    _evidence(start, "start requested"),
                    *([_evidence(answer, "accepted")] if answer else []),
                    {
                        "at": iso(self.csms.clock()),
                        "note": f"no StartTransaction; connector {status}",
                    },
                ],
                [
                    _action(
                        "POST", f"/commands/reset/{cp}", {"type": "Soft"}, "restart the software"
                    ),
                    _action(
                        "POST",
                        f"/commands/remote_start/{cp}",
                        {
                            "id_tag": tag or self.options.id_tag or "USER123",
                            "connector_id": connector,
                        },
                        "after the charger is back online, start the session again",
                    ),
                ],
            )
        )

    @staticmethod
    def _refused_since(records: list[MessageRecord], start: MessageRecord) -> bool:
        """A StartTransaction came, or the card was refused (an authorization problem)."""
        for r in records:
            if r.at < start.at or r.direction != "in" or r.message_type != 2:
                continue
            if r.action == "StartTransaction":
                return True
            if (
                r.action == "StatusNotification"
                and r.payload.get("errorCode") == "LocalListConflict"
            ):
                return True
        return False

    # -- the card ------------------------------------------------------------------------------

    async def auth_failure(self) -> None:
        cp = self.cp_id
        records = await self.records()
        hint = self.options.id_tag
        self.checks.append("authorization answers and local list version")
        evidence: list[dict[str, Any]] = []
        tag: str | None = None
        connector: int | None = None
        last_authorize: MessageRecord | None = None
        for r in records:
            if _is(r, 2, "Authorize", "in"):
                last_authorize = r
                answer = _answer_to(records, r)
                status = (answer.payload.get("idTagInfo") or {}).get("status") if answer else None
                if (
                    answer is not None
                    and status != "Accepted"
                    and (hint in (None, r.payload.get("idTag")))
                ):
                    tag = r.payload.get("idTag")
                    evidence += [_evidence(r), _evidence(answer, f"card {status}")]
            elif (
                _is(r, 2, "StatusNotification", "in")
                and r.payload.get("errorCode") == "LocalListConflict"
            ):
                if last_authorize is not None and hint in (
                    None,
                    last_authorize.payload.get("idTag"),
                ):
                    tag = last_authorize.payload.get("idTag")
                    connector = r.payload.get("connectorId")
                    evidence += [
                        _evidence(last_authorize),
                        _evidence(r, "the charger's local list disagrees"),
                    ]
            elif (
                _is(r, 2, "StartTransaction", "in")
                and tag is not None
                and r.payload.get("idTag") == tag
            ):
                answer = _answer_to(records, r)
                if answer and (answer.payload.get("idTagInfo") or {}).get("status") == "Accepted":
                    tag, evidence, connector = None, [], None  # it worked since
        tag = tag or (hint if evidence else None)
        behind = None
        if self.options.probe and (tag is not None or hint is not None):
            result = await self.probe(call.GetLocalListVersion())
            if result is not None:
                behind = 0 <= result.list_version < self.csms.auth.version
                evidence.append(
                    {
                        "at": iso(self.csms.clock()),
                        "action": "GetLocalListVersion",
                        "note": f"charger list version {result.list_version}, central "
                        f"system version {self.csms.auth.version}",
                    }
                )
        if tag is None and hint is not None and behind:
            entry = self.csms.auth.get(hint)
            if entry is not None and entry.status == "Accepted":
                tag = hint
        if tag is None:
            return
        listed = self.csms.auth.get(tag)
        where = (
            "the charger's local authorization list is out of date"
            if behind or listed is None or listed.status == "Accepted"
            else f"the card is listed as {listed.status} at the central system"
        )
        self.findings.append(
            Finding(
                "auth_failure",
                "Card rejected",
                f"The card {tag} is being refused at {cp}: {where}. Sending the card to the "
                "charger as Accepted and restarting it fixes this; then the driver can try again.",
                connector,
                evidence,
                [
                    _action(
                        "POST",
                        f"/commands/send_local_list/{cp}",
                        {"id_tag": tag, "status": "Accepted"},
                        "update the card in the central system's and the charger's list",
                    ),
                    _action("POST", f"/commands/reset/{cp}", {"type": "Soft"}, "reload the list"),
                    _action(
                        "POST",
                        f"/commands/remote_start/{cp}",
                        {"id_tag": tag, "connector_id": connector or 1},
                        "start the session for the driver",
                    ),
                ],
            )
        )

    # -- the cable -----------------------------------------------------------------------------

    async def stuck_connector(self) -> None:
        cp, state = self.cp_id, self._state("connector error codes")
        records = await self.records()
        for connector in state.connectors.values():
            if connector.connector_id == 0 or connector.error_code != "ConnectorLockFailure":
                continue
            cid = connector.connector_id
            evidence = []
            for r in records:
                if _is(r, 2, "StopTransaction", "in"):
                    evidence = [_evidence(r, "session ended")]
                elif (
                    _is(r, 2, "StatusNotification", "in")
                    and r.payload.get("connectorId") == cid
                    and r.payload.get("errorCode") == "ConnectorLockFailure"
                ):
                    evidence.append(_evidence(r, "the lock did not release"))
            self.findings.append(
                Finding(
                    "stuck_connector",
                    "Cable locked",
                    f"The cable on connector {cid} of {cp} is still locked after the session "
                    "ended (the charger reports a connector lock failure). Unlocking it remotely "
                    "releases the cable.",
                    cid,
                    evidence,
                    [
                        _action(
                            "POST",
                            f"/commands/unlock_connector/{cp}",
                            {"connector_id": cid},
                            "release the lock; expect Unlocked, then status Available",
                        )
                    ],
                )
            )

    # -- power ---------------------------------------------------------------------------------

    async def slow_charging(self) -> None:
        cp, state = self.cp_id, self._state("delivered vs offered power")
        for connector in list(state.connectors.values()):
            cid = connector.connector_id
            if cid == 0 or connector.transaction_id is None or connector.status != "Charging":
                continue
            if self.options.connector_id not in (None, cid):
                continue
            if self.options.probe:
                await self._meter_probe(cid)
            meter = connector.meter
            offered = meter.offered_w
            if meter.power_w is None or not offered or meter.power_w >= LOW_POWER_RATIO * offered:
                continue
            samples = [
                r
                for r in await self.records()
                if _is(r, 2, "MeterValues", "in") and r.payload.get("connectorId") == cid
            ][-3:]
            tx = connector.transaction_id
            self.findings.append(
                Finding(
                    "slow_charging",
                    "Charging slowly",
                    f"Connector {cid} of {cp} is delivering {meter.power_w / 1000:.1f} kW although "
                    f"{offered / 1000:.0f} kW is offered. This is usually load sharing or a power "
                    "module held back; a soft reset and a new session restores normal power.",
                    cid,
                    [_evidence(r, "meter values") for r in samples],
                    [
                        _action(
                            "POST",
                            f"/commands/reset/{cp}",
                            {"type": "Soft"},
                            "explain load sharing to the driver, then restart the charger",
                        ),
                        _action(
                            "POST",
                            f"/commands/remote_start/{cp}",
                            {"id_tag": self._tag_of(tx) or "USER123", "connector_id": cid},
                            "start a new session once it is back",
                        ),
                    ],
                )
            )

    def _tag_of(self, transaction_id: int) -> str | None:
        tx = self.csms.transactions.get(transaction_id)
        return tx.id_tag if tx else None

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
                        return


async def diagnose(
    csms: CentralSystem, cp_id: str, options: DiagnosisOptions | None = None
) -> dict[str, Any]:
    """Diagnose ``cp_id``: ``{"cp_id", "healthy", "findings": [...], "checked": [...]}``.

    May send TriggerMessage and GetLocalListVersion to the charger (``options.probe``) and
    may wait up to ``options.start_timeout`` for a pending start to happen.
    """
    options = options or DiagnosisOptions()
    diagnoser = _Diagnoser(csms, cp_id, options)
    findings = await diagnoser.run()
    return {
        "cp_id": cp_id,
        "at": iso(csms.clock()),
        "healthy": not findings,
        "findings": [f.as_dict() for f in findings],
        "checked": diagnoser.checks,
    }
