"""The query layer both SQL stores share: every query of the :class:`~libv4e.csms._store.Store`
roles written once, over the tables of :mod:`~libv4e.csms._sqlschema`.

:class:`SqlStore` holds a :class:`~libv4e.csms._sqlschema.Dialect` (how its database
spells placeholders, JSON, times and change marks) and leaves to its backend only what
truly differs: connecting and running a transaction (``_run``), handing out transaction
ids, COPY, and deleting by age (PostgreSQL in batches under an advisory lock), see
:data:`BACKEND_METHODS`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from libv4e._errors import StoreDataError
from libv4e.csms._auth import IdTag
from libv4e.csms._devicemodel import DeviceModel, ReportedVariable, VariableKey
from libv4e.csms._firmware import ChargerFirmware
from libv4e.csms._locallists import ChargerLocalList
from libv4e.csms._names import SpokenNames
from libv4e.csms._profiles import ChargingProfileRecord
from libv4e.csms._registry import ChargePointState, Transaction
from libv4e.csms._reservations import Reservation
from libv4e.csms._security import ChargerSecurity, SecurityEvent
from libv4e.csms._sqlschema import DEVICE_VARIABLE_KEY, Dialect, Sql
from libv4e.csms._store import _DATA_ERRORS, _conv, fair_quota
from libv4e.csms._txbook import MeterRows, UnmatchedStop
from libv4e.protocol._bounds import INT_MAX, INT_MIN
from libv4e.transport._connection import MessageRecord

T = TypeVar("T")
D = TypeVar("D")

BACKEND_METHODS: dict[str, frozenset[str]] = {
    "SqliteStore": frozenset(
        {
            "__init__",
            "_run",  # one transaction on the worker thread (or inline for :memory:)
            "_work",
            "open",  # connect, WAL, create the tables
            "close",
            "reserve_transaction_ids",  # a durable high-water mark in ``meta``
            "last_transaction_id",
            "_delete_older",  # retention by age: one transaction
        }
    ),
    "PostgresStore": frozenset(
        {
            "__init__",
            "__repr__",
            "run",  # one transaction on a pooled connection (public: the cluster's tables)
            "_run",
            "open",  # pool, schema under an advisory lock
            "close",
            "reserve_transaction_ids",  # a sequence shared by the nodes, advisory lock
            "last_transaction_id",  # the sequence counts too
            "log_messages",  # COPY
            "_delete_older",  # retention by age in batches, one node at a time
            "changes_since",  # what the other nodes wrote (xid8 marks)
        }
    ),
}
"""The methods each backend defines itself, beside :class:`SqlStore`'s: connecting and
running transactions, id blocks, COPY, advisory locks and batched pruning. Every other
query is the shared layer's (``tests/csms/test_store_layers.py`` holds the stores to this)."""


def ocpp_id(key: int) -> bool:
    """Whether ``key`` is an OCPP 1.6 integer (32-bit signed), the range of every id
    column: a lookup by another key finds nothing, a write of one fails."""
    return INT_MIN <= key <= INT_MAX


def _check_ids(kind: str, keys: Sequence[int]) -> None:
    for key in keys:
        if not ocpp_id(key):
            raise StoreDataError(f"{kind} id {key} is outside the OCPP integer range")


