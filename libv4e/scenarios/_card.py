"""The card rule of the diagnosis: a card refused in the window (an Authorize answered
not Accepted, or a LocalListConflict after it), unless later telemetry contradicts it."""

from __future__ import annotations

from libv4e.protocol._session import MessageType
from libv4e.scenarios._findings import Finding, tool_call
from libv4e.scenarios._voice import Line
from libv4e.scenarios._window import EvidenceWindow, is_message
from libv4e.transport._connection import Direction, MessageRecord


def card_findings(window: EvidenceWindow) -> list[Finding]:
    """Cards refused in ``window``, not contradicted by later telemetry."""
    findings: list[Finding] = []
    cp, hint = window.cp_id, window.options.id_tag
    refused: dict[str, tuple[int | None, list[tuple[MessageRecord | None, str]]]] = {}
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
                [(r, "card presented"), (answer, f"answered {status}")],
            )
        elif is_message(r, MessageType.CALL, "StatusNotification", Direction.IN):
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
            findings.append(
                Finding(
                    "card_not_accepted",
                    "Card not accepted",
                    Line("auth.blocked", cid),
                    f"{cp} refused {tag}: the card is {listed.status} at the central system, "
                    "and the charger applied that correctly. Do not override it (no "
                    "send_local_list, no remote_start with this card): tell the driver to "
                    "use another card or contact their card provider.",
                    cid,
                    [],
                    evidence,
                )
            )
            continue
        findings.append(
            Finding(
                "auth_failure",
                "Card rejected",
                Line("auth.stale_list", cid),
                f"{cp} refused {tag} although the central system lists it Accepted: the "
                "charger's local list is stale. send_local_list Accepted (that fixes the list; "
                "no reset needed), then remote_start.",
                cid,
                [
                    tool_call("send_local_list", cp_id=cp, id_tag=tag, status="Accepted"),
                    tool_call(
                        "remote_start",
                        cp_id=cp,
                        connector_id=window.options.connector_id or cid or 1,
                        id_tag=tag,
                    ),
                ],
                evidence,
            )
        )
    return findings
