"""OCPP 2.0.1 TransactionEvent read for the transaction book: the message's values in
the book's version-agnostic terms (:class:`~libv4e.csms._txbook.SessionEvent`).

Nothing here does I/O. The topology: one connector per EVSE, so an EVSE's id is the
connector id the books, the REST API and the diagnosis use (``evse.connectorId``, when
given, must be 1). An event without an ``evse`` (allowed after the first one of a
session) belongs to the connector its session started on.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

from ocpp.v201 import call

from libv4e.csms._txbook import SessionEvent

__all__ = ["ENERGY_REGISTER", "connector_of", "energy_register_wh", "session_event"]

ENERGY_REGISTER = "Energy.Active.Import.Register"
"""The measurand of the energy register (also a sampled value's default measurand)."""

_WH_PER = {"Wh": 1.0, "kWh": 1000.0}


def energy_register_wh(values: Sequence[Any] | None) -> float | None:
    """The last total energy register among ``values``, in Wh (None: none given). A
    sampled value counts when its measurand is the register (or left out, which means
    it), it is not per phase, its unit is Wh or kWh (Wh when left out) and its value is
    finite; ``unitOfMeasure.multiplier`` is a power of ten."""
    found = None
    for meter_value in values or ():
        for sampled in _get(meter_value, "sampled_value") or ():
            measurand = _text(_get(sampled, "measurand")) or ENERGY_REGISTER
            if measurand != ENERGY_REGISTER or _get(sampled, "phase") is not None:
                continue
            unit = _get(sampled, "unit_of_measure")
            name = _text(_get(unit, "unit")) or "Wh"
            multiplier = _get(unit, "multiplier") or 0
            value = _get(sampled, "value")
            if name not in _WH_PER or not isinstance(multiplier, int) or not -3 <= multiplier <= 9:
                continue
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            wh = float(value) * _WH_PER[name] * 10.0**multiplier
            if math.isfinite(wh):
                found = wh
    return found


def session_event(
    msg: call.TransactionEvent,
    timestamp: dt.datetime,
    *,
    connector_id: int,
    id_tag_status: str = "Accepted",
) -> SessionEvent:
    """``msg`` as the book reads it. ``timestamp``: the message's time, parsed by the
    caller; ``connector_id``: where it happens (its EVSE id, or the session's connector
    when the message names none: see :func:`connector_of`)."""
    info = msg.transaction_info
    return SessionEvent(
        kind=_text(msg.event_type) or "",
        charger_transaction_id=str(_get(info, "transaction_id")),
        seq_no=msg.seq_no,
        connector_id=connector_id,
        timestamp=timestamp,
        id_tag=_get(msg.id_token, "id_token"),
        energy_wh=energy_register_wh(msg.meter_value),
        reason=_text(_get(info, "stopped_reason")),
        reservation_id=msg.reservation_id,
        id_tag_status=id_tag_status,
    )


def connector_of(evse: Any) -> int | None:
    """The connector an event's ``evse`` names (one connector per EVSE: the EVSE id), or
    None when it names none."""
    if evse is None:
        return None
    evse_id = _get(evse, "id")
    return evse_id if isinstance(evse_id, int) else None


def _get(obj: Any, field: str) -> Any:
    """``obj.field``, or its key in a dict (snake_case, or as sent: camelCase); None for
    None. Nested values may arrive as the package's dataclasses or as plain dicts."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        if field in obj:
            return obj[field]
        head, *rest = field.split("_")
        return obj.get(head + "".join(p.title() for p in rest))
    return getattr(obj, field, None)


def _text(value: Any) -> str | None:
    """An enum member or string as its text (None stays None)."""
    if value is None:
        return None
    return str(getattr(value, "value", value))