def clean_text(value: str) -> str:
    """``value`` storable as text in either database: lone surrogates escaped
    (``\\udXXX``) and NUL characters (PostgreSQL refuses them; a peer may put one in a
    message id) replaced by U+FFFD, so peer-supplied text can always be stored and
    logged."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if value.isascii():
        return value
    try:
        value.encode()
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode()
    return value


MESSAGE_COLUMNS = "cp_id, at, direction, message_type, unique_id, action, payload, late"
INSERT_MESSAGE = f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)"


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


def _json(value: Any) -> str:
    return json.dumps(_conv.unstructure(value))


class SqlStore:
    """The :class:`~libv4e.csms._store.Store` queries over any SQL database that a
    :class:`~libv4e.csms._sqlschema.Dialect` describes (SQLite and PostgreSQL).

    A backend subclass supplies ``_run`` (one database transaction, its errors as
    StoreError), ``open``/``close`` and the methods of :data:`BACKEND_METHODS`."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    async def _run(self, fn: Callable[[Any], T], *, durable: bool = False) -> T:
        """Run ``fn(connection)`` in one database transaction (the backend's)."""
        raise NotImplementedError

    async def query(self, fn: Callable[[Sql], T]) -> T:
        """Run ``fn`` in one database transaction, given the connection as :class:`Sql`
        (``?`` placeholders in either database): how an application keeps tables of its
        own in the same database (create them with ``Sql.create_tables``)."""
        return await self._run(lambda conn: fn(Sql(conn, self.dialect)))

    def _load(self, rows: Sequence[Any], kind: type[D]) -> list[D]:
        """The JSON documents in the first column of ``rows`` as ``kind``."""
        decode = self.dialect.decode
        return [_conv.structure(decode(r[0]), kind) for r in rows]

    def _one(self, row: Any, kind: type[D]) -> D | None:
        return None if row is None else _conv.structure(self.dialect.decode(row[0]), kind)

    # -- chargers ------------------------------------------------------------------------

    async def save_chargers(self, states: Sequence[ChargePointState]) -> None:
        """Insert or replace several charge points' states in one transaction."""
        rows = charger_rows(states)
        await self.query(
            lambda q: q.executemany(
                "INSERT INTO chargers (cp_id, data) VALUES (?, ?) ON CONFLICT (cp_id) "
                f"DO UPDATE SET data = excluded.data{self.dialect.changed}",
                rows,
            )
        )

    async def load_chargers(self) -> list[ChargePointState]:
        """Every stored charge point (marked disconnected: nothing is connected at start)."""
        states = self._load(
            await self.query(lambda q: q.rows("SELECT data FROM chargers")), ChargePointState
        )
        for state in states:
            state.connected = False
        return states

    async def load_charger(self, cp_id: str) -> ChargePointState | None:
        """One stored charge point, as its last writer wrote it."""
        row = await self.query(
            lambda q: q.row("SELECT data FROM chargers WHERE cp_id = ?", (cp_id,))
        )
        return self._one(row, ChargePointState)

    async def delete_charger(self, cp_id: str) -> None:
        """Forget a charge point's state and device model (its transactions and message
        log stay)."""

        def work(q: Sql) -> None:
            for table in ("chargers", "device_models", "device_variables", "device_events"):
                q.execute(f"DELETE FROM {table} WHERE cp_id = ?", (cp_id,))  # constants

        await self.query(work)

    async def set_secret(self, cp_id: str, password_hash: str | None) -> None:
        """Store (or with None, remove) a charger's password hash."""

        def work(q: Sql) -> None:
            if password_hash is None:
                q.execute("DELETE FROM secrets WHERE cp_id = ?", (cp_id,))
            else:
                q.execute(
                    "INSERT INTO secrets (cp_id, password_hash) VALUES (?, ?) ON CONFLICT "
                    "(cp_id) DO UPDATE SET password_hash = excluded.password_hash",
                    (cp_id, password_hash),
                )
            if self.dialect.next_change is not None:  # the other nodes reload the secrets
                q.execute(
                    "INSERT INTO meta (key, value) VALUES ('secrets_changed', "
                    f"{self.dialect.next_change}) ON CONFLICT (key) DO UPDATE SET "
                    "value = excluded.value"
                )

        await self.query(work)

    async def secrets(self) -> dict[str, str]:
        """Every charger's password hash."""
        rows = await self.query(lambda q: q.rows("SELECT cp_id, password_hash FROM secrets"))
        return {r[0]: r[1] for r in rows}

    async def save_spoken_names(self, names: SpokenNames) -> None:
        """Insert or replace one charger's spoken names."""
        await self._save_document("spoken_names", names.cp_id, names)

    async def spoken_names(self, cp_id: str) -> SpokenNames | None:
        """One charger's spoken names as stored, if any."""
        row = await self.query(
            lambda q: q.row("SELECT data FROM spoken_names WHERE cp_id = ?", (cp_id,))
        )
        return self._one(row, SpokenNames)

    # -- transactions --------------------------------------------------------------------

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
        """Insert ``new`` transactions and update ``changed`` ones, write the operator-book
        records the same event moved (``reservations``, ``profiles``), append the meter
        values it carried (``meter_values``) and ``log`` (the messages that made the
        change) to the message log, in one transaction.

        An insert never replaces a row (an id already taken fails the whole write), an
        update only touches the row of that id *and* charger, and another charger's
        reservation or profile record of the same id refuses the whole write."""
        _check_ids("transaction", [t.transaction_id for t in new])
        inserts = [
            (
                t.transaction_id,
                t.cp_id,
                t.active,
                _json(t),
                t.charger_transaction_id,
                t.id_token_type,
            )
            for t in new
        ]
        updates = [
            (t.active, _json(t), t.id_token_type, t.transaction_id, t.cp_id) for t in changed
        ]
        messages = self._message_rows(log)
        changed_mark = self.dialect.changed
        reservation_rows = self._reservation_rows(reservations)
        profile_rows = self._profile_rows(profiles)
        _check_ids("transaction", [m.transaction_id for m in meter_values])
        stored_at = self.dialect.time(dt.datetime.now(dt.UTC))
        meter_rows = [
            (m.cp_id, m.connector_id, m.transaction_id, json.dumps(list(m.values)), stored_at)
            for m in meter_values
        ]

        def work(q: Sql) -> None:
            q.executemany(INSERT_MESSAGE, messages)
            self._upsert_reservations(q, reservation_rows)
            self._upsert_profiles(q, profile_rows)
            for row in updates:
                cur = q.execute(
                    f"UPDATE transactions SET active = ?, data = ?, id_token_type = ?"
                    f"{changed_mark} WHERE transaction_id = ? AND cp_id = ?",
                    row,
                )
                if cur.rowcount != 1:
                    raise Refused(f"no transaction {row[3]} of {row[4]} to update")
            q.executemany(
                "INSERT INTO transactions (transaction_id, cp_id, active, data, "
                "charger_transaction_id, id_token_type) VALUES (?,?,?,?,?,?)",
                inserts,
            )
            q.executemany(
                "INSERT INTO meter_values (cp_id, connector_id, transaction_id, data, at) "
                "VALUES (?,?,?,?,?)",
                meter_rows,
            )

        await self.query(work)

    async def load_transactions(self, *, finished: int = 500) -> list[Transaction]:
        """Active transactions and the last ``finished`` stopped ones, oldest first."""
        return await self._load_live(
            "transactions", "transaction_id", "active", finished, Transaction
        )

    async def transactions(
        self, *, cp_id: str | None, active: bool | None, limit: int, offset: int
    ) -> list[Transaction]:
        """Transactions, newest first."""
        return await self._page(
            "transactions", "transaction_id", Transaction, limit, offset, cp_id=cp_id, active=active
        )

    async def transaction(self, transaction_id: int) -> Transaction | None:
        """One transaction, if stored."""
        return await self._by_id("transactions", "transaction_id", transaction_id, Transaction)

    async def transaction_of_charger(
        self, cp_id: str, charger_transaction_id: str
    ) -> Transaction | None:
        """The OCPP 2.0.1 session ``cp_id`` calls ``charger_transaction_id``, if stored."""
        row = await self.query(
            lambda q: q.row(
                "SELECT data FROM transactions WHERE cp_id = ? AND charger_transaction_id = ?",
                (cp_id, charger_transaction_id),
            )
        )
        return self._one(row, Transaction)

    async def charger_transactions(self, cp_id: str) -> list[Transaction]:
        """A charger's active transactions, oldest first."""
        rows = await self.query(
            lambda q: q.rows(
                "SELECT data FROM transactions WHERE cp_id = ? AND active ORDER BY transaction_id",
                (cp_id,),
            )
        )
        return self._load(rows, Transaction)

    async def add_unmatched_stop(
        self, stop: UnmatchedStop, *, log: Sequence[MessageRecord] = ()
    ) -> None:
        """Keep a StopTransaction that matched no transaction of its charger (and append
        ``log`` to the message log in the same transaction)."""
        data = _json(stop)
        messages = self._message_rows(log)

        def work(q: Sql) -> None:
            q.executemany(INSERT_MESSAGE, messages)
            q.execute("INSERT INTO unmatched_stops (cp_id, data) VALUES (?, ?)", (stop.cp_id, data))

        await self.query(work)

    async def unmatched_stops(
        self, *, cp_id: str | None, limit: int, offset: int
    ) -> list[UnmatchedStop]:
        """Unmatched stops, newest first."""
        return await self._page("unmatched_stops", "id", UnmatchedStop, limit, offset, cp_id=cp_id)

    async def save_meter_values(
        self,
        cp_id: str,
        connector_id: int,
        transaction_id: int | None,
        values: list[Any],
        transaction: Transaction | None = None,
    ) -> None:
        """Append the JSON meter values of one MeterValues message and, in the same
        transaction, update ``transaction``'s row (its acknowledged register)."""
        if transaction_id is not None:
            _check_ids("transaction", [transaction_id])
        data = json.dumps(values)
        update = None if transaction is None else _json(transaction)
        at = self.dialect.time(dt.datetime.now(dt.UTC))
        changed_mark = self.dialect.changed

        def work(q: Sql) -> None:
            q.execute(
                "INSERT INTO meter_values (cp_id, connector_id, transaction_id, data, at) "
                "VALUES (?,?,?,?,?)",
                (cp_id, connector_id, transaction_id, data, at),
            )
            if transaction is not None:
                q.execute(
                    f"UPDATE transactions SET data = ?{changed_mark} "
                    "WHERE transaction_id = ? AND cp_id = ? AND active",
                    (update, transaction.transaction_id, transaction.cp_id),
                )

        await self.query(work)

    async def meter_values(
        self, transaction_id: int, *, last: int | None = None
    ) -> list[dict[str, Any]]:
        """The meter values recorded for a transaction, in arrival order (with ``last``:
        those of its last ``last`` MeterValues messages only)."""
        if not ocpp_id(transaction_id):
            return []
        sql = "SELECT data FROM meter_values WHERE transaction_id = ? ORDER BY id DESC"
        args: tuple[int, ...] = (transaction_id,)
        if last is not None:
            sql, args = sql + " LIMIT ?", (transaction_id, last)
        rows = await self.query(lambda q: q.rows(sql, args))
        decode = self.dialect.decode
        return [mv for r in reversed(rows) for mv in decode(r[0])]

    async def prune_meter_values(
        self,
        *,
        transactions: Sequence[int] = (),
        per_transaction: int | None = None,
        chargers: Sequence[str] = (),
        untied_per_charger: int | None = None,
        older_than: dt.datetime | None = None,
        batch: int = 10_000,
    ) -> int:
        """Meter-value retention: keep the newest ``per_transaction`` rows (MeterValues
        messages) of each of ``transactions``, the newest ``untied_per_charger`` rows
        without a transaction of each of ``chargers``, and delete every row stored before
        ``older_than`` (PostgreSQL: in transactions of at most ``batch`` rows); returns
        how many were deleted."""

        def work(q: Sql) -> int:
            deleted = 0
            if per_transaction is not None:
                for tx_id in transactions:
                    if ocpp_id(tx_id):
                        deleted += q.execute(
                            "DELETE FROM meter_values WHERE transaction_id = ? AND id <= "
                            "(SELECT id FROM meter_values WHERE transaction_id = ? "
                            "ORDER BY id DESC LIMIT 1 OFFSET ?)",
                            (tx_id, tx_id, per_transaction),
                        ).rowcount
            if untied_per_charger is not None:
                for cp_id in chargers:
                    deleted += q.execute(
                        "DELETE FROM meter_values WHERE transaction_id IS NULL AND cp_id = ? "
                        "AND id <= (SELECT id FROM meter_values WHERE transaction_id IS NULL "
                        "AND cp_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                        (cp_id, cp_id, untied_per_charger),
                    ).rowcount
            return deleted

        total = await self.query(work)
        if older_than is not None:
            total += await self._delete_older("meter_values", older_than, batch=batch)
        return total

    async def _delete_older(
        self, table: str, older_than: dt.datetime, *, batch: int, exclusive: bool = False
    ) -> int:
        """Delete the rows of ``table`` (``messages`` or ``meter_values``) stored before
        ``older_than``; how many. The backend's: SQLite in one transaction, PostgreSQL in
        batches (``exclusive``: skipped while another node prunes)."""
        raise NotImplementedError

    # -- authorization list --------------------------------------------------------------

    async def save_tag(self, tag: IdTag, list_version: int) -> None:
        """Insert or replace a tag and store the list version, in one transaction."""
        data = _json(tag)

        def work(q: Sql) -> None:
            q.execute(
                "INSERT INTO id_tags (id_tag, data) VALUES (?, ?) "
                "ON CONFLICT (id_tag) DO UPDATE SET data = excluded.data",
                (tag.id_tag, data),
            )
            set_meta(q, "list_version", str(list_version))

        await self.query(work)

    async def delete_tag(self, id_tag: str, list_version: int) -> None:
        """Delete a tag and store the list version, in one transaction."""

        def work(q: Sql) -> None:
            q.execute("DELETE FROM id_tags WHERE id_tag = ?", (id_tag,))
            set_meta(q, "list_version", str(list_version))

        await self.query(work)

    async def load_tags(self) -> tuple[list[IdTag], int]:
        """Every tag and the list version."""

        def work(q: Sql) -> tuple[list[Any], Any]:
            rows = q.rows("SELECT data FROM id_tags")
            return rows, q.value("SELECT value FROM meta WHERE key = 'list_version'")

        rows, version = await self.query(work)
        return self._load(rows, IdTag), int(version or 0)

    # -- message log ---------------------------------------------------------------------

    def _message_rows(self, records: Sequence[MessageRecord]) -> list[tuple[Any, ...]]:
        """Message-log rows of ``records``, in the column order of :data:`INSERT_MESSAGE`."""
        time = self.dialect.time
        return [
            (
                clean_text(r.cp_id),
                time(r.at),
                r.direction,
                r.message_type,
                clean_text(r.unique_id),
                None if r.action is None else clean_text(r.action),
                json.dumps(r.payload, default=repr),
                bool(r.late),
            )
            for r in records
        ]

    async def log_messages(self, records: Sequence[MessageRecord]) -> None:
        """Append OCPP messages to the log, in one transaction."""
        rows = self._message_rows(records)
        await self.query(lambda q: q.executemany(INSERT_MESSAGE, rows))

    async def retract_messages(self, records: Sequence[MessageRecord]) -> None:
        """Delete the newest logged row of each of ``records`` (same charger, direction,
        message type and unique id): answers written with their change that could not be
        sent after all."""
        keys = [
            (clean_text(r.cp_id), clean_text(r.unique_id), r.direction, r.message_type)
            for r in records
        ]

        def work(q: Sql) -> None:
            for key in keys:
                q.execute(
                    "DELETE FROM messages WHERE id = (SELECT MAX(id) FROM messages "
                    "WHERE cp_id = ? AND unique_id = ? AND direction = ? AND message_type = ?)",
                    key,
                )

        await self.query(work)

    async def prune_messages(
        self,
        *,
        max_rows: int | None,
        older_than: dt.datetime | None,
        per_charger: int | None = None,
        batch: int = 10_000,
    ) -> int:
        """Delete logged messages logged before ``older_than`` (PostgreSQL: in
        transactions of at most ``batch`` rows), then those beyond a fair share per
        charger (:func:`fair_quota`: at most ``per_charger`` each, ``max_rows`` in all, the
        biggest loggers trimmed first); one node of a cluster at a time (the others
        skip). Returns how many were deleted."""
        lock = self.dialect.prune_lock

        def fair(q: Sql) -> int:
            if lock is not None and not q.value(lock):
                return 0  # another node is pruning
            counts = dict(q.rows("SELECT cp_id, COUNT(*) FROM messages GROUP BY cp_id"))
            quota = fair_quota(counts, max_rows, per_charger)
            deleted = 0
            for cp_id, count in counts.items():
                if quota is None or count <= quota:
                    continue
                if quota == 0:
                    cur = q.execute("DELETE FROM messages WHERE cp_id = ?", (cp_id,))
                else:  # keep the newest ``quota``: delete below the quota-th newest id
                    cur = q.execute(
                        "DELETE FROM messages WHERE cp_id = ? AND id < (SELECT id FROM "
                        "messages WHERE cp_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                        (cp_id, cp_id, quota - 1),
                    )
                deleted += int(cur.rowcount)
            return deleted

        total = 0
        if older_than is not None:
            total += await self._delete_older("messages", older_than, batch=batch, exclusive=True)
        if max_rows is not None or per_charger is not None:
            total += await self.query(fair)
        return total

    async def messages(
        self, cp_id: str | None, *, limit: int, offset: int, action: str | None = None
    ) -> list[dict[str, Any]]:
        """Logged messages, newest first."""
        rows = await self.query(
            lambda q: _filtered(
                q,
                "messages",
                "id",
                limit,
                offset,
                columns=f"id, {MESSAGE_COLUMNS}",
                cp_id=cp_id,
                action=action,
            )
        )
        d = self.dialect
        return [
            {
                "id": r[0],
                "cp_id": r[1],
                "at": d.time_text(r[2]),
                "direction": r[3],
                "message_type": r[4],
                "unique_id": r[5],
                "action": r[6],
                "payload": d.decode(r[7]),
                "late": bool(r[8]),
            }
            for r in rows
        ]

    # -- operator books: one JSON document per record --------------------------------------

    async def save_local_list(self, state: ChargerLocalList) -> None:
        """Insert or replace one charger's local list state."""
        await self._save_document("local_lists", state.cp_id, state)

    async def load_local_lists(self) -> list[ChargerLocalList]:
        """Every charger's local list state."""
        return await self._load_documents("local_lists", ChargerLocalList)

    async def save_reservation(self, reservation: Reservation) -> None:
        """Insert or replace a reservation. Replacing another charger's reservation of the
        same id (two nodes picked one id at once) fails with StoreError instead."""
        rows = self._reservation_rows([reservation])
        await self.query(lambda q: self._upsert_reservations(q, rows))

    @staticmethod
    def _reservation_rows(records: Sequence[Reservation]) -> list[tuple[Any, ...]]:
        _check_ids("reservation", [r.reservation_id for r in records])
        return [(r.reservation_id, r.cp_id, str(r.status), r.active, _json(r)) for r in records]

    def _upsert_reservations(self, q: Sql, rows: Sequence[Sequence[Any]]) -> None:
        self._upsert_owned(
            q,
            "INSERT INTO reservations (reservation_id, cp_id, status, active, data) "
            "VALUES (?,?,?,?,?) ON CONFLICT (reservation_id) DO UPDATE SET "
            "status = excluded.status, active = excluded.active, data = excluded.data"
            f"{self.dialect.changed} WHERE reservations.cp_id = excluded.cp_id",
            rows,
            "reservation",
        )

    async def load_reservations(self, *, finished: int = 500) -> list[Reservation]:
        """Active reservations and the ``finished`` most recent others, by id."""
        return await self._load_live(
            "reservations", "reservation_id", "active", finished, Reservation
        )

    async def reservations(
        self, *, cp_id: str | None, status: str | None, limit: int, offset: int
    ) -> list[Reservation]:
        """Reservations, newest first, optionally filtered by charger and status."""
        return await self._page(
            "reservations", "reservation_id", Reservation, limit, offset, cp_id=cp_id, status=status
        )

    async def reservation(self, reservation_id: int) -> Reservation | None:
        """One reservation, if stored."""
        return await self._by_id("reservations", "reservation_id", reservation_id, Reservation)

    async def last_reservation_id(self) -> int:
        """The highest reservation id ever stored (0 if none)."""
        top = await self.query(lambda q: q.value("SELECT MAX(reservation_id) FROM reservations"))
        return int(top or 0)

    async def save_charging_profiles(self, records: Sequence[ChargingProfileRecord]) -> None:
        """Insert or replace charging profile records, in one transaction (a record id
        taken by another charger's record fails the whole write with StoreError)."""
        rows = self._profile_rows(records)
        await self.query(lambda q: self._upsert_profiles(q, rows))

    @staticmethod
    def _profile_rows(records: Sequence[ChargingProfileRecord]) -> list[tuple[Any, ...]]:
        _check_ids("charging profile record", [r.record_id for r in records])
        return [(r.record_id, r.cp_id, str(r.status), _json(r)) for r in records]

    def _upsert_profiles(self, q: Sql, rows: Sequence[Sequence[Any]]) -> None:
        self._upsert_owned(
            q,
            "INSERT INTO charging_profiles (record_id, cp_id, status, data) "
            "VALUES (?,?,?,?) ON CONFLICT (record_id) DO UPDATE SET "
            f"status = excluded.status, data = excluded.data{self.dialect.changed} "
            "WHERE charging_profiles.cp_id = excluded.cp_id",
            rows,
            "charging profile record",
        )

    @staticmethod
    def _upsert_owned(q: Sql, sql: str, rows: Sequence[Sequence[Any]], kind: str) -> None:
        """Insert or update each row (id, cp_id, …) by ``sql``, whose update applies only
        to the same charger's row: another charger's row of that id refuses the whole
        write (rolled back)."""
        for row in rows:
            if q.execute(sql, row).rowcount != 1:
                raise Refused(f"{kind} {row[0]} belongs to another charger")

    async def load_charging_profiles(self, *, finished: int = 500) -> list[ChargingProfileRecord]:
        """Installed and pending records, and the ``finished`` most recent others."""
        live = "status IN ('Installed', 'Pending')"
        return await self._load_live(
            "charging_profiles", "record_id", live, finished, ChargingProfileRecord
        )

    async def charging_profiles(
        self, *, cp_id: str | None, status: str | None, limit: int, offset: int
    ) -> list[ChargingProfileRecord]:
        """Charging profile records, newest first, optionally filtered."""
        return await self._page(
            "charging_profiles",
            "record_id",
            ChargingProfileRecord,
            limit,
            offset,
            cp_id=cp_id,
            status=status,
        )

    async def last_charging_profile_record_id(self) -> int:
        """The highest charging profile record id ever stored (0 if none)."""
        top = await self.query(lambda q: q.value("SELECT MAX(record_id) FROM charging_profiles"))
        return int(top or 0)

    async def save_firmware_state(self, state: ChargerFirmware) -> None:
        """Insert or replace one charger's firmware and diagnostics state."""
        await self._save_document("firmware", state.cp_id, state)

    async def load_firmware_states(self) -> list[ChargerFirmware]:
        """Every charger's firmware and diagnostics state."""
        return await self._load_documents("firmware", ChargerFirmware)

    # -- security --------------------------------------------------------------------------

    async def save_security_state(self, state: ChargerSecurity) -> None:
        """Insert or replace one charger's security record (security extension)."""
        await self._save_document("security", state.cp_id, state)

    async def load_security_states(self) -> list[ChargerSecurity]:
        """Every charger's security record."""
        return await self._load_documents("security", ChargerSecurity)

    async def security_state(self, cp_id: str) -> ChargerSecurity | None:
        """One charger's security record as stored, if any."""
        row = await self.query(
            lambda q: q.row("SELECT data FROM security WHERE cp_id = ?", (cp_id,))
        )
        return self._one(row, ChargerSecurity)

    async def add_security_event(self, cp_id: str, event: SecurityEvent, *, keep: int) -> None:
        """Append a security event; the charger keeps its newest ``keep`` only."""
        data = _json(event)

        def work(q: Sql) -> None:
            q.execute("INSERT INTO security_events (cp_id, data) VALUES (?, ?)", (cp_id, data))
            q.execute(
                "DELETE FROM security_events WHERE cp_id = ? AND id <= (SELECT id FROM "
                "security_events WHERE cp_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (cp_id, cp_id, keep),
            )

        await self.query(work)

    async def security_events(self, cp_id: str, *, limit: int) -> tuple[list[SecurityEvent], int]:
        """The charger's newest ``limit`` security events (newest first) and the count kept."""

        def work(q: Sql) -> tuple[list[Any], int]:
            rows = q.rows(
                "SELECT data FROM security_events WHERE cp_id = ? ORDER BY id DESC LIMIT ?",
                (cp_id, limit),
            )
            count = q.value("SELECT count(*) FROM security_events WHERE cp_id = ?", (cp_id,))
            return rows, int(count)

        rows, count = await self.query(work)
        return self._load(rows, SecurityEvent), count

    # -- OCPP 2.0.1 device models -----------------------------------------------------------

    async def save_device_model(
        self,
        cp_id: str,
        variables: Sequence[ReportedVariable],
        events: Sequence[Mapping[str, Any]] = (),
        *,
        max_variables: int,
        max_events: int,
    ) -> int:
        """Upsert ``variables`` (the last of one key wins) and append ``events`` (the
        charger keeps its newest ``max_events``), in one transaction: a known variable is
        updated, a new one inserted while the charger has fewer than ``max_variables``
        (the charger's ``device_models`` row is written first, so a second writer of the
        same charger waits). Returns how many new variables were dropped."""
        rows: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        for v in variables:  # a station's text, storable whatever it holds (clean_text)
            key = tuple(
                clean_text(k) if isinstance(k, str) else k for k in _variable_key(cp_id, v.key)
            )
            rows[key] = tuple(
                None if t is None else clean_text(t) for t in (v.value, v.mutability, v.source)
            )  # the last of a key wins
        event_rows = [
            (
                cp_id,
                json.dumps({k: clean_text(v) if isinstance(v, str) else v for k, v in e.items()}),
            )
            for e in events
        ]

        def work(q: Sql) -> int:
            q.execute(
                "INSERT INTO device_models (cp_id, dropped) VALUES (?, 0) ON CONFLICT "
                "(cp_id) DO UPDATE SET dropped = device_models.dropped",
                (cp_id,),
            )
            known = {
                tuple(r)
                for r in q.rows(
                    f"SELECT {DEVICE_VARIABLE_KEY} FROM device_variables WHERE cp_id = ?",
                    (cp_id,),
                )
            }
            room = max_variables - len(known)
            updates, inserts, dropped = [], [], 0
            for key, (value, mutability, source) in rows.items():
                if key in known:
                    updates.append((value, mutability, source, *key))
                elif room > 0:
                    inserts.append((*key, value, mutability, source))
                    room -= 1
                else:
                    dropped += 1
            q.executemany(
                "UPDATE device_variables SET value = ?, mutability = ?, source = ? WHERE "
                + " AND ".join(f"{c} = ?" for c in DEVICE_VARIABLE_KEY.split(", ")),
                updates,
            )
            q.executemany(
                f"INSERT INTO device_variables ({DEVICE_VARIABLE_KEY}, value, mutability, "
                "source) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                inserts,
            )
            if dropped:
                q.execute(
                    "UPDATE device_models SET dropped = dropped + ? WHERE cp_id = ?",
                    (dropped, cp_id),
                )
            if event_rows:
                q.executemany("INSERT INTO device_events (cp_id, data) VALUES (?, ?)", event_rows)
                q.execute(
                    "DELETE FROM device_events WHERE cp_id = ? AND id <= (SELECT id FROM "
                    "device_events WHERE cp_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (cp_id, cp_id, max_events),
                )
            return dropped

        return await self.query(work)

    async def device_model(self, cp_id: str) -> DeviceModel:
        """The charger's stored model (variables in the order first stored, events oldest
        first, its dropped count); empty if it reported nothing."""

        def work(q: Sql) -> tuple[Any, list[Any], list[Any]]:
            dropped = q.value("SELECT dropped FROM device_models WHERE cp_id = ?", (cp_id,))
            variables = q.rows(
                "SELECT component, component_instance, evse_id, connector_id, variable, "
                "variable_instance, attribute, value, mutability, source FROM "
                "device_variables WHERE cp_id = ? ORDER BY id",
                (cp_id,),
            )
            events = q.rows("SELECT data FROM device_events WHERE cp_id = ? ORDER BY id", (cp_id,))
            return dropped, variables, events

        dropped, variables, events = await self.query(work)
        model = DeviceModel()
        model.dropped = int(dropped or 0)
        for r in variables:
            key = VariableKey(
                component=r[0],
                component_instance=r[1] or None,
                evse_id=None if r[2] == NO_ID else r[2],
                connector_id=None if r[3] == NO_ID else r[3],
                variable=r[4],
                variable_instance=r[5] or None,
                attribute=r[6],
            )
            model.variables[key] = ReportedVariable(key, r[7], r[8], r[9])
        model.events.extend(self.dialect.decode(r[0]) for r in events)
        return model

    # -- documents -------------------------------------------------------------------------

    async def _save_document(self, table: str, cp_id: str, state: Any) -> None:
        """Insert or replace the one JSON document of ``cp_id`` in ``table`` (a constant)."""
        data = _json(state)
        await self.query(
            lambda q: q.execute(
                f"INSERT INTO {table} (cp_id, data) VALUES (?, ?) ON CONFLICT (cp_id) "
                f"DO UPDATE SET data = excluded.data{self.dialect.changed}",
                (cp_id, data),
            )
        )

    async def _page(
        self, table: str, key: str, kind: type[D], limit: int, offset: int, **equal: Any
    ) -> list[D]:
        """One page of the documents of ``table``, newest (highest ``key``) first, whose
        columns equal the values given (None: any)."""
        return self._load(
            await self.query(lambda q: _filtered(q, table, key, limit, offset, **equal)), kind
        )

    async def _by_id(self, table: str, key: str, value: int, kind: type[D]) -> D | None:
        """The document of id ``value`` in ``table``, if stored (an id outside the OCPP
        integer range never is)."""
        if not ocpp_id(value):
            return None
        row = await self.query(
            lambda q: q.row(f"SELECT data FROM {table} WHERE {key} = ?", (value,))
        )
        return self._one(row, kind)

    async def _load_live(
        self, table: str, key: str, live: str, finished: int, kind: type[D]
    ) -> list[D]:
        """The rows of ``table`` where ``live`` holds and the ``finished`` most recent
        (highest ``key``) others, by ``key`` (all three: constants)."""
        rows = await self.query(
            lambda q: q.rows(
                f"SELECT data FROM {table} WHERE {live} OR {key} IN (SELECT {key} FROM "
                f"{table} WHERE NOT ({live}) ORDER BY {key} DESC LIMIT ?) ORDER BY {key}",
                (finished,),
            )
        )
        return self._load(rows, kind)

    async def _load_documents(self, table: str, kind: type[D]) -> list[D]:
        """Every document of ``table`` (a constant) as ``kind``."""
        return self._load(await self.query(lambda q: q.rows(f"SELECT data FROM {table}")), kind)


