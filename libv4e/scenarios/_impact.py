"""What a suggested action would do to the sessions on a charger, and whose they are.

Every action a diagnosis suggests carries ``impact`` (``scope``: ``charger``, ``connector``
or ``none``; ``stops``: the sessions it would end, each with connector, card and energy so
far) and ``needs_consent``: true when it would stop a session that is not the caller's.
The caller is the driver the agent speaks for: their card (``id_tag``) when given, else
their connector (``connector_id``); with neither, every session stopped needs consent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from libv4e.scenarios._findings import Action, DiagnosisOptions

if TYPE_CHECKING:
    from libv4e.csms._central import CentralSystem
    from libv4e.csms._registry import Transaction

__all__ = ["annotate", "is_callers", "stops_others"]


def is_callers(tx: Transaction, options: DiagnosisOptions) -> bool:
    """Whether ``tx`` belongs to the driver the agent speaks for."""
    if options.id_tag is not None:
        return tx.id_tag == options.id_tag
    if options.connector_id is not None:
        return tx.connector_id == options.connector_id
    return False


def _stopped(csms: CentralSystem, cp_id: str, action: Action) -> tuple[str, list[Transaction]]:
    tool, args = action["tool"], action.get("arguments") or {}
    running = [t for t in csms.transactions.active() if t.cp_id == cp_id]
    if tool == "reset_charger":
        return "charger", running
    if tool == "change_availability":
        cid = args.get("connector_id", 0)
        if args.get("type") != "Inoperative":
            return ("charger" if not cid else "connector"), []
        if not cid:
            return "charger", running
        return "connector", [t for t in running if t.connector_id == cid]
    if tool == "unlock_connector":
        cid = args.get("connector_id")
        return "connector", [t for t in running if t.connector_id == cid]
    if tool == "remote_stop":
        tid = args.get("transaction_id")
        return "connector", [t for t in running if t.transaction_id == tid]
    return "none", []


def annotate(
    csms: CentralSystem, cp_id: str, action: Action, options: DiagnosisOptions
) -> dict[str, Any]:
    """Add ``impact`` and ``needs_consent`` to ``action`` (in place) and return it; a
    ``remote_start`` on a connector with no cable in also ``needs`` ``cable``."""
    scope, stops = _stopped(csms, cp_id, action)
    action["impact"] = {
        "scope": scope,
        "stops": [
            {
                "connector_id": t.connector_id,
                "id_tag": t.id_tag,
                "transaction_id": t.transaction_id,
                "energy_wh": max(0.0, (t.last_meter_wh or t.meter_start) - t.meter_start),
            }
            for t in stops
        ],
    }
    action["needs_consent"] = any(not is_callers(t, options) for t in stops)
    if action["tool"] == "remote_start" and _no_cable(csms, cp_id, action):
        # no cable reported in: a charger waits ConnectionTimeOut for one, then gives up
        action["needs"] = [*action.get("needs", []), "cable"]
    return action


def _no_cable(csms: CentralSystem, cp_id: str, action: Action) -> bool:
    """The connector a start is for reports Available: no cable is in (plugging one in
    makes it Preparing)."""
    state = csms.registry.get(cp_id)
    cid = (action.get("arguments") or {}).get("connector_id")
    connector = None if state is None or cid is None else state.connectors.get(cid)
    return connector is not None and connector.status == "Available"


def stops_others(
    csms: CentralSystem, cp_id: str, options: DiagnosisOptions, besides: int | None = None
) -> bool:
    """Whether a whole-charger reset would stop a session that is not the caller's (the
    session on connector ``besides``, the one a finding is about, left out)."""
    return any(
        t.cp_id == cp_id and t.connector_id != besides and not is_callers(t, options)
        for t in csms.transactions.active()
    )
