"""Persistence for the central system, behind a small interface.

:class:`Store` is what the CSMS needs; :class:`~libv4e.csms._sqlite.SqliteStore` is the
embedded default and :class:`~libv4e.csms._pgstore.PostgresStore` the shared one. Another
database can replace them by implementing the same methods.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import cattrs

from libv4e._errors import StoreDataError as StoreDataError
from libv4e._errors import StoreError as StoreError
from libv4e.csms._auth import IdTag
from libv4e.csms._firmware import ChargerFirmware
from libv4e.csms._locallists import ChargerLocalList
from libv4e.csms._names import SpokenNames
from libv4e.csms._profiles import ChargingProfileRecord
from libv4e.csms._registry import ChargePointState, Transaction, iso, parse_time
from libv4e.csms._reservations import Reservation
from libv4e.csms._security import ChargerSecurity, SecurityEvent
from libv4e.csms._txbook import UnmatchedStop
from libv4e.transport._connection import MessageRecord

_DATA_ERRORS = (UnicodeError, OverflowError, ValueError, TypeError)
"""What sqlite3 raises for values it cannot bind (not sqlite3.Error subclasses)."""


def storable(key: int) -> bool:
    """Whether an integer key fits SQLite's 64-bit integers: a larger one was never stored,
    so a lookup by it finds nothing (instead of failing)."""
    return -(2**63) <= key < 2**63


def clean_text(value: str) -> str:
    """``value`` if it can be encoded as UTF-8, else with its lone surrogates escaped
    (``\\udXXX``), so peer-supplied text can always be stored and logged."""
    if value.isascii():
        return value
    try:
        value.encode()
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode()
    return value


@dataclasses.dataclass(slots=True)
class Ticket:
    """A support ticket, e.g. filed when a charger does not come back online."""

    ticket_id: int
    cp_id: str
    summary: str
    created_at: dt.datetime
    status: str = "open"
    scenario: str | None = None
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "ticket_id": self.ticket_id,
            "cp_id": self.cp_id,
            "summary": self.summary,
            "status": self.status,
            "scenario": self.scenario,
            "created_at": iso(self.created_at),
            "details": self.details,
        }


class TicketStore(Protocol):
    """Help-desk data (support tickets): not the CSMS's own books, but kept in the same
    database by both stores."""

    async def add_ticket(self, ticket: Ticket) -> Ticket: ...
    async def tickets(self) -> list[Ticket]: ...


class Store(TicketStore, Protocol):
    """What the central system persists. All methods are async and raise StoreError.

    It still includes :class:`TicketStore` (the web API reaches tickets through the
    CSMS's store); the central system itself never calls the ticket methods."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def save_chargers(self, states: Sequence[ChargePointState]) -> None: ...
    async def load_chargers(self) -> list[ChargePointState]: ...
    async def delete_charger(self, cp_id: str) -> None: ...
    async def reserve_transaction_ids(self, count: int) -> int: ...
    async def write_transactions(
        self,
        new: Sequence[Transaction],
        changed: Sequence[Transaction],
        *,
        log: Sequence[MessageRecord] = (),
        reservations: Sequence[Reservation] = (),
        profiles: Sequence[ChargingProfileRecord] = (),
    ) -> None: ...
    async def load_transactions(self, *, finished: int = 500) -> list[Transaction]: ...
    async def last_transaction_id(self) -> int: ...
    async def add_unmatched_stop(
        self, stop: UnmatchedStop, *, log: Sequence[MessageRecord] = ()
    ) -> None: ...
    async def unmatched_stops(
        self, *, cp_id: str | None, limit: int, offset: int
    ) -> list[UnmatchedStop]: ...
    async def transactions(
        self, *, cp_id: str | None, active: bool | None, limit: int, offset: int
    ) -> list[Transaction]: ...
    async def transaction(self, transaction_id: int) -> Transaction | None: ...
    async def save_meter_values(
        self,
        cp_id: str,
        connector_id: int,
        transaction_id: int | None,
        values: list[Any],
        transaction: Transaction | None = None,
    ) -> None: ...
    async def meter_values(
        self, transaction_id: int, *, last: int | None = None
    ) -> list[dict[str, Any]]: ...
    async def prune_meter_values(
        self,
        *,
        transactions: Sequence[int] = (),
        per_transaction: int | None = None,
        chargers: Sequence[str] = (),
        untied_per_charger: int | None = None,
        older_than: dt.datetime | None = None,
    ) -> int: ...
    async def save_tag(self, tag: IdTag, list_version: int) -> None: ...
    async def delete_tag(self, id_tag: str, list_version: int) -> None: ...
    async def load_tags(self) -> tuple[list[IdTag], int]: ...
    async def log_messages(self, records: Sequence[MessageRecord]) -> None: ...
    async def retract_messages(self, records: Sequence[MessageRecord]) -> None:
        """Delete the newest logged row of each of ``records`` (same charger, direction,
        message type, unique id): an answer logged with its change but never sent."""

    async def prune_messages(
        self,
        *,
        max_rows: int | None,
        older_than: dt.datetime | None,
        per_charger: int | None = None,
    ) -> int: ...
    async def messages(
        self, cp_id: str | None, *, limit: int, offset: int, action: str | None = None
    ) -> list[dict[str, Any]]: ...
    async def set_secret(self, cp_id: str, password_hash: str | None) -> None: ...
    async def secrets(self) -> dict[str, str]: ...
    # -- operator books (issue 15): one JSON document per record, keyed as below --------
    async def save_local_list(self, state: ChargerLocalList) -> None:
        """Insert or replace one charger's local list state (key: cp_id)."""

    async def load_local_lists(self) -> list[ChargerLocalList]:
        """Every charger's local list state."""

    async def save_reservation(self, reservation: Reservation) -> None:
        """Insert or replace a reservation (key: reservation_id)."""

    async def load_reservations(self, *, finished: int = 500) -> list[Reservation]:
        """Active reservations and the ``finished`` most recent others, by id."""

    async def reservations(
        self, *, cp_id: str | None, status: str | None, limit: int, offset: int
    ) -> list[Reservation]:
        """Reservations, newest (highest id) first, optionally filtered."""

    async def reservation(self, reservation_id: int) -> Reservation | None:
        """One reservation, if stored."""

    async def last_reservation_id(self) -> int:
        """The highest reservation id ever stored (0 if none)."""

    async def save_charging_profiles(self, records: Sequence[ChargingProfileRecord]) -> None:
        """Insert or replace charging profile records (key: record_id), in one transaction."""

    async def load_charging_profiles(self, *, finished: int = 500) -> list[ChargingProfileRecord]:
        """Installed and pending records, and the ``finished`` most recent others."""

    async def charging_profiles(
        self, *, cp_id: str | None, status: str | None, limit: int, offset: int
    ) -> list[ChargingProfileRecord]:
        """Charging profile records, newest first, optionally filtered."""

    async def last_charging_profile_record_id(self) -> int:
        """The highest charging profile record id ever stored (0 if none)."""

    async def save_firmware_state(self, state: ChargerFirmware) -> None:
        """Insert or replace one charger's firmware and diagnostics state (key: cp_id)."""

    async def load_firmware_states(self) -> list[ChargerFirmware]:
        """Every charger's firmware and diagnostics state."""

    async def save_security_state(self, state: ChargerSecurity) -> None:
        """Insert or replace one charger's security record (key: cp_id; security
        extension: profile, events, certificates, signed firmware and log requests)."""

    async def load_security_states(self) -> list[ChargerSecurity]:
        """Every charger's security record."""

    async def security_state(self, cp_id: str) -> ChargerSecurity | None:
        """One charger's security record as stored, if any."""

    async def add_security_event(self, cp_id: str, event: SecurityEvent, *, keep: int) -> None:
        """Append a security event; the charger keeps its newest ``keep`` only."""

    async def security_events(self, cp_id: str, *, limit: int) -> tuple[list[SecurityEvent], int]:
        """The charger's newest ``limit`` security events (newest first) and the count kept."""

    async def save_spoken_names(self, names: SpokenNames) -> None:
        """Insert or replace one charger's spoken names (key: cp_id)."""

    async def spoken_names(self, cp_id: str) -> SpokenNames | None:
        """One charger's spoken names as stored, if any (read each time: every node of a
        cluster says the same)."""


_conv = cattrs.Converter()
_conv.register_unstructure_hook(dt.datetime, iso)
_conv.register_structure_hook(dt.datetime, lambda v, _: parse_time(v))


def charger_rows(states: Sequence[ChargePointState]) -> list[tuple[str, str]]:
    """``(cp_id, JSON)`` of each state; StoreDataError naming the charger whose state
    cannot be written (a value no reader could render), so the caller can write the
    others without it."""
    rows = []
    for st in states:
        try:
            rows.append((st.cp_id, json.dumps(_conv.unstructure(st))))
        except _DATA_ERRORS as exc:
            raise StoreDataError(f"cannot store the state of {st.cp_id!r}: {exc!r}") from exc
    return rows


def fair_quota(
    counts: Mapping[str, int], max_rows: int | None, per_charger: int | None
) -> int | None:
    """The most rows each charger may keep so that no charger keeps more than
    ``per_charger`` and all together at most ``max_rows``, taking from the biggest first
    (water-filling): a charger under the quota loses nothing, however much another one
    logs. None: no charger is over any limit."""
    quota = per_charger
    total = sum(min(n, quota) if quota is not None else n for n in counts.values())
    if max_rows is not None and total > max_rows:
        sizes = sorted(min(n, quota) if quota is not None else n for n in counts.values())
        left, remaining = max_rows, len(sizes)
        quota = 0
        for size in sizes:
            share = left // remaining
            if size <= share:
                left -= size
                remaining -= 1
                continue
            quota = share
            break
        else:  # every charger fits (only possible when max_rows covers them)
            quota = max(sizes, default=0)
    if quota is None or all(n <= quota for n in counts.values()):
        return None
    return quota