NO_ID = -1
"""A device-model variable without an EVSE or connector, as its key column holds it (key
columns are never NULL, so that the unique key holds; OCPP ids are never negative)."""


def _variable_key(cp_id: str, key: VariableKey) -> tuple[Any, ...]:
    """``key`` as the ``device_variables`` key columns (:data:`DEVICE_VARIABLE_KEY`)."""
    return (
        cp_id,
        key.component,
        key.component_instance or "",
        NO_ID if key.evse_id is None else key.evse_id,
        NO_ID if key.connector_id is None else key.connector_id,
        key.variable,
        key.variable_instance or "",
        key.attribute,
    )


class Refused(Exception):
    """A write that must not happen (it would replace or miss a row); rolled back, and
    raised by the backend as StoreError."""


def set_meta(q: Sql, key: str, value: str) -> None:
    """Set one ``meta`` value."""
    q.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def _filtered(
    q: Sql,
    table: str,
    key: str,
    limit: int,
    offset: int,
    *,
    columns: str = "data",
    **equal: Any,
) -> list[Any]:
    """``columns`` of the rows of ``table`` (fixed names, never user input) whose
    columns equal the given values (None: any), newest (highest ``key``) first."""
    where = [(f"{name} = ?", value) for name, value in equal.items() if value is not None]
    sql = f"SELECT {columns} FROM {table}"  # table, key and columns are constants
    if where:
        sql += " WHERE " + " AND ".join(w for w, _ in where)
    sql += f" ORDER BY {key} DESC LIMIT ? OFFSET ?"
    return q.rows(sql, (*(v for _, v in where), limit, offset))
