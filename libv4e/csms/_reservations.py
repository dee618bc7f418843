"""Reservations as records (OCPP 1.6 Reservation profile): the CSMS's book of what it
reserved where, and what became of it. Plain state, no I/O; the CSMS persists each change.

Lifecycle (:data:`RESERVATION_TRANSITIONS`)::

    Pending --Accepted--> Reserved --StartTransaction(reservationId)--> Used
       |                     |------ CancelReservation Accepted ------> Cancelled
       |                     |------ expiry date passed ----------------> Expired
       |                     '------ ReserveNow again, same id ---------> Pending
       |--Faulted / Occupied / Rejected / Unavailable (the answer)--> that status
       '--no answer (timeout, error, disconnect)--> Unanswered --> Used | Cancelled | Expired

Reservation ids are unique per CSMS: one is allocated when the caller gives none. An id
may be given explicitly; it replaces a finished record with that id, or (OCPP's rule) an
active one on the same charger, and is refused if active on another charger.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import enum
from collections.abc import Iterator
from typing import Any

from libv4e._errors import Libv4eError
from libv4e.csms._books import StatusChange, note, step, take_fields
from libv4e.csms._registry import iso


class ReservationStatus(enum.StrEnum):
    """Where a reservation stands."""

    PENDING = "Pending"
    """ReserveNow sent, not answered yet."""
    RESERVED = "Reserved"
    USED = "Used"
    CANCELLED = "Cancelled"
    EXPIRED = "Expired"
    FAULTED = "Faulted"
    OCCUPIED = "Occupied"
    REJECTED = "Rejected"
    UNAVAILABLE = "Unavailable"
    UNANSWERED = "Unanswered"
    """The charger did not answer ReserveNow (it may or may not hold it)."""


class ReservationEvent(enum.StrEnum):
    """What can happen to a reservation."""

    ACCEPTED = "Accepted"
    FAULTED = "Faulted"
    OCCUPIED = "Occupied"
    REJECTED = "Rejected"
    UNAVAILABLE = "Unavailable"
    NO_ANSWER = "no_answer"
    USED = "used"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    RESERVE_AGAIN = "reserve_again"


RESERVATION_TRANSITIONS: dict[tuple[ReservationStatus, ReservationEvent], ReservationStatus] = {
    (ReservationStatus.PENDING, ReservationEvent.ACCEPTED): ReservationStatus.RESERVED,
    (ReservationStatus.PENDING, ReservationEvent.FAULTED): ReservationStatus.FAULTED,
    (ReservationStatus.PENDING, ReservationEvent.OCCUPIED): ReservationStatus.OCCUPIED,
    (ReservationStatus.PENDING, ReservationEvent.REJECTED): ReservationStatus.REJECTED,
    (ReservationStatus.PENDING, ReservationEvent.UNAVAILABLE): ReservationStatus.UNAVAILABLE,
    (ReservationStatus.PENDING, ReservationEvent.NO_ANSWER): ReservationStatus.UNANSWERED,
    (
        ReservationStatus.PENDING,
        ReservationEvent.USED,
    ): ReservationStatus.USED,  # StartTransaction overtook the answer
    (ReservationStatus.RESERVED, ReservationEvent.USED): ReservationStatus.USED,
    (ReservationStatus.RESERVED, ReservationEvent.CANCELLED): ReservationStatus.CANCELLED,
    (ReservationStatus.RESERVED, ReservationEvent.EXPIRED): ReservationStatus.EXPIRED,
    (ReservationStatus.RESERVED, ReservationEvent.RESERVE_AGAIN): ReservationStatus.PENDING,
    (ReservationStatus.UNANSWERED, ReservationEvent.USED): ReservationStatus.USED,
    (ReservationStatus.UNANSWERED, ReservationEvent.CANCELLED): ReservationStatus.CANCELLED,
    (ReservationStatus.UNANSWERED, ReservationEvent.EXPIRED): ReservationStatus.EXPIRED,
    (ReservationStatus.UNANSWERED, ReservationEvent.RESERVE_AGAIN): ReservationStatus.PENDING,
}
"""(status, event) → status. Statuses with no way out are final."""

ACTIVE = frozenset(
    {ReservationStatus.PENDING, ReservationStatus.RESERVED, ReservationStatus.UNANSWERED}
)
"""Statuses in which the reservation may still hold a connector."""


class ReservationConflictError(Libv4eError, ValueError):
    """An explicit reservation id is active on another charger."""


@dataclasses.dataclass(slots=True)
class Reservation:
    """One reservation as the CSMS recorded it."""

    reservation_id: int
    cp_id: str
    connector_id: int
    id_tag: str
    expiry_date: dt.datetime
    created_at: dt.datetime
    parent_id_tag: str | None = None
    status: str = ReservationStatus.PENDING
    transaction_id: int | None = None
    """The transaction that used it."""
    cancel_status: str | None = None
    """The charger's last answer to CancelReservation, if one was sent."""
    history: list[StatusChange] = dataclasses.field(default_factory=list)

    @property
    def active(self) -> bool:
        """Whether it may still hold a connector."""
        return self.status in ACTIVE

    def apply(self, event: ReservationEvent, at: dt.datetime, detail: str | None = None) -> str:
        """Take ``event`` (InvalidTransition if not possible); returns the new status."""
        self.status = step(RESERVATION_TRANSITIONS, ReservationStatus(self.status), event)
        note(self.history, StatusChange(at, self.status, detail))
        return self.status

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "reservation_id": self.reservation_id,
            "cp_id": self.cp_id,
            "connector_id": self.connector_id,
            "id_tag": self.id_tag,
            "parent_id_tag": self.parent_id_tag,
            "expiry_date": iso(self.expiry_date),
            "status": self.status,
            "active": self.active,
            "transaction_id": self.transaction_id,
            "cancel_status": self.cancel_status,
            "created_at": iso(self.created_at),
            "history": [h.as_dict() for h in self.history],
        }


