"""OCPP 2.0.1 TransactionEvent read for the transaction book: the message's values in
the book's version-agnostic terms (:class:`~libv4e.csms._txbook.SessionEvent`).

Nothing here does I/O. The topology: one connector per EVSE, so an EVSE's id is the
connector id the books, the REST API and the diagnosis use (``evse.connectorId``, when
given, must be 1). An event without an ``evse`` (allowed after the first one of a
session) belongs to the connector its session started on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ocpp.charge_point import remove_nones, snake_to_camel_case
from ocpp.v16 import datatypes as data16
from ocpp.v201 import call, call_result, datatypes

from libv4e.csms._registry import SESSION_STATUSES as SESSION_STATUSES
from libv4e.csms._registry import read_meter_values
from libv4e.csms._txbook import MeterRows, SessionEvent
from libv4e.protocol._convert import converter
from libv4e.protocol._fields import field as _get
from libv4e.protocol._fields import text as _text
from libv4e.protocol._time import parse_time
from libv4e.transport._connection import MessageRecord

CHARGING_STATES = {  # a TransactionEvent's chargingState → the connector's 1.6 status
    "Charging": "Charging",
    "SuspendedEV": "SuspendedEV",
    "SuspendedEVSE": "SuspendedEVSE",
    "EVConnected": "Preparing",
    "Idle": "Preparing",
}

if TYPE_CHECKING:  # the handlers import this module
    from libv4e.csms._handlers import HandlerParts

log = logging.getLogger("libv4e.csms")

__all__ = [
    "ENERGY_REGISTER",
    "NO_AUTHORIZATION",
    "answer_transaction_event",
    "as_16_meter_values",
    "connector_of",
    "id_token_info",
    "meter_register_wh",
    "session_event",
]

ENERGY_REGISTER = "Energy.Active.Import.Register"
"""The measurand of the energy register (also a sampled value's default measurand)."""

_WH_PER = {"Wh": 1.0, "kWh": 1000.0}

NO_AUTHORIZATION = "NoAuthorization"
"""The IdToken type that asks for no authorization (its idToken is empty)."""


TRANSACTION_BEGIN = "Transaction.Begin"
"""The context of a value sampled at a transaction's start (an Ended event's
TxEndedMeasurands carry them, with the periodic and the end values)."""


def meter_register_wh(values: Sequence[Any] | None, context: str | None = None) -> float | None:
    """The last total energy register among ``values``, in Wh (None: none given). A
    sampled value counts when its measurand is the register (or left out, which means
    it), it is not per phase, its unit is Wh or kWh (Wh when left out) and its value is
    finite; ``unitOfMeasure.multiplier`` is a power of ten. ``context``: only values
    sampled in that context count."""
    found = None
    for meter_value in values or ():
        for sampled in _get(meter_value, "sampled_value") or ():
            measurand = _text(_get(sampled, "measurand")) or ENERGY_REGISTER
            if measurand != ENERGY_REGISTER or _get(sampled, "phase") is not None:
                continue
            if context is not None and _text(_get(sampled, "context")) != context:
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


def as_16_meter_values(values: Sequence[Any] | None) -> list[data16.MeterValue]:
    """2.0.1 meter values as 1.6's (the registry's connector readings read those): the
    number as text, ``unitOfMeasure.unit`` as ``unit`` with its multiplier applied."""
    out = []
    for meter_value in values or ():
        sampled = []
        for sv in _get(meter_value, "sampled_value") or ():
            value = _get(sv, "value")
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            unit = _get(sv, "unit_of_measure")
            multiplier = _get(unit, "multiplier") or 0
            if not isinstance(multiplier, int) or not -3 <= multiplier <= 9:
                continue
            sampled.append(
                data16.SampledValue(
                    value=repr(float(value) * 10.0**multiplier),
                    context=_text(_get(sv, "context")),
                    measurand=_text(_get(sv, "measurand")),
                    phase=_text(_get(sv, "phase")),
                    location=_text(_get(sv, "location")),
                    unit=_text(_get(unit, "unit")),
                )
            )
        out.append(
            data16.MeterValue(timestamp=_get(meter_value, "timestamp"), sampled_value=sampled)
        )
    return out


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
        energy_wh=meter_register_wh(msg.meter_value),
        begin_energy_wh=meter_register_wh(msg.meter_value, TRANSACTION_BEGIN),
        reason=_text(_get(info, "stopped_reason")),
        reservation_id=msg.reservation_id,
        id_tag_status=id_tag_status,
        id_token_type=_id_token_type(msg.id_token),
        trigger_reason=_text(msg.trigger_reason),
        offline=bool(msg.offline),
    )


def _id_token_type(token: Any) -> str | None:
    """The ``type`` of an event's ``idToken`` (None: the event carries none)."""
    kind = None if token is None else _text(_get(token, "type"))
    return None if kind is None else str(kind)


