"""Persistence for the central system, behind small interfaces.

:class:`Store` is what the CSMS needs, the union of one protocol per role (chargers,
transactions, tags, message log, operator books, security, 2.0.1 device models), each
with its contract written on it; a component that needs one role takes that role.
:class:`~libv4e.csms._sqlite.SqliteStore` is the embedded default and
:class:`~libv4e.csms._pgstore.PostgresStore` the shared one (both over one query layer,
:mod:`~libv4e.csms._sql`). Another database can replace them by implementing the same
methods.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import cattrs

from libv4e._errors import StoreDataError as StoreDataError
from libv4e._errors import StoreError as StoreError
from libv4e.csms._auth import IdTag
from libv4e.csms._devicemodel import DeviceModel, ReportedVariable
from libv4e.csms._firmware import ChargerFirmware
from libv4e.csms._locallists import ChargerLocalList
from libv4e.csms._names import SpokenNames
from libv4e.csms._profiles import ChargingProfileRecord
from libv4e.csms._registry import ChargePointState, Transaction, iso, parse_time
from libv4e.csms._reservations import Reservation
from libv4e.csms._security import ChargerSecurity, SecurityEvent
from libv4e.csms._txbook import MeterRows, UnmatchedStop
from libv4e.transport._connection import MessageRecord

_DATA_ERRORS = (UnicodeError, OverflowError, ValueError, TypeError)
"""What sqlite3 raises for values it cannot bind (not sqlite3.Error subclasses)."""


class ChargerStore(Protocol):
    """The charge points' own records.

    Contract: one state and one set of spoken names per ``cp_id``; a save replaces the
    whole record (never merges) and a batch of states is written in one transaction.
    Chargers load as disconnected (nothing is connected when a CSMS starts). Deleting a
    charger forgets its state and its 2.0.1 device model only: its transactions and
    message log stay."""

    async def save_chargers(self, states: Sequence[ChargePointState]) -> None:
        """Insert or replace several states in one transaction; StoreDataError naming the
        charger whose state cannot be written."""

    async def load_chargers(self) -> list[ChargePointState]:
        """Every stored charge point, marked disconnected."""

    async def delete_charger(self, cp_id: str) -> None:
        """Forget a charge point's state and device model, in one transaction."""

    async def save_spoken_names(self, names: SpokenNames) -> None:
        """Insert or replace one charger's spoken names (key: cp_id)."""

    async def spoken_names(self, cp_id: str) -> SpokenNames | None:
        """One charger's spoken names as stored, if any (read each time: every node of a
        cluster says the same)."""


class TransactionStore(Protocol):
    """Transactions, their meter values and the stops that matched none.

    Contract: transaction ids are OCPP integers (32-bit signed): a lookup by another key
    finds nothing, and a write of one fails with StoreDataError. An id handed out by
    :meth:`reserve_transaction_ids` is never handed out again, not even after a crash.
    :meth:`write_transactions` is all or nothing: an insert never replaces a row (an id
    already taken fails the whole write), an update touches only the row of that id *and*
    charger (no such row fails the whole write), and the message-log rows given with the
    change are written in the same database transaction. Lists come newest first."""

    async def reserve_transaction_ids(self, count: int) -> int:
        """Reserve ``count`` consecutive ids durably; returns the first of the block."""

    async def write_transactions(
        self,
        new: Sequence[Transaction],
        changed: Sequence[Transaction],
        *,
        log: Sequence[MessageRecord] = (),
        reservations: Sequence[Reservation] = (),
        profiles: Sequence[ChargingProfileRecord] = (),
        meter_values: Sequence[MeterRows] = (),
    ) -> None:
        """Insert ``new``, update ``changed``, write the operator-book records the same
        event moved (``reservations``, ``profiles``: another charger's record of the same
        id refuses the write), append the ``meter_values`` the event carried and
        ``log``, in one transaction."""

    async def load_transactions(self, *, finished: int = 500) -> list[Transaction]:
        """Active transactions and the last ``finished`` stopped ones, oldest first."""

    async def last_transaction_id(self) -> int:
        """The highest transaction id ever stored or handed out (0 if none)."""

    async def transactions(
        self, *, cp_id: str | None, active: bool | None, limit: int, offset: int
    ) -> list[Transaction]:
        """Transactions, newest first, optionally filtered."""

    async def transaction(self, transaction_id: int) -> Transaction | None:
        """One transaction, if stored."""

    async def transaction_of_charger(
        self, cp_id: str, charger_transaction_id: str
    ) -> Transaction | None:
        """The OCPP 2.0.1 session ``cp_id`` calls ``charger_transaction_id``, if stored
        (one row per charger and id: a second insert of the pair fails the write)."""

    async def add_unmatched_stop(
        self, stop: UnmatchedStop, *, log: Sequence[MessageRecord] = ()
    ) -> None:
        """Keep a StopTransaction that matched no transaction (and ``log``, together)."""

    async def unmatched_stops(
        self, *, cp_id: str | None, limit: int, offset: int
    ) -> list[UnmatchedStop]:
        """Unmatched stops, newest first."""

    async def save_meter_values(
        self,
        cp_id: str,
        connector_id: int,
        transaction_id: int | None,
        values: list[Any],
        transaction: Transaction | None = None,
    ) -> None:
        """Append one MeterValues message's values and, in the same transaction, update
        ``transaction``'s row if it is still active."""

    async def meter_values(
        self, transaction_id: int, *, last: int | None = None
    ) -> list[dict[str, Any]]:
        """A transaction's meter values in arrival order (``last``: of its last
        ``last`` messages only)."""

    async def prune_meter_values(
        self,
        *,
        transactions: Sequence[int] = (),
        per_transaction: int | None = None,
        chargers: Sequence[str] = (),
        untied_per_charger: int | None = None,
        older_than: dt.datetime | None = None,
    ) -> int:
        """Meter-value retention; returns how many rows were deleted."""


