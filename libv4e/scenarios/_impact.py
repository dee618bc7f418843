"""What a suggested action would do to the sessions on a charger, and whose they are.

Every action a diagnosis suggests carries ``impact`` (``scope``: ``charger``, ``connector``
or ``none``; ``stops``: the sessions it would end, each with connector, card and energy so
far) and ``needs_consent``: true when it would stop a session that is not the caller's.
The caller is the driver the agent speaks for: their card (``id_tag``) when given, else
their connector (``connector_id``); with neither, every session stopped needs consent.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from libv4e.scenarios._findings import (
    Action,
    ActionKind,
    DiagnosisOptions,
    Impact,
    ImpactScope,
    StoppedSession,
)

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


def _stopped(
    csms: CentralSystem, cp_id: str, action: Action
) -> tuple[ImpactScope, list[Transaction]]:
    kind, args = action.kind, action.arguments
    running = [t for t in csms.transactions.active() if t.cp_id == cp_id]
    if kind == ActionKind.RESET:
        return ImpactScope.CHARGER, running
    if kind == ActionKind.SET_AVAILABILITY:
        cid = args.get("connector_id", 0)
        if args.get("type") != "Inoperative":
            return (ImpactScope.CHARGER if not cid else ImpactScope.CONNECTOR), []
        if not cid:
            return ImpactScope.CHARGER, running
        return ImpactScope.CONNECTOR, [t for t in running if t.connector_id == cid]
    if kind == ActionKind.UNLOCK:
        cid = args.get("connector_id")
        return ImpactScope.CONNECTOR, [t for t in running if t.connector_id == cid]
    if kind == ActionKind.STOP:
        tid = args.get("transaction_id")
        return ImpactScope.CONNECTOR, [t for t in running if t.transaction_id == tid]
    return ImpactScope.NONE, []


def annotate(csms: CentralSystem, cp_id: str, action: Action, options: DiagnosisOptions) -> Action:
    """``action`` with ``impact`` and ``needs_consent``; a start on a connector with no
    cable in also ``needs`` ``cable``."""
    scope, stops = _stopped(csms, cp_id, action)
    impact = Impact(
        scope,
        tuple(
            StoppedSession(
                t.connector_id,
                t.id_tag,
                t.transaction_id,
                max(0.0, (t.last_meter_wh or t.meter_start) - t.meter_start),
            )
            for t in stops
        ),
    )
    needs = action.needs
    if action.kind == ActionKind.START and _no_cable(csms, cp_id, action):
        # no cable reported in: a charger waits ConnectionTimeOut for one, then gives up
        needs = (*needs, "cable")
    return dataclasses.replace(
        action,
        impact=impact,
        needs_consent=any(not is_callers(t, options) for t in stops),
        needs=needs,
    )


def _no_cable(csms: CentralSystem, cp_id: str, action: Action) -> bool:
    """The connector a start is for reports Available: no cable is in (plugging one in
    makes it Preparing)."""
    state = csms.registry.get(cp_id)
    cid = action.arguments.get("connector_id")
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