def connector_of(evse: Any) -> int | None:
    """The connector an event's ``evse`` names (one connector per EVSE: the EVSE id), or
    None when it names none."""
    if evse is None:
        return None
    evse_id = _get(evse, "id")
    return evse_id if isinstance(evse_id, int) else None


def _as_json(value: Any) -> dict[str, Any]:
    """A 2.0.1 meter value (the package's dataclass, or a dict) as its camelCase JSON
    object, without the fields left out."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        unstructured: dict[str, Any] = converter.unstructure(value)  # the one converter
        return unstructured
    data: dict[str, Any] = snake_to_camel_case(remove_nones(value))
    return data


def id_token_info(info: Any) -> datatypes.IdTokenInfoType:
    """A 1.6 ``idTagInfo`` (what the authorization list answers) as 2.0.1's
    ``idTokenInfo``: the same statuses, the expiry as ``cacheExpiryDateTime``; a parent
    id tag as the ``groupIdToken`` (type Central)."""
    parent = getattr(info, "parent_id_tag", None)
    return datatypes.IdTokenInfoType(
        status=_text(info.status) or "Invalid",
        cache_expiry_date_time=getattr(info, "expiry_date", None),
        group_id_token=None
        if parent is None
        else datatypes.IdTokenType(id_token=parent, type="Central"),
    )


async def answer_transaction_event(
    parts: HandlerParts,
    cp_id: str,
    msg: call.TransactionEvent,
    answer_for: Callable[[Any], MessageRecord | None],
) -> tuple[call_result.TransactionEvent, MessageRecord | None, bool]:
    """Book one TransactionEvent of ``cp_id``: one change on the ledger (the session,
    the reservation it uses, the TxProfiles it binds or ends, the meter values it
    carries), written in one database transaction with the answer's log row
    (``answer_for(result)``), under the charger's lock. A session the book forgot (it
    finished long ago, or before a restart) is read back from the store first, so a
    resent event is recognised as one. Returns the result, its log row and whether the
    row was written with the change (for :meth:`ChargerHandlers._reply`)."""
    now = parts.clock()
    token = _get(msg.id_token, "id_token")
    info = None if token is None else parts.auth.authorize(str(token), now)
    if info is not None and _text(_get(msg.id_token, "type")) == NO_AUTHORIZATION:
        info = data16.IdTagInfo(status="Accepted")  # as Authorize answers it
    timestamp = parse_time(msg.timestamp) or now
    charger_id = str(_get(msg.transaction_info, "transaction_id"))
    async with parts.bookkeeper.lock(cp_id):
        known = parts.transactions.of_charger(cp_id, charger_id)
        if known is None:  # finished long ago, or before a restart: the store has it
            known = await parts.store.transaction_of_charger(cp_id, charger_id)
        await parts.bookkeeper.ensure_transaction_ids()  # no checkpoint from here to
        # the plan: another charger's event cannot take the id reserved for this one
        connector = connector_of(msg.evse)
        if connector is None:
            connector = 0 if known is None else known.connector_id
        event = session_event(
            msg,
            timestamp,
            connector_id=connector,
            id_tag_status="Accepted" if info is None else str(_text(info.status)),
        )
        change = parts.ledger.event(cp_id, event, received_at=now, stored=known)
        tx = change.transaction
        values = [_as_json(mv) for mv in msg.meter_value or ()]
        if values and tx is not None and not change.retry and change.unmatched is None:
            rows = MeterRows(cp_id, tx.connector_id, tx.transaction_id, tuple(values))
            change = dataclasses.replace(change, meter_values=(rows,))
        if change.unmatched is not None:
            log.warning(
                "%s sent TransactionEvent %s seqNo %s for transaction %r; kept as %s",
                cp_id,
                event.kind,
                event.seq_no,
                charger_id,
                change.unmatched.kind,
            )
        result = call_result.TransactionEvent(
            id_token_info=None if info is None else id_token_info(info)
        )
        answer = answer_for(result)
        logged = await parts.bookkeeper.commit(change, answer)
        charging = _text(_get(msg.transaction_info, "charging_state"))
        booked = parts.transactions.get(tx.transaction_id) if tx is not None else None
        if booked is not None:  # the connector's status, in 1.6 words
            status = None if charging is None else CHARGING_STATES.get(str(charging))
            if parts.registry.session_status(
                cp_id, booked.connector_id, status, running=booked.active
            ):
                parts.charger_changed(cp_id)
        if change.meter_values and tx is not None:
            parts.meter_values_stored(cp_id, tx.transaction_id)
            if tx.active:  # the connector's latest readings (power, energy) for the API
                state = parts.registry.get(cp_id)
                held = None if state is None else state.connectors.get(tx.connector_id)
                if held is not None:
                    read_meter_values(as_16_meter_values(msg.meter_value), held.meter)
    return result, answer, logged