class ReservationBook:
    """The reservations the CSMS knows, by reservation id (active ones and recent others)."""

    def __init__(self) -> None:
        self._records: dict[int, Reservation] = {}
        self._last_id = 0

    def __iter__(self) -> Iterator[Reservation]:
        return iter(sorted(self._records.values(), key=lambda r: r.reservation_id))

    def __len__(self) -> int:
        return len(self._records)

    def get(self, reservation_id: int) -> Reservation | None:
        """The record of ``reservation_id``, if in memory."""
        return self._records.get(reservation_id)

    def load(self, records: list[Reservation], last_id: int) -> None:
        """Replace the book's content (e.g. from a store)."""
        self._records = {r.reservation_id: r for r in records}
        self._last_id = max([last_id, *self._records])

    def allocate_id(self) -> int:
        """A reservation id never used by this CSMS."""
        self._last_id += 1
        return self._last_id

    def request(
        self,
        cp_id: str,
        connector_id: int,
        id_tag: str,
        expiry_date: dt.datetime,
        now: dt.datetime,
        *,
        parent_id_tag: str | None = None,
        reservation_id: int | None = None,
    ) -> Reservation:
        """Record a ReserveNow about to be sent (status Pending), allocating the id if None.

        Raises ReservationConflictError if ``reservation_id`` is active on another charger.
        """
        if reservation_id is None:
            reservation_id = self.allocate_id()
        self._last_id = max(self._last_id, reservation_id)
        old = self._records.get(reservation_id)
        if old is not None and old.active:
            if old.cp_id != cp_id:
                raise ReservationConflictError(
                    f"reservation {reservation_id} is {old.status} on {old.cp_id}"
                )
            if old.status != ReservationStatus.PENDING:
                old.apply(ReservationEvent.RESERVE_AGAIN, now, "ReserveNow sent again")
            old.connector_id, old.id_tag, old.parent_id_tag = connector_id, id_tag, parent_id_tag
            old.expiry_date, old.transaction_id, old.cancel_status = expiry_date, None, None
            return old
        record = Reservation(
            reservation_id, cp_id, connector_id, id_tag, expiry_date, now, parent_id_tag
        )
        note(record.history, StatusChange(now, record.status, "ReserveNow sent"))
        self._records[reservation_id] = record
        return record

    def answered(self, reservation_id: int, status: str, now: dt.datetime) -> Reservation:
        """Record the charger's answer to ReserveNow (Accepted, Faulted, Occupied, ...)."""
        record = self._records[reservation_id]
        if record.status == ReservationStatus.PENDING:
            record.apply(ReservationEvent(status), now, f"ReserveNow answered {status}")
            self._expire(record, now)
        return record

    def unanswered(self, reservation_id: int, reason: str, now: dt.datetime) -> Reservation:
        """Record that ReserveNow got no answer."""
        record = self._records[reservation_id]
        if record.status == ReservationStatus.PENDING:
            record.apply(ReservationEvent.NO_ANSWER, now, reason)
            self._expire(record, now)
        return record

    def cancel_answered(
        self, cp_id: str, reservation_id: int, status: str, now: dt.datetime
    ) -> Reservation | None:
        """Record the charger's answer to CancelReservation; Accepted cancels."""
        record = self._records.get(reservation_id)
        if record is None or record.cp_id != cp_id:
            return None
        record.cancel_status = status
        if status == "Accepted" and record.status in (
            ReservationStatus.RESERVED,
            ReservationStatus.UNANSWERED,
        ):
            record.apply(ReservationEvent.CANCELLED, now, "CancelReservation answered Accepted")
        return record

    def station_ended(
        self, cp_id: str, reservation_id: int, status: str, now: dt.datetime
    ) -> Reservation | None:
        """A 2.0.1 ReservationStatusUpdate: the station ended the reservation — Expired,
        or Removed (it no longer holds the EVSE: made unavailable, faulted…, recorded as
        cancelled by the station). None when it is not an active reservation of ``cp_id``."""
        record = self._records.get(reservation_id)
        if record is None or record.cp_id != cp_id:
            return None
        if record.status not in (ReservationStatus.RESERVED, ReservationStatus.UNANSWERED):
            return None
        if status == "Expired":
            record.apply(ReservationEvent.EXPIRED, now, "the station reported it Expired")
        else:
            record.apply(ReservationEvent.CANCELLED, now, f"the station reported it {status}")
        return record

    def used(
        self, cp_id: str, reservation_id: int, transaction_id: int, now: dt.datetime
    ) -> Reservation | None:
        """A StartTransaction of ``cp_id`` carried ``reservation_id``: mark it Used."""
        planned = self.plan_used(cp_id, reservation_id, transaction_id, now)
        return None if planned is None else self.put(planned)

    def plan_used(
        self, cp_id: str, reservation_id: int, transaction_id: int, now: dt.datetime
    ) -> Reservation | None:
        """What :meth:`used` would make of the record, as a copy (the book unchanged): a
        StartTransaction's change carries it, and :meth:`put` takes it once written."""
        record = self._records.get(reservation_id)
        if record is None or record.cp_id != cp_id or not record.active:
            return None
        planned = copy.deepcopy(record)
        planned.transaction_id = transaction_id
        planned.apply(ReservationEvent.USED, now, f"transaction {transaction_id} started")
        return planned

    def put(self, record: Reservation) -> Reservation:
        """Take a planned record (written): the one held is updated in place."""
        held = self._records.get(record.reservation_id)
        if held is None:
            self._records[record.reservation_id] = held = record
        else:
            take_fields(held, record)
        self._last_id = max(self._last_id, record.reservation_id)
        return held

    def expire(self, now: dt.datetime, cp_id: str | None = None) -> list[Reservation]:
        """Mark every reservation (of ``cp_id``, if given) whose expiry date has passed
        Expired; returns them."""
        return [
            r for r in self._records.values() if cp_id in (None, r.cp_id) and self._expire(r, now)
        ]

    @staticmethod
    def _expire(record: Reservation, now: dt.datetime) -> bool:
        if (
            record.status in (ReservationStatus.RESERVED, ReservationStatus.UNANSWERED)
            and record.expiry_date <= now
        ):
            record.apply(ReservationEvent.EXPIRED, now, "expiry date passed")
            return True
        return False

    def forget_finished(self, keep: int) -> None:
        """Drop all but the ``keep`` newest finished records from memory."""
        finished = [r for r in self if not r.active]
        for record in finished[: max(0, len(finished) - keep)]:
            del self._records[record.reservation_id]
