"""The PostgreSQL store: the same :class:`~libv4e.csms._store.Store` as SQLite, shared by nodes.

Several CSMS processes (``--workers``) and machines share one PostgreSQL database: this
store is what makes them one central system. It uses psycopg 3 (the maintained PostgreSQL
driver; its binary wheel needs no compiler or libpq on the host) with a psycopg-pool
connection pool; every call runs in a Trio worker thread, as the SQLite store does.

Differences from SQLite that callers can rely on:

* transaction ids come from a database sequence, so they are unique across nodes and are
  never reused, even after a restart (:meth:`PostgresStore.reserve_transaction_ids`);
* every row of ``chargers`` and ``transactions`` carries the id of the database
  transaction that last wrote it, so a node can fetch what the others changed since its
  last look (:meth:`PostgresStore.changes_since`) instead of re-reading the fleet;
* message-log retention (the CSMS's ``log_max_rows`` / ``log_max_age``) deletes in
  batches, one node at a time (an advisory lock), see :meth:`PostgresStore.prune_messages`.

:func:`store_for` turns a ``--db`` value into a store: a ``postgresql://`` URL gives a
:class:`PostgresStore`, a file path a :class:`~libv4e.csms._store.SqliteStore`, anything else
that looks like a URL is refused.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import trio

from libv4e.csms._auth import IdTag
from libv4e.csms._firmware import ChargerFirmware
from libv4e.csms._locallists import ChargerLocalList
from libv4e.csms._pgbooks import PgOperatorBooks
from libv4e.csms._pgmessages import INSERT_MESSAGE, PgMessageLog, message_rows
from libv4e.csms._pgschema import SCHEMA, SCHEMA_LOCK, TX_ID_LOCK, Refused, int4
from libv4e.csms._profiles import ChargingProfileRecord
from libv4e.csms._registry import ChargePointState, Transaction
from libv4e.csms._reservations import Reservation
from libv4e.csms._security import ChargerSecurity
from libv4e.csms._sqlite import SqliteStore
from libv4e.csms._store import (
    _DATA_ERRORS,
    Store,
    StoreDataError,
    StoreError,
    Ticket,
    _conv,
    charger_rows,
)
from libv4e.csms._txbook import UnmatchedStop
from libv4e.transport._connection import MessageRecord

T = TypeVar("T")

_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")
POSTGRES_SCHEMES = ("postgresql", "postgres")


def store_for(db: str) -> Store:
    """The store for a ``--db`` value: ``postgresql://…`` (or ``postgres://…``) URLs give a
    :class:`PostgresStore`, plain paths a :class:`SqliteStore`. Raises ValueError (one
    line) for any other URL scheme, rather than creating a file or directory named after
    it."""
    match = _URL_SCHEME.match(db)
    if match is None:
        return SqliteStore(db)
    scheme = match.group(1).lower()
    if scheme in POSTGRES_SCHEMES:
        try:
            import psycopg  # noqa: F401
            import psycopg_pool  # noqa: F401
        except ImportError:
            raise ValueError(
                "--db: PostgreSQL needs psycopg 3 and psycopg-pool: pip install 'libv4e[postgres]'"
            ) from None
        if not db[len(scheme) + 1 :].startswith("//"):
            raise ValueError(
                f"--db: a PostgreSQL URL looks like postgresql://user@host/db, not {db!r}"
            )
        return PostgresStore(db)
    raise ValueError(
        f"--db: unsupported database URL scheme {scheme!r} (use a SQLite file path or a "
        "postgresql:// URL; write ./name for a file whose name contains a colon)"
    )


def is_postgres_url(db: str) -> bool:
    """Whether ``db`` is a PostgreSQL URL (see :func:`store_for`)."""
    match = _URL_SCHEME.match(db)
    return match is not None and match.group(1).lower() in POSTGRES_SCHEMES


@dataclasses.dataclass(slots=True)
class Changes:
    """What changed in the shared tables since a change number (see ``changes_since``)."""

    chargers: list[ChargePointState]
    transactions: list[Transaction]
    mark: int
    """The change mark to pass next time."""
    list_version: int
    secrets_changed: int
    reservations: list[Reservation] = dataclasses.field(default_factory=list)
    charging_profiles: list[ChargingProfileRecord] = dataclasses.field(default_factory=list)
    local_lists: list[ChargerLocalList] = dataclasses.field(default_factory=list)
    firmware: list[ChargerFirmware] = dataclasses.field(default_factory=list)
    security: list[ChargerSecurity] = dataclasses.field(default_factory=list)


SEQUENCE_MAX = 2**31 - 1
"""The end of the ``transaction_ids`` sequence (``AS integer``)."""


class PostgresStore(PgMessageLog, PgOperatorBooks):
    """The store in the PostgreSQL database at ``url`` (``postgresql://user@host/db``).

    ``pool_size`` connections at most (one Trio worker thread each); calls wait at most
    ``timeout`` seconds for a connection before failing with StoreError.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 8,
        timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.pool_size = pool_size
        self.timeout = timeout
        self._pool: Any = None  # psycopg_pool.ConnectionPool once open
        self._limiter = trio.CapacityLimiter(pool_size)

    def __repr__(self) -> str:
        return f"PostgresStore({_redact(self.url)!r})"

    # -- plumbing ------------------------------------------------------------------------

    async def run(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(connection)`` in one database transaction in a worker thread (committed,
        or rolled back if it raises); database errors become StoreError."""
        import psycopg
        import psycopg_pool

        def work() -> T:
            pool = self._pool
            if pool is None:
                raise StoreError("the store is not open")
            try:
                with pool.connection(timeout=self.timeout) as conn:
                    return fn(conn)
            except (psycopg.DataError, *_DATA_ERRORS) as exc:  # the data, not the database
                raise StoreDataError(f"cannot store this data: {exc!r}") from exc
            except (psycopg.Error, psycopg_pool.PoolTimeout, Refused) as exc:
                raise StoreError(f"database error ({_redact(self.url)}): {exc}") from exc

        return await trio.to_thread.run_sync(work, limiter=self._limiter)

    async def open(self) -> None:
        """Connect the pool and create the tables if they do not exist."""
        import psycopg
        import psycopg_pool

        def configure(conn: Any) -> None:
            conn.execute("SET TIME ZONE 'UTC'")
            conn.commit()

        def work() -> None:
            try:  # one plain connection first: its error says why (refused, auth, no db)
                psycopg.connect(self.url, connect_timeout=max(1, int(self.timeout))).close()
            except psycopg.Error as exc:
                reason = " ".join(x.strip() for x in str(exc).splitlines() if x.strip())
                raise StoreError(f"cannot open database {_redact(self.url)}: {reason}") from exc
            pool = psycopg_pool.ConnectionPool(
                self.url,
                min_size=1,
                max_size=self.pool_size,
                open=False,
                configure=configure,
                kwargs={"connect_timeout": max(1, int(self.timeout))},
                name="libv4e",
            )
            try:
                pool.open(wait=True, timeout=self.timeout)
                with pool.connection(timeout=self.timeout) as conn:
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                    conn.execute(SCHEMA)
            except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
                pool.close()
                raise StoreError(f"cannot open database {_redact(self.url)}: {exc}") from exc
            self._pool = pool

        await trio.to_thread.run_sync(work, limiter=self._limiter)

    async def close(self) -> None:
        """Close every pooled connection."""

        def work() -> None:
            pool, self._pool = self._pool, None
            if pool is not None:
                pool.close(timeout=5)

        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(work)

    # -- chargers and transactions --------------------------------------------------------

    async def save_chargers(self, states: Sequence[ChargePointState]) -> None:
        """Insert or replace several charge points' states in one transaction."""
        rows = charger_rows(states)
        await self.run(
            lambda db: db.cursor().executemany(
                "INSERT INTO chargers (cp_id, data) VALUES (%s, %s) ON CONFLICT (cp_id) "
                "DO UPDATE SET data = EXCLUDED.data, changed = pg_current_xact_id()",
                rows,
            )
        )

    async def load_chargers(self) -> list[ChargePointState]:
        """Every stored charge point (marked disconnected: nothing is connected at start)."""
        rows = await self.run(lambda db: db.execute("SELECT data FROM chargers").fetchall())
        states = [_conv.structure(r[0], ChargePointState) for r in rows]
        for state in states:
            state.connected = False
        return states

    async def delete_charger(self, cp_id: str) -> None:
        """Forget a charge point's state (its transactions and message log stay)."""
        await self.run(lambda db: db.execute("DELETE FROM chargers WHERE cp_id = %s", (cp_id,)))

    async def load_charger(self, cp_id: str) -> ChargePointState | None:
        """One stored charge point, as its last holder wrote it."""
        row = await self.run(
            lambda db: db.execute("SELECT data FROM chargers WHERE cp_id = %s", (cp_id,)).fetchone()
        )
        return None if row is None else _conv.structure(row[0], ChargePointState)

    async def reserve_transaction_ids(self, count: int) -> int:
        """Reserve ``count`` consecutive transaction ids; returns the first of the block.

        The ids come from the ``transaction_ids`` sequence, so they are unique across
        every node sharing the database and never handed out twice, not even after a
        crash or restart (a sequence does not roll back; the block's commit is flushed to
        the WAL before this returns, PostgreSQL's default ``synchronous_commit``). Blocks
        are taken under a transaction-scoped advisory lock so that each one is
        consecutive."""
        if count < 1:
            raise ValueError("count must be at least 1")

        def work(db: Any) -> int:
            db.execute("SELECT pg_advisory_xact_lock(%s)", (TX_ID_LOCK,))
            # read the sequence instead of nextval: at its end (2^31 − 1, the most an
            # OCPP 1.6 message carries) nextval fails, and the caller must learn that the
            # ids are exhausted, not that its data could not be stored
            last, called = db.execute(
                "SELECT last_value, is_called FROM transaction_ids"
            ).fetchone()
            first = int(last) + 1 if called else int(last)
            highest = db.execute("SELECT MAX(transaction_id) FROM transactions").fetchone()[0]
            first = max(first, int(highest or 0) + 1)  # rows written with explicit ids
            if first <= SEQUENCE_MAX:  # past it, nothing is reserved: the caller is told
                db.execute(
                    "SELECT setval('transaction_ids', %s)",
                    (min(first + count - 1, SEQUENCE_MAX),),
                )
            return first

        return await self.run(work)

    async def write_transactions(
        self,
        new: Sequence[Transaction],
        changed: Sequence[Transaction],
        *,
        log: Sequence[MessageRecord] = (),
        reservations: Sequence[Reservation] = (),
        profiles: Sequence[ChargingProfileRecord] = (),
    ) -> None:
        """Insert ``new`` transactions and update ``changed`` ones, write the operator-book
        records the same event moved (``reservations``, ``profiles``), and append ``log``
        (the messages that made the change) to the message log, in one transaction.

        An insert never replaces a row (an id already taken fails the whole write), and
        an update only touches the row of that id *and* charger."""
        inserts = [(t.transaction_id, t.cp_id, t.active, _tx_json(t)) for t in new]
        updates = [(t.active, _tx_json(t), t.transaction_id, t.cp_id) for t in changed]
        messages = message_rows(log)
        reservation_rows = [
            (r.reservation_id, r.cp_id, str(r.status), r.active, _doc(r)) for r in reservations
        ]
        profile_rows = [
            (r.record_id, r.cp_id, str(r.status), json.dumps(_conv.unstructure(r)))
            for r in profiles
        ]

        def work(db: Any) -> None:
            if messages:
                db.cursor().executemany(INSERT_MESSAGE, messages)
            for reservation_row in reservation_rows:
                cur = db.execute(
                    "INSERT INTO reservations (reservation_id, cp_id, status, active, data) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (reservation_id) DO UPDATE SET "
                    "status = EXCLUDED.status, active = EXCLUDED.active, data = EXCLUDED.data, "
                    "changed = pg_current_xact_id() WHERE reservations.cp_id = EXCLUDED.cp_id",
                    reservation_row,
                )
                if cur.rowcount != 1:
                    raise Refused(f"reservation {reservation_row[0]} belongs to another charger")
            for profile_row in profile_rows:
                cur = db.execute(
                    "INSERT INTO charging_profiles (record_id, cp_id, status, data) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (record_id) DO UPDATE SET "
                    "status = EXCLUDED.status, data = EXCLUDED.data, "
                    "changed = pg_current_xact_id() WHERE charging_profiles.cp_id = EXCLUDED.cp_id",
                    profile_row,
                )
                if cur.rowcount != 1:
                    raise Refused(
                        f"charging profile record {profile_row[0]} belongs to another charger"
                    )
            for row in updates:
                cur = db.execute(
                    "UPDATE transactions SET active = %s, data = %s, "
                    "changed = pg_current_xact_id() WHERE transaction_id = %s AND cp_id = %s",
                    row,
                )
                if cur.rowcount != 1:
                    raise Refused(f"no transaction {row[2]} of {row[3]} to update")
            if inserts:
                db.cursor().executemany(
                    "INSERT INTO transactions (transaction_id, cp_id, active, data) "
                    "VALUES (%s, %s, %s, %s)",
                    inserts,
                )

        await self.run(work)

    async def load_transactions(self, *, finished: int = 500) -> list[Transaction]:
        """Active transactions and the last ``finished`` stopped ones, oldest first."""
        rows = await self.run(
            lambda db: db.execute(
                "SELECT data FROM transactions WHERE active OR transaction_id IN "
                "(SELECT transaction_id FROM transactions WHERE NOT active "
                "ORDER BY transaction_id DESC LIMIT %s) ORDER BY transaction_id",
                (finished,),
            ).fetchall()
        )
        return [_conv.structure(r[0], Transaction) for r in rows]

    async def last_transaction_id(self) -> int:
        """The highest transaction id ever stored or handed out (0 if none)."""

        def work(db: Any) -> int:
            stored = db.execute("SELECT MAX(transaction_id) FROM transactions").fetchone()[0]
            seq = db.execute("SELECT last_value, is_called FROM transaction_ids").fetchone()
            return max(int(stored or 0), int(seq[0]) if seq[1] else 0)

        return await self.run(work)

    async def transactions(
        self, *, cp_id: str | None, active: bool | None, limit: int, offset: int
    ) -> list[Transaction]:
        """Transactions, newest first."""
        where: list[str] = []
        args: list[Any] = []
        if cp_id is not None:
            where.append("cp_id = %s")
            args.append(cp_id)
        if active is not None:
            where.append("active = %s")
            args.append(active)
        sql = "SELECT data FROM transactions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY transaction_id DESC LIMIT %s OFFSET %s"
        rows = await self.run(lambda db: db.execute(sql, (*args, limit, offset)).fetchall())
        return [_conv.structure(r[0], Transaction) for r in rows]

    async def transaction(self, transaction_id: int) -> Transaction | None:
        """One transaction, if stored."""
        if not -(2**31) <= transaction_id < 2**31:
            return None
        row = await self.run(
            lambda db: db.execute(
                "SELECT data FROM transactions WHERE transaction_id = %s", (transaction_id,)
            ).fetchone()
        )
        return None if row is None else _conv.structure(row[0], Transaction)

    async def charger_transactions(self, cp_id: str) -> list[Transaction]:
        """A charger's active transactions, oldest first."""
        rows = await self.run(
            lambda db: db.execute(
                "SELECT data FROM transactions WHERE cp_id = %s AND active ORDER BY transaction_id",
                (cp_id,),
            ).fetchall()
        )
        return [_conv.structure(r[0], Transaction) for r in rows]

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
        data = json.dumps(values)
        update = None if transaction is None else _tx_json(transaction)

        def work(db: Any) -> None:
            db.execute(
                "INSERT INTO meter_values (cp_id, connector_id, transaction_id, data) "
                "VALUES (%s, %s, %s, %s)",
                (cp_id, connector_id, transaction_id, data),
            )
            if transaction is not None:
                db.execute(
                    "UPDATE transactions SET data = %s, changed = pg_current_xact_id() "
                    "WHERE transaction_id = %s AND cp_id = %s AND active",
                    (update, transaction.transaction_id, transaction.cp_id),
                )

        await self.run(work)

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
        """Meter-value retention (see SqliteStore.prune_meter_values); by age in
        transactions of at most ``batch`` rows."""

        def work(db: Any) -> int:
            deleted = 0
            if per_transaction is not None:
                for tx_id in transactions:
                    if int4(tx_id):
                        deleted += db.execute(
                            "DELETE FROM meter_values WHERE transaction_id = %s AND id <= "
                            "(SELECT id FROM meter_values WHERE transaction_id = %s "
                            "ORDER BY id DESC LIMIT 1 OFFSET %s)",
                            (tx_id, tx_id, per_transaction),
                        ).rowcount
            if untied_per_charger is not None:
                for cp_id in chargers:
                    deleted += db.execute(
                        "DELETE FROM meter_values WHERE transaction_id IS NULL "
                        "AND cp_id = %s AND id <= (SELECT id FROM meter_values WHERE "
                        "transaction_id IS NULL AND cp_id = %s ORDER BY id DESC LIMIT 1 "
                        "OFFSET %s)",
                        (cp_id, cp_id, untied_per_charger),
                    ).rowcount
            return deleted

        def by_age(db: Any) -> int:
            return int(
                db.execute(
                    "DELETE FROM meter_values WHERE id IN (SELECT id FROM meter_values "
                    "WHERE at < %s ORDER BY id LIMIT %s)",
                    (older_than, batch),
                ).rowcount
            )

        total = await self.run(work)
        while older_than is not None:
            deleted = await self.run(by_age)
            total += deleted
            if deleted < batch:
                break
        return total

    async def add_unmatched_stop(
        self, stop: UnmatchedStop, *, log: Sequence[MessageRecord] = ()
    ) -> None:
        """Keep a StopTransaction that matched no transaction of its charger (and append
        ``log`` to the message log in the same transaction)."""
        data = json.dumps(_conv.unstructure(stop))
        messages = message_rows(log)

        def work(db: Any) -> None:
            if messages:
                db.cursor().executemany(INSERT_MESSAGE, messages)
            db.execute(
                "INSERT INTO unmatched_stops (cp_id, data) VALUES (%s, %s)", (stop.cp_id, data)
            )

        await self.run(work)

    async def unmatched_stops(
        self, *, cp_id: str | None, limit: int, offset: int
    ) -> list[UnmatchedStop]:
        """Unmatched stops, newest first."""
        sql, args = "SELECT data FROM unmatched_stops", []
        if cp_id is not None:
            sql, args = sql + " WHERE cp_id = %s", [cp_id]
        sql += " ORDER BY id DESC LIMIT %s OFFSET %s"
        rows = await self.run(lambda db: db.execute(sql, (*args, limit, offset)).fetchall())
        return [_conv.structure(r[0], UnmatchedStop) for r in rows]

    async def meter_values(
        self, transaction_id: int, *, last: int | None = None
    ) -> list[dict[str, Any]]:
        """The meter values recorded for a transaction, in arrival order (with ``last``:
        those of its last ``last`` MeterValues messages only)."""
        if not -(2**31) <= transaction_id < 2**31:
            return []
        rows = await self.run(
            lambda db: db.execute(
                "SELECT data FROM meter_values WHERE transaction_id = %s ORDER BY id DESC LIMIT %s",
                (transaction_id, last),
            ).fetchall()
        )
        return [mv for r in reversed(rows) for mv in r[0]]

    async def changes_since(self, mark: int) -> Changes:
        """Chargers, transactions and operator-book records written (by any node) since
        the change mark ``mark`` (0: everything), the tag list version and the secrets'
        change number.

        The mark is a transaction-id horizon (``pg_snapshot_xmin``): rows written by
        transactions still running at the last look are read again next time, so nothing
        committed late is missed (rows may come twice; applying them is idempotent)."""

        def work(db: Any) -> Changes:
            horizon = db.execute(
                "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
            ).fetchone()[0]
            chargers = db.execute(
                "SELECT data FROM chargers WHERE changed >= %s::text::xid8", (str(mark),)
            ).fetchall()
            txs = db.execute(
                "SELECT data FROM transactions WHERE changed >= %s::text::xid8 "
                "ORDER BY transaction_id",
                (str(mark),),
            ).fetchall()
            meta = dict(
                db.execute(
                    "SELECT key, value FROM meta WHERE key IN ('list_version', 'secrets_changed')"
                ).fetchall()
            )

            def books(table: str, kind: type[Any]) -> list[Any]:  # table: a constant
                rows = db.execute(
                    f"SELECT data FROM {table} WHERE changed >= %s::text::xid8", (str(mark),)
                ).fetchall()
                return [_conv.structure(r[0], kind) for r in rows]

            return Changes(
                [_conv.structure(r[0], ChargePointState) for r in chargers],
                [_conv.structure(r[0], Transaction) for r in txs],
                int(horizon),
                int(meta.get("list_version", 0)),
                int(meta.get("secrets_changed", 0)),
                books("reservations", Reservation),
                books("charging_profiles", ChargingProfileRecord),
                books("local_lists", ChargerLocalList),
                books("firmware", ChargerFirmware),
                books("security", ChargerSecurity),
            )

        return await self.run(work)

    # -- authorization list ----------------------------------------------------------------

    async def save_tag(self, tag: IdTag, list_version: int) -> None:
        """Insert or replace a tag and store the list version, in one transaction."""
        data = json.dumps(_conv.unstructure(tag))

        def work(db: Any) -> None:
            db.execute(
                "INSERT INTO id_tags (id_tag, data) VALUES (%s, %s) "
                "ON CONFLICT (id_tag) DO UPDATE SET data = EXCLUDED.data",
                (tag.id_tag, data),
            )
            _set_meta(db, "list_version", str(list_version))

        await self.run(work)

    async def delete_tag(self, id_tag: str, list_version: int) -> None:
        """Delete a tag and store the list version, in one transaction."""

        def work(db: Any) -> None:
            db.execute("DELETE FROM id_tags WHERE id_tag = %s", (id_tag,))
            _set_meta(db, "list_version", str(list_version))

        await self.run(work)

    async def load_tags(self) -> tuple[list[IdTag], int]:
        """Every tag and the list version."""

        def work(db: Any) -> tuple[list[Any], str | None]:
            rows = db.execute("SELECT data FROM id_tags").fetchall()
            version = db.execute("SELECT value FROM meta WHERE key = 'list_version'").fetchone()
            return rows, version[0] if version else None

        rows, version = await self.run(work)
        return [_conv.structure(r[0], IdTag) for r in rows], int(version or 0)

    # -- tickets and secrets -----------------------------------------------------------------

    async def add_ticket(self, ticket: Ticket) -> Ticket:
        """Store a new ticket; returns it with its assigned id."""
        data = _conv.unstructure(ticket)
        data.pop("ticket_id")
        row = await self.run(
            lambda db: db.execute(
                "INSERT INTO tickets (cp_id, data) VALUES (%s, %s) RETURNING ticket_id",
                (ticket.cp_id, json.dumps(data)),
            ).fetchone()
        )
        ticket.ticket_id = int(row[0])
        return ticket

    async def tickets(self) -> list[Ticket]:
        """Every ticket, oldest first."""
        rows = await self.run(
            lambda db: db.execute(
                "SELECT ticket_id, data FROM tickets ORDER BY ticket_id"
            ).fetchall()
        )
        return [_conv.structure({**r[1], "ticket_id": r[0]}, Ticket) for r in rows]

    async def set_secret(self, cp_id: str, password_hash: str | None) -> None:
        """Store (or with None, remove) a charger's password hash."""

        def work(db: Any) -> None:
            if password_hash is None:
                db.execute("DELETE FROM secrets WHERE cp_id = %s", (cp_id,))
            else:
                db.execute(
                    "INSERT INTO secrets (cp_id, password_hash) VALUES (%s, %s) "
                    "ON CONFLICT (cp_id) DO UPDATE SET password_hash = EXCLUDED.password_hash",
                    (cp_id, password_hash),
                )
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('secrets_changed', "
                "nextval('change_numbers')::text) ON CONFLICT (key) DO UPDATE SET "
                "value = EXCLUDED.value"
            )

        await self.run(work)

    async def secrets(self) -> dict[str, str]:
        """Every charger's password hash."""
        rows = await self.run(
            lambda db: db.execute("SELECT cp_id, password_hash FROM secrets").fetchall()
        )
        return {r[0]: r[1] for r in rows}


def _tx_json(tx: Transaction) -> str:
    return json.dumps(_conv.unstructure(tx))


def _set_meta(db: Any, key: str, value: str) -> None:
    db.execute(
        "INSERT INTO meta (key, value) VALUES (%s, %s) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        (key, value),
    )


def _redact(url: str) -> str:
    """``url`` without its password."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _doc(record: Any) -> str:
    """An operator-book record as its JSON document."""
    return json.dumps(_conv.unstructure(record))
