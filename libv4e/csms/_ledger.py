"""The ledger: everything a transaction touches, sans-IO, with one owner.

A transaction's event moves more than the transaction: a StartTransaction uses the
reservation it names and binds the TxProfiles waiting on its connector; a stop (or a
session the CSMS closes) ends the TxProfiles bound to it; both move the registry's
connector → transaction link and the meter-value dedupe window. The :class:`Ledger`
plans each event as one :class:`~libv4e.csms._txbook.Change` naming every row, for that
one connector; the shell (:meth:`Bookkeeper.commit`, ``csms/_bookkeeper``) writes the change in one
database transaction and then :meth:`Ledger.apply` makes it true in memory. Nothing
here does I/O, awaits or reads a clock: times come in as arguments.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from libv4e.csms._profiles import ProfileBook
from libv4e.csms._registry import Registry, Transaction
from libv4e.csms._reservations import ReservationBook
from libv4e.csms._txbook import Change, SessionEvent, TransactionBook

__all__ = ["METER_DEDUPE_WINDOW", "Ledger", "SeenMeterValues"]

METER_DEDUPE_WINDOW = 64
"""Meter values remembered per open transaction (a retry resends the last few)."""


class SeenMeterValues:
    """Per open transaction, the timestamps of its last few stored meter values (a
    charger retrying after a lost answer resends them; they are stored once)."""

    def __init__(self) -> None:
        self._seen: dict[int, dict[str, None]] = {}

    def get(self, transaction_id: int) -> dict[str, None] | None:
        """The timestamps seen for ``transaction_id`` (None: not read back yet)."""
        return self._seen.get(transaction_id)

    def started(self, transaction_id: int) -> None:
        """A new transaction: nothing of it is stored yet."""
        self._seen.setdefault(transaction_id, {})

    def read_back(self, transaction_id: int, stored: Sequence[dict[str, Any]]) -> dict[str, None]:
        """Seed from the values stored before (after a restart, or a long-finished one)."""
        seen = self._seen[transaction_id] = {
            str(mv.get("timestamp")): None for mv in stored[-METER_DEDUPE_WINDOW:]
        }
        return seen

    def mark(self, transaction_id: int, timestamps: Sequence[str]) -> None:
        """Remember values once they are stored (a failed write is retried in full)."""
        seen = self._seen.setdefault(transaction_id, {})
        for timestamp in timestamps:  # the last few timestamps: retries resend recent ones
            seen[timestamp] = None
            if len(seen) > METER_DEDUPE_WINDOW:
                del seen[next(iter(seen))]

    def forget(self, transaction_id: int) -> None:
        """The transaction closed."""
        self._seen.pop(transaction_id, None)


class Ledger:
    """The transactions (:attr:`book`) and what their events move: the reservation and
    profile books' records tied to a transaction, the connector link, the dedupe window."""

    def __init__(
        self,
        book: TransactionBook,
        *,
        reservations: ReservationBook,
        profiles: ProfileBook,
        registry: Registry,
    ) -> None:
        self.book = book
        self.reservations = reservations
        self.profiles = profiles
        self.registry = registry
        self.meter_seen = SeenMeterValues()
        """Per open transaction, the meter values already stored (the dedupe window)."""

    # -- planning: one complete change per event ------------------------------------------

    def start(
        self,
        cp_id: str,
        connector_id: int,
        id_tag: str,
        meter_start: int,
        started_at: dt.datetime,
        *,
        reservation_id: int | None,
        id_tag_status: str,
        received_at: dt.datetime,
    ) -> Change:
        """A StartTransaction (see :meth:`TransactionBook.start`), with the reservation
        it uses (Used) and the TxProfiles it binds, and the session it supersedes."""
        change = self.book.start(
            cp_id,
            connector_id,
            id_tag,
            meter_start,
            started_at,
            reservation_id=reservation_id,
            id_tag_status=id_tag_status,
            received_at=received_at,
        )
        return self.complete(change, received_at)

    def complete(self, change: Change, now: dt.datetime) -> Change:
        """``change`` (planned by the transaction book) with the operator-book records
        its transactions move: for each one it starts, the reservation it uses and the
        TxProfiles it binds; for each one it closes, the TxProfiles that end with it."""
        if change.retry:
            return change
        reservations = []
        profiles = []
        for tx in change.closed:
            profiles += self.profiles.plan_ended(tx.cp_id, tx.transaction_id, now)
        for tx in change.new:
            if tx.reservation_id is not None:
                used = self.reservations.plan_used(
                    tx.cp_id, tx.reservation_id, tx.transaction_id, now
                )
                if used is not None:
                    reservations.append(used)
            if tx.active:
                profiles += self.profiles.plan_started(tx.cp_id, tx.connector_id, tx.transaction_id)
        if not reservations and not profiles:
            return change
        return dataclasses.replace(
            change, reservations=tuple(reservations), profiles=tuple(profiles)
        )

    def event(
        self,
        cp_id: str,
        event: SessionEvent,
        *,
        received_at: dt.datetime,
        stored: Transaction | None = None,
    ) -> Change:
        """An OCPP 2.0.1 TransactionEvent (see :meth:`TransactionBook.event`), with the
        reservation a new session uses, the TxProfiles it binds or that end with it."""
        change = self.book.event(cp_id, event, received_at=received_at, stored=stored)
        return self.complete(change, received_at)

    # -- applying what was written --------------------------------------------------------

    def metered(
        self,
        cp_id: str,
        connector_id: int,
        transaction_id: int,
        change: Change | None,
        timestamps: Sequence[str],
    ) -> None:
        """Meter values of a transaction were written (with ``change``, the energy they
        moved, if any): apply it, remember the values (a retry resends them), count the
        session confirmed, and link the connector to it while it runs."""
        if change is not None:
            self.book.apply(change)
        if timestamps:
            self.meter_seen.mark(transaction_id, timestamps)
        self.book.apply(self.book.confirm(transaction_id))
        current = self.book.get(transaction_id)
        state = self.registry.get(cp_id)
        connector = None if state is None else state.connectors.get(connector_id)
        if current is None or not current.active:
            # a finished session's late values: its window is read back from the store
            # next time, not kept (it would grow with every such session)
            self.meter_seen.forget(transaction_id)
        elif connector is not None:
            connector.transaction_id = current.transaction_id

    def apply(self, change: Change) -> None:
        """Make a written change true in memory: the transactions, the records of the
        operator books, the connector links and the dedupe window."""
        self.book.apply(change)
        for reservation in change.reservations:
            self.reservations.put(reservation)
        self.profiles.put(change.profiles)
        for tx in change.closed:
            state = self.registry.get(tx.cp_id)
            connectors = [] if state is None else list(state.connectors.values())
            for connector in connectors:  # its connector, or 0 if it moved as it ended
                if connector.transaction_id != tx.transaction_id:
                    continue
                connector.transaction_id = None
                connector.meter.power_w = 0.0
                connector.meter.current_a = 0.0
                if tx.meter_stop is not None and tx.reconciled is None:
                    connector.meter.energy_wh = float(tx.meter_stop)
            self.meter_seen.forget(tx.transaction_id)
        for tx in change.changed:  # a 2.0.1 session booked on 0 that now names its EVSE
            state = self.registry.get(tx.cp_id) if tx.active else None
            for cid, held in list(state.connectors.items() if state is not None else ()):
                if cid != tx.connector_id and held.transaction_id == tx.transaction_id:
                    held.transaction_id = None
                    self.registry.ensure(tx.cp_id).connector(
                        tx.connector_id
                    ).transaction_id = tx.transaction_id
        for tx in change.new:
            if not tx.active:  # a 2.0.1 session first heard of by its Ended event
                continue
            connector = self.registry.ensure(tx.cp_id).connector(tx.connector_id)
            connector.transaction_id = tx.transaction_id
            connector.meter.energy_wh = float(tx.meter_start)
            self.meter_seen.started(tx.transaction_id)  # new: nothing stored yet