class TagStore(Protocol):
    """The central authorization list.

    Contract: each tag write stores the list version with it, in one transaction; a tag
    save replaces the tag, deleting an absent tag still stores the version."""

    async def save_tag(self, tag: IdTag, list_version: int) -> None: ...
    async def delete_tag(self, id_tag: str, list_version: int) -> None: ...
    async def load_tags(self) -> tuple[list[IdTag], int]:
        """Every tag and the list version (0 if never set)."""


class MessageStore(Protocol):
    """The OCPP message log.

    Contract: rows are appended in order (ids grow with time) and read newest first; text
    a database cannot hold (lone surrogates, NUL) is stored escaped or replaced, never
    refused; payloads come back as written (key order kept); retention never deletes a
    charger's rows below its fair share (:func:`fair_quota`)."""

    async def log_messages(self, records: Sequence[MessageRecord]) -> None:
        """Append messages to the log, in one transaction."""

    async def retract_messages(self, records: Sequence[MessageRecord]) -> None:
        """Delete the newest logged row of each of ``records`` (same charger, direction,
        message type, unique id): an answer logged with its change but never sent."""

    async def prune_messages(
        self,
        *,
        max_rows: int | None,
        older_than: dt.datetime | None,
        per_charger: int | None = None,
    ) -> int:
        """Delete rows older than ``older_than`` and beyond the fair share; how many."""

    async def messages(
        self, cp_id: str | None, *, limit: int, offset: int, action: str | None = None
    ) -> list[dict[str, Any]]:
        """Logged messages, newest first, optionally filtered."""


class OperatorBooksStore(Protocol):
    """The operator books: local lists, reservations, charging profiles, firmware; one
    JSON document per record.

    Contract: a save inserts or replaces the whole record by its key. Reservation and
    charging-profile record ids are OCPP integers (a lookup by another finds nothing, a
    write of one fails with StoreDataError), and a record of an id that belongs to
    *another* charger is never replaced: the write fails with StoreError and nothing of
    it is written (two nodes may pick the same new id at once). Lists come newest
    (highest id) first; loads keep every live record and the ``finished`` most recent
    others."""

    async def save_local_list(self, state: ChargerLocalList) -> None:
        """Insert or replace one charger's local list state (key: cp_id)."""

    async def load_local_lists(self) -> list[ChargerLocalList]:
        """Every charger's local list state."""

    async def save_reservation(self, reservation: Reservation) -> None:
        """Insert or replace a reservation of the same charger (key: reservation_id)."""

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
        """Insert or replace records of the same charger (key: record_id), all or none."""

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


class SecurityStore(Protocol):
    """Charger credentials and the security extension's records.

    Contract: one password hash and one security record per charger (a save replaces
    it; setting None removes the hash); a charger's security events are kept newest
    ``keep`` only, appended and trimmed in one transaction."""

    async def set_secret(self, cp_id: str, password_hash: str | None) -> None: ...
    async def secrets(self) -> dict[str, str]: ...
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


class DeviceModelStore(Protocol):
    """What OCPP 2.0.1 chargers reported of their device models (NotifyReport,
    NotifyEvent, and the values a SetVariables the station Accepted set).

    Contract: one row per charger and variable key (component, its instance, EVSE and
    connector, variable, its instance, attribute type); a write is one transaction that
    updates the known variables, inserts new ones while the charger has fewer than
    ``max_variables`` (the others are dropped and counted), and appends events keeping
    the charger's newest ``max_events``. Two writes of one charger's model never both
    pass the bound (the second waits for the first)."""

    async def save_device_model(
        self,
        cp_id: str,
        variables: Sequence[ReportedVariable],
        events: Sequence[Mapping[str, Any]] = (),
        *,
        max_variables: int,
        max_events: int,
    ) -> int:
        """Upsert ``variables`` (in order: the last of one key wins) and append
        ``events``, in one transaction; returns how many new variables were dropped."""

    async def device_model(self, cp_id: str) -> DeviceModel:
        """The charger's stored model (variables in the order first stored, events
        oldest first, the dropped count); empty if it reported nothing."""


class Store(
    ChargerStore,
    TransactionStore,
    TagStore,
    MessageStore,
    OperatorBooksStore,
    SecurityStore,
    DeviceModelStore,
    Protocol,
):
    """What the central system persists: every role, opened and closed as one database.
    All methods are async and raise StoreError (StoreDataError for data no database
    could hold). ``tests/csms/test_store_contract.py`` checks the contracts on both stores."""

    async def open(self) -> None:
        """Connect and create the tables where missing (migrating older databases)."""

    async def close(self) -> None:
        """Commit and disconnect; safe to call on a store that is not open."""


_conv = cattrs.Converter()
_conv.register_unstructure_hook(dt.datetime, iso)
_conv.register_structure_hook(dt.datetime, lambda v, _: parse_time(v))


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
