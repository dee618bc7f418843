"""The card rule of the diagnosis: a card refused in the window (an Authorize answered
not Accepted, or a LocalListConflict after it), unless later telemetry contradicts it."""

from __future__ import annotations

from libv4e.protocol._session import MessageType
from libv4e.scenarios._findings import (
    Action,
    ActionKind,
    Evidence,
    EvidenceKind,
    Finding,
    FindingCode,
)
from libv4e.scenarios._voice import Line, Say
from libv4e.scenarios._window import EvidenceWindow, is_message
from libv4e.transport._connection import Direction, MessageRecord


def card_findings(window: EvidenceWindow) -> list[Finding]:
    """Cards refused in ``window``, not contradicted by later telemetry."""
    findings: list[Finding] = []
    cp, hint = window.cp_id, window.options.id_tag
    refused: dict[str, tuple[int | None, list[Evidence]]] = {}
    last_authorize: MessageRecord | None = None
    remote_connector: dict[str, int] = {}
    for r in window.records:
        p = r.payload
        if is_message(r, MessageType.CALL, "RemoteStartTransaction", Direction.OUT) and p.get(
            "idTag"
        ):
            remote_connector[p["idTag"]] = p.get("connectorId") or 1
        elif is_message(r, MessageType.CALL, "Authorize", Direction.IN):
            tag = p.get("idTag")
            last_authorize = r
            if not isinstance(tag, str):
                continue
            answer = window.answer(r)
            if answer is None:
                continue
            if window.accepted(r):
                refused.pop(tag, None)  # (a LocalListConflict after it refuses it again)
                continue
            status = (answer.payload.get("idTagInfo") or {}).get("status")
            refused[tag] = (
                remote_connector.get(tag),
                [
                    Evidence(r, EvidenceKind.CARD_PRESENTED),
                    Evidence(answer, EvidenceKind.ANSWERED, {"status": status}),
                ],
            )
        elif is_message(r, MessageType.CALL, "StatusNotification", Direction.IN):
            cid = p.get("connectorId")
            if p.get("errorCode") == "LocalListConflict" and last_authorize is not None:
                tag = last_authorize.payload.get("idTag")
                if isinstance(tag, str):
                    refused[tag] = (
                        cid,
                        [
                            Evidence(last_authorize, EvidenceKind.CARD_PRESENTED),
                            Evidence(r, EvidenceKind.LIST_REFUSED),
                        ],
                    )
            elif p.get("errorCode") == "NoError":
                for tag, (where, _) in list(refused.items()):
                    if where == cid:
                        del refused[tag]  # the charger reports the conflict gone
        elif is_message(r, MessageType.CALL, "StartTransaction", Direction.IN) and window.accepted(
            r
        ):
            refused.pop(str(p.get("idTag")), None)
        elif is_message(r, MessageType.CALL, "SendLocalList", Direction.OUT) and window.accepted(r):
            for entry in p.get("localAuthorizationList") or []:
                if (entry.get("idTagInfo") or {}).get("status") == "Accepted":
                    refused.pop(entry.get("idTag"), None)
    # a refused card is a fact about the charger's card list, not about one connector: it
    # is reported where it happened and found whichever connector the agent asks about
    for tag, (cid, evidence) in refused.items():
        if hint not in (None, tag):
            continue
        listed = window.csms.auth.get(tag)
        if listed is not None and listed.status != "Accepted":
            # The central system itself refuses the card: its answer is right, nothing on
            # the charger is broken. Whitelisting it on the charger or starting a session
            # with it would override the card's owner (a blocked or expired card).
            # facts: id_tag, status (at the central system)
            findings.append(
                Finding(
                    FindingCode.CARD_NOT_ACCEPTED,
                    Line(Say.AUTH_BLOCKED, cid),
                    cid,
                    {"id_tag": tag, "status": listed.status},
                    [],
                    evidence,
                )
            )
            continue
        # facts: id_tag (and, after a probe, charger_version / csms_version)
        findings.append(
            Finding(
                FindingCode.AUTH_FAILURE,
                Line(Say.AUTH_STALE_LIST, cid),
                cid,
                {"id_tag": tag},
                [
                    Action.of(ActionKind.UPDATE_CARD, cp, id_tag=tag, status="Accepted"),
                    Action.of(
                        ActionKind.START,
                        cp,
                        connector_id=window.options.connector_id or cid or 1,
                        id_tag=tag,
                    ),
                ],
                evidence,
            )
        )
    return findings
