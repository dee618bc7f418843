"""The words of a diagnosis: the library's typed answer
(:class:`libv4e.scenarios.Diagnosis`: codes, line keys, facts, kinds of action) as the JSON
the REST API, the MCP tools and the agents read.

- titles and agent notes (English: they are for the model, not the driver), made from
  each note's facts; a charger's own text in them is quoted as data (:func:`quoted`);
- the driver's lines in the caller's language with the site's spoken names
  (:mod:`.phrases`);
- each :class:`~libv4e.scenarios.ActionKind` as an MCP tool call ``{tool, arguments}``
  (:data:`TOOLS`), with the line to say while taking it, its impact and consent.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import unicodedata
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from libv4e import StoreError
from libv4e.protocol import MESSAGE_KINDS, iso
from libv4e.scenarios import (
    Action,
    ActionKind,
    Diagnosis,
    DiagnosisCheck,
    Evidence,
    EvidenceKind,
    Finding,
    FindingCode,
    Say,
    WindowReason,
)
from libv4e.transport import MessageRecord

from .phrases import Voice, action_line

if TYPE_CHECKING:
    from libv4e.csms import CentralSystem, SpokenNames

__all__ = [
    "CHECKS",
    "EVIDENCE",
    "NOTES",
    "TITLES",
    "TOOLS",
    "WINDOW_REASONS",
    "action_json",
    "agent_note",
    "diagnosis_json",
    "finding_json",
    "quoted",
    "spoken_names",
    "tool_call",
]

log = logging.getLogger("libv4e.diagnosis")

TOOLS: dict[ActionKind, str] = {
    ActionKind.RESET: "reset_charger",
    ActionKind.UNLOCK: "unlock_connector",
    ActionKind.SET_AVAILABILITY: "change_availability",
    ActionKind.START: "remote_start",
    ActionKind.STOP: "remote_stop",
    ActionKind.UPDATE_CARD: "send_local_list",
    ActionKind.CHECK_CONNECTION: "get_charger",
    ActionKind.DIAGNOSE: "diagnose_charger",
    ActionKind.OPEN_TICKET: "create_ticket",
}
"""The MCP tool (:mod:`.tools`) that takes each kind of action."""

TITLES: dict[FindingCode, str] = {
    FindingCode.OFFLINE_CHARGER: "Charger offline",
    FindingCode.STUCK_CONNECTOR: "Cable locked",
    FindingCode.CONNECTOR_UNAVAILABLE: "Switched off",
    FindingCode.CONNECTOR_RESERVED: "Reserved for another driver",
    FindingCode.SAFETY_FAULT: "Safety fault",
    FindingCode.CONNECTOR_FAULT: "Charger fault",
    FindingCode.SESSION_START_FAILURE: "Session does not start",
    FindingCode.SLOW_CHARGING: "Charging slowly",
    FindingCode.AUTH_FAILURE: "Card rejected",
    FindingCode.CARD_NOT_ACCEPTED: "Card not accepted",
}

CHECKS: dict[DiagnosisCheck, str] = {
    DiagnosisCheck.CONNECTION: "connection and heartbeat timing",
    DiagnosisCheck.STATUS: "connector status and error codes",
    DiagnosisCheck.STARTS: "start requests without StartTransaction",
    DiagnosisCheck.AUTHORIZATION: "authorization answers",
    DiagnosisCheck.POWER: "delivered vs offered power",
    DiagnosisCheck.HEARTBEAT_PROBE: "TriggerMessage Heartbeat probe",
    DiagnosisCheck.LIST_VERSION_PROBE: "GetLocalListVersion probe",
}

WINDOW_REASONS: dict[WindowReason, str] = {
    WindowReason.NONE: "no message kept",
    WindowReason.OLDEST: "oldest message kept",
    WindowReason.BOOT: "charger booted",
    WindowReason.FAULT: "sandbox fault started or cleared",
}


# -- small words ----------------------------------------------------------------------------


def quoted(text: str) -> str:
    """Text a charger supplied, as a JSON string literal (escaped, at most 50 characters,
    marked as the charger's words): data for the agent, never instructions to it."""
    literal = json.dumps(str(text)[:50], ensure_ascii=False)
    return "[charger text] " + "".join(
        f"\\u{ord(ch):04x}" if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch
        for ch in literal
    )


def clock_time(at: dt.datetime | None) -> str:
    """The time of day a note names (``HH:MM:SS``; "now" when there is none)."""
    return at.strftime("%H:%M:%S") if at else "now"


def _where(connector_id: int | None) -> str:
    return "the charger" if connector_id == 0 else f"connector {connector_id}"


def _detail(facts: Mapping[str, Any]) -> str:
    info = facts.get("info")
    return f"{facts['error_code']}" + (f" (info {quoted(info)})" if info else "")


def _since(at: dt.datetime | None) -> str:
    return iso(at) if at else "unknown"


# -- agent notes ------------------------------------------------------------------------------

Note = Callable[[str, int | None, Mapping[str, Any]], str]
"""(charger, connector, facts) → the agent's note."""


def _offline(cp: str, cid: int | None, f: Mapping[str, Any]) -> str:
    if not f["connected"]:
        since = f" since {clock_time(f['since'])}" if f["since"] else ""
        return (
            f"{cp} has no connection{since}. Commands cannot reach it. Check again with "
            "get_charger; if it stays away, file a ticket."
        )
    why = (
        f"nothing received for {f['silence_s']:.0f} s "
        f"(heartbeat interval {f['heartbeat_interval_s']} s)"
        if f["silent_too_long"]
        else "it accepted a request for a heartbeat but sent nothing"
    )
    return (
        f"{cp} is connected but silent: {why}. Hard reset, wait for its BootNotification "
        "and heartbeats; if it does not come back, file a ticket."
    )


def _connector_fault(cp: str, cid: int | None, f: Mapping[str, Any]) -> str:
    vendor = f.get("vendor_error_code")
    return (
        f"{cp} {_where(cid)} reports {f['status']} with error {_detail(f)}"
        + (f", vendor code {quoted(vendor)}" if vendor else "")
        + ". A Soft reset may clear it; if it comes back, file a ticket."
    )


def _start_failure(cp: str, cid: int | None, f: Mapping[str, Any]) -> str:
    tag = f["id_tag"]
    return (
        f"{cp} accepted RemoteStartTransaction on connector {cid}"
        + (f" for {tag}" if tag else "")
        + f" at {clock_time(f['requested_at'])} but sent no StartTransaction in "
        f"{f['waited_s']:.0f} s; connector still {f['status']}. Restart only this connector "
        "(change_availability Inoperative, then Operative; no other session is touched), "
        "then remote_start again."
    )


def _auth_failure(cp: str, cid: int | None, f: Mapping[str, Any]) -> str:
    note = (
        f"{cp} refused {f['id_tag']} although the central system lists it Accepted: the "
        "charger's local list is stale. send_local_list Accepted (that fixes the list; no "
        "reset needed), then remote_start."
    )
    if "charger_version" in f:
        note += " " + _list_versions(f)
    return note


def _list_versions(f: Mapping[str, Any]) -> str:
    return (
        f"Charger list version {f['charger_version']}, central system version {f['csms_version']}."
    )


def _try_start(cp: str, cid: int | None, f: Mapping[str, Any]) -> str:
    return (
        f"No start attempt on connector {cid} of {cp} since {clock_time(f['since'])} "
        f"({WINDOW_REASONS[f['window_reason']]}), and no fault reported. remote_start would "
        "show whether sessions start"
        + ("" if f["id_tag"] else " (ask the driver for their card id first)")
        + "; then diagnose again."
    )


def _working(cp: str, f: Mapping[str, Any]) -> str:
    return f"{cp}: online, no error codes, charging seen working since {clock_time(f['since'])}."


NOTES: dict[str, Note] = {
    # findings, by code
    FindingCode.OFFLINE_CHARGER: _offline,
    FindingCode.STUCK_CONNECTOR: lambda cp, cid, f: (
        f"{cp} {_where(cid)} reports {f['status']} with ConnectorLockFailure: the lock did "
        "not release. Call unlock_connector; expect Unlocked, then Available/NoError."
    ),
    FindingCode.CONNECTOR_UNAVAILABLE: lambda cp, cid, f: (
        f"{cp} {_where(cid)} is Unavailable (Inoperative). change_availability Operative "
        "brings it back."
    ),
    FindingCode.SAFETY_FAULT: lambda cp, cid, f: (
        f"{cp} {_where(cid)} reports {f['status']} with error {_detail(f)}: a safety fault. "
        "Never reset, unlock or restart it remotely while it is active; file a ticket for a "
        "technician and send the driver to another charger."
    ),
    FindingCode.CONNECTOR_FAULT: _connector_fault,
    FindingCode.CONNECTOR_RESERVED: lambda cp, cid, f: (
        f"{cp} connector {cid} is Reserved for another card. Nothing is broken; do not start "
        "a session there or cancel the reservation: send the driver to another connector."
    ),
    FindingCode.SESSION_START_FAILURE: _start_failure,
    FindingCode.SLOW_CHARGING: lambda cp, cid, f: (
        f"{cp} connector {cid} delivers {f['power_w'] / 1000:.1f} kW of "
        f"{f['offered_w'] / 1000:.0f} kW offered (Power.Active.Import vs Power.Offered). "
        "Explain load sharing, restart it (a Soft reset, or only this connector when another "
        "driver charges here), then remote_start a new session."
    ),
    FindingCode.CARD_NOT_ACCEPTED: lambda cp, cid, f: (
        f"{cp} refused {f['id_tag']}: the card is {f['status']} at the central system, and "
        "the charger applied that correctly. Do not override it (no send_local_list, no "
        "remote_start with this card): tell the driver to use another card or contact their "
        "card provider."
    ),
    FindingCode.AUTH_FAILURE: _auth_failure,
    # pending checks, by their line
    Say.PENDING_RESTARTED: lambda cp, cid, f: (
        f"{cp} booted at {clock_time(f['since'])} and has sent no heartbeat since. Diagnose "
        "with probe=true to ask it for one."
    ),
    Say.PENDING_QUIET_MOMENT: lambda cp, cid, f: (
        f"{cp} last spoke {f['silence_s']:.0f} s ago (heartbeat interval "
        f"{f['heartbeat_interval_s']} s); not yet past the offline tolerance. Ask again in "
        f"{f['wait_s']:.0f} s, or diagnose with probe=true to ask it for a heartbeat."
    ),
    Say.PENDING_QUIET_PROBE: lambda cp, cid, f: (
        f"{cp} sent no message of its own since {clock_time(f['since'])} "
        f"({WINDOW_REASONS[f['window_reason']]}). Diagnose with probe=true: it asks the "
        "charger for a heartbeat and tells a silent charger from an idle one. Do not "
        "remote_start before that."
    ),
    Say.PENDING_ENERGY: lambda cp, cid, f: (
        f"A session runs on connector {cid} at normal power, but its energy register has "
        "not risen yet. Ask again shortly (probe=true asks for a reading); do not start again."
    ),
    Say.PENDING_START_WAIT: lambda cp, cid, f: (
        f"Waiting for the charger: RemoteStartTransaction on connector {cid} was accepted "
        f"{f['waited_s']:.0f} s ago and no StartTransaction yet. Ask again in "
        f"{f['wait_s']:.0f} s."
    ),
    Say.PENDING_FIRST_READING: lambda cp, cid, f: (
        f"No MeterValues with power and offered power on connector {cid} since "
        f"{clock_time(f['since'])}. Ask again shortly, or diagnose with probe=true to trigger "
        "a reading."
    ),
    Say.PENDING_BELOW_FULL: lambda cp, cid, f: (
        f"{cp} connector {cid} delivers {f['power_w'] / 1000:.1f} kW of "
        f"{f['offered_w'] / 1000:.0f} kW offered: not slow enough to be a fault, not yet "
        f"{f['normal_ratio']:.0%} of it. Ask again shortly."
    ),
    Say.PENDING_ESCALATE: lambda cp, cid, f: (
        f"{cp} accepted {f['starts']} start requests on connector {cid} since "
        f"{clock_time(f['since'])} and no session began. Do not start again: file a ticket."
    ),
    Say.PENDING_TRY_START: _try_start,
    # healthy moments, by their line
    Say.RESOLVED_UNLOCKED: lambda cp, cid, f: (
        f"{cp}: connector {f['connector_id']} was unlocked and is Available with no error."
    ),
    Say.RESOLVED_LEAVE: lambda cp, cid, f: (
        f"{cp}: connector {f['connector_id']} is idle, no error."
    ),
    Say.HEALTHY: lambda cp, cid, f: _working(cp, f),
    Say.RESOLVED_CHARGING: lambda cp, cid, f: _working(cp, f),
    Say.RESOLVED_CARD: lambda cp, cid, f: _working(cp, f) + " The card list update fixed the card.",
    Say.RESOLVED_BACK_ONLINE: lambda cp, cid, f: _working(cp, f) + " Back after the reset.",
}
"""The agent's note of each finding code and of each pending or healthy line."""


def agent_note(key: str, cp_id: str, connector_id: int | None, facts: Mapping[str, Any]) -> str:
    """The agent's note ``key`` (a finding code or a line key) made from ``facts``."""
    return NOTES[key](cp_id, connector_id, facts)


# -- evidence ---------------------------------------------------------------------------------


def _status_note(f: Mapping[str, Any]) -> str:
    note = f"status {f['status']}"
    if "error_code" in f:
        note += f", error {f['error_code']}"
    if "since" in f:
        note += f" since {_since(f['since'])}"
    return note


EVIDENCE: dict[EvidenceKind, Callable[[Mapping[str, Any]], str]] = {
    EvidenceKind.CARD_PRESENTED: lambda f: "card presented",
    EvidenceKind.ANSWERED: lambda f: f"answered {f['status']}",
    EvidenceKind.LIST_REFUSED: lambda f: "the charger's own card list refused it",
    EvidenceKind.LAST_RECEIVED: lambda f: "last message received",
    EvidenceKind.DISCONNECTED: lambda f: f"disconnected since {_since(f['since'])}",
    EvidenceKind.STATUS: _status_note,
    EvidenceKind.START_REQUESTED: lambda f: "start requested",
    EvidenceKind.ACCEPTED: lambda f: "accepted",
    EvidenceKind.NO_START: lambda f: (
        f"no StartTransaction by {iso(f['by'])}; connector {f['status']}"
    ),
    EvidenceKind.METER_VALUES: lambda f: "meter values",
    EvidenceKind.LIST_VERSION: _list_versions,
}
"""The note of each kind of evidence."""


def _cite(record: MessageRecord) -> dict[str, Any]:
    return {"id": record.unique_id, "at": iso(record.at), "action": record.action}


def _evidence(item: Evidence) -> dict[str, Any]:
    note = EVIDENCE[item.kind](item.facts)
    record = item.record
    if record is None:
        return {"note": note}
    return {
        "id": record.unique_id,
        "at": iso(record.at),
        "direction": record.direction,
        "type": MESSAGE_KINDS.get(record.message_type, "?"),
        "action": record.action,
        "payload": record.payload,
        "note": note,
    }


# -- actions ----------------------------------------------------------------------------------


def _ticket_summary(action: Action) -> str:
    cp, args = action.cp_id, action.arguments
    scenario = args["scenario"]
    if scenario == FindingCode.OFFLINE_CHARGER:
        return f"{cp} is offline and did not recover after a hard reset"
    if scenario == FindingCode.SAFETY_FAULT:
        return (
            f"{cp} {_where(args['connector_id'])}: {_detail(args)} (safety fault, inspect on site)"
        )
    if scenario == FindingCode.SESSION_START_FAILURE:
        return f"{cp} connector {args['connector_id']}: starts accepted, no session began"
    return f"{cp} {_where(args['connector_id'])}: {_detail(args)}"


def tool_call(action: Action) -> tuple[str, dict[str, Any]]:
    """The MCP tool and its arguments that take ``action``."""
    if action.kind == ActionKind.OPEN_TICKET:
        arguments = {
            "cp_id": action.cp_id,
            "scenario": str(action.arguments["scenario"]),
            "summary": _ticket_summary(action),
        }
    else:
        arguments = {"cp_id": action.cp_id, **action.arguments}
    return TOOLS[action.kind], arguments


def action_json(action: Action, voice: Voice) -> dict[str, Any]:
    """``{tool, arguments}`` with ``fallback`` / ``needs`` when set, ``impact``,
    ``needs_consent`` and the line to ``say`` while taking it."""
    tool, arguments = tool_call(action)
    out: dict[str, Any] = {"tool": tool, "arguments": arguments}
    if action.fallback:
        out["fallback"] = True
    if action.needs:
        out["needs"] = list(action.needs)
    if action.impact is not None:
        out["impact"] = {
            "scope": str(action.impact.scope),
            "stops": [
                {
                    "connector_id": s.connector_id,
                    "id_tag": s.id_tag,
                    "transaction_id": s.transaction_id,
                    "energy_wh": s.energy_wh,
                }
                for s in action.impact.stops
            ],
        }
        out["needs_consent"] = action.needs_consent
    out["say"] = voice.say(action_line(tool, arguments))
    return out


# -- the answer -------------------------------------------------------------------------------


def finding_json(
    finding: Finding, cp_id: str, voice: Voice, *, evidence: bool = False
) -> dict[str, Any]:
    """A finding as JSON: compact (message ids cited) or with the full evidence."""
    out: dict[str, Any] = {
        "code": str(finding.code),
        "title": TITLES[finding.code],
        "connector_id": finding.connector_id,
        "say": voice.say(finding.say),
        "agent_note": agent_note(finding.code, cp_id, finding.connector_id, finding.facts),
        "actions": [action_json(a, voice) for a in finding.actions],
        "cites": [_cite(e.record) for e in finding.evidence if e.record is not None],
    }
    if evidence:
        out["evidence"] = [_evidence(e) for e in finding.evidence]
    return out


def diagnosis_json(
    diagnosis: Diagnosis, voice: Voice | None = None, *, evidence: bool = False
) -> dict[str, Any]:
    """The diagnosis as the REST API answers it (``say`` in ``voice``: English with the
    default names when None; every cited message in full with ``evidence``)."""
    voice = voice or Voice()
    d = diagnosis
    return {
        "cp_id": d.cp_id,
        "at": iso(d.at),
        "verdict": str(d.verdict),
        "healthy": d.healthy,
        "say": voice.say(d.say),
        "lang": voice.lang,
        "agent_note": agent_note(d.note, d.cp_id, d.say.connector_id, d.facts),
        "next_action": action_json(d.next_action, voice) if d.next_action else None,
        "retry_after_s": d.retry_after_s,
        "findings": [finding_json(f, d.cp_id, voice, evidence=evidence) for f in d.findings],
        "window": {
            "since": iso(d.window_since) if d.window_since else None,
            "reason": WINDOW_REASONS[d.window_reason],
        },
        "checked": [CHECKS[c] for c in d.checked],
        "intent": d.intent,
    }


async def spoken_names(csms: CentralSystem, cp_id: str) -> SpokenNames | None:
    """The site's spoken names for ``cp_id`` (None, the default words, when the store
    cannot be read: a diagnosis never fails for a name)."""
    try:
        return await csms.store.spoken_names(cp_id)
    except StoreError:
        log.warning("could not read the spoken names of %s; using the default words", cp_id)
        return None
