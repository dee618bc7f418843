"""Transactions, unmatched stops and reservations (``/transactions/...``,
``/reservations/...``)."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, request

from libv4e.csms import CentralSystem, ReservationStatus

from ..errors import ApiError, int_arg


def blueprint(csms: CentralSystem) -> Blueprint:
    """The transaction and reservation routes over ``csms``."""
    bp = Blueprint("transactions", __name__)

    @bp.get("/transactions")
    async def transactions() -> Any:
        """Transactions, newest first (?cp_id=EVSE001&active=true&limit=50&offset=0)."""
        active = request.args.get("active")
        if active not in (None, "true", "false"):
            raise ApiError(400, "bad_query", "active must be true or false")
        limit = int_arg("limit", 50, 1, 1000)
        offset = int_arg("offset", 0, 0, 10**9)
        txs = await csms.store.transactions(
            cp_id=request.args.get("cp_id"),
            active=None if active is None else active == "true",
            limit=limit,
            offset=offset,
        )
        live = csms.transactions  # in-memory state is the freshest (energy so far)
        return {
            "limit": limit,
            "offset": offset,
            "transactions": [(live.get(t.transaction_id) or t).as_dict() for t in txs],
        }

    @bp.get("/transactions/unmatched_stops")
    async def unmatched_stops() -> Any:
        """StopTransactions that matched no transaction of their charger (unknown id, an id
        of another charger, or a conflicting second stop), newest first
        (?cp_id=EVSE001&limit=50&offset=0). They were answered as OCPP requires and
        changed no transaction; they are kept here as evidence."""
        limit = int_arg("limit", 50, 1, 1000)
        offset = int_arg("offset", 0, 0, 10**9)
        stops = await csms.store.unmatched_stops(
            cp_id=request.args.get("cp_id"), limit=limit, offset=offset
        )
        return {"limit": limit, "offset": offset, "unmatched_stops": [s.as_dict() for s in stops]}

    @bp.get("/transactions/<int:transaction_id>")
    async def transaction(transaction_id: int) -> Any:
        """One transaction with its meter values."""
        tx = await csms.get_transaction(transaction_id)
        if tx is None:
            raise ApiError(404, "unknown_transaction", f"transaction {transaction_id} is unknown")
        return {**tx.as_dict(), "meter_values": await csms.store.meter_values(transaction_id)}

    @bp.get("/reservations")
    async def reservations() -> Any:
        """Reservations, newest first (?cp_id=EVSE001&status=Reserved&limit=50&offset=0).
        Statuses: Pending, Reserved, Used, Cancelled, Expired, Faulted, Occupied, Rejected,
        Unavailable, Unanswered."""
        status = request.args.get("status")
        if status is not None and status not in ReservationStatus._value2member_map_:
            raise ApiError(
                400, "bad_query", f"status must be one of {', '.join(ReservationStatus)}"
            )
        limit = int_arg("limit", 50, 1, 1000)
        offset = int_arg("offset", 0, 0, 10**9)
        await csms.operator.expire_reservations()
        found = await csms.store.reservations(
            cp_id=request.args.get("cp_id"), status=status, limit=limit, offset=offset
        )
        return {
            "limit": limit,
            "offset": offset,
            "reservations": [r.as_dict() for r in found],
        }

    @bp.get("/reservations/<int:reservation_id>")
    async def reservation(reservation_id: int) -> Any:
        """One reservation and its history."""
        await csms.operator.expire_reservations()
        record = csms.reservations.get(reservation_id)
        if record is None:
            record = await csms.store.reservation(reservation_id)
        if record is None:
            raise ApiError(404, "unknown_reservation", f"reservation {reservation_id} is unknown")
        return record.as_dict()

    return bp
