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
  batches, one node at a time (an advisory lock), see :meth:`SqlStore.prune_messages`.

Its queries are the shared layer's (:class:`~libv4e.csms._sql.SqlStore`, the same as
SQLite's); this module keeps what only PostgreSQL does.

:func:`store_for` turns a ``--db`` value into a store: a ``postgresql://`` URL gives a
:class:`PostgresStore`, a file path a :class:`~libv4e.csms._store.SqliteStore`, anything else
that looks like a URL is refused.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import trio

from libv4e.csms._firmware import ChargerFirmware
from libv4e.csms._locallists import ChargerLocalList
from libv4e.csms._pgschema import CLUSTER_SCHEMA, SCHEMA_LOCK, TX_ID_LOCK
from libv4e.csms._profiles import ChargingProfileRecord
from libv4e.csms._registry import ChargePointState, Transaction
from libv4e.csms._reservations import Reservation
from libv4e.csms._security import ChargerSecurity
from libv4e.csms._sql import MESSAGE_COLUMNS, Refused, SqlStore
from libv4e.csms._sqlite import SqliteStore
from libv4e.csms._sqlschema import POSTGRESQL, TABLES, Sql
from libv4e.csms._store import _DATA_ERRORS, Store, StoreDataError, StoreError, _conv
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


class PostgresStore(SqlStore):
    """The store in the PostgreSQL database at ``url`` (``postgresql://user@host/db``).

    ``pool_size`` connections at most (one Trio worker thread each); calls wait at most
    ``timeout`` seconds for a connection before failing with StoreError. Its queries are
    the shared layer's (:class:`~libv4e.csms._sql.SqlStore`); this class holds what only
    PostgreSQL does: the pool, the id sequence, COPY, advisory locks, batched retention
    and the change marks the other nodes follow.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 8,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(POSTGRESQL)
        self.url = url
        self.pool_size = pool_size
        self.timeout = timeout
        self._pool: Any = None  # psycopg_pool.ConnectionPool once open
        self._limiter = trio.CapacityLimiter(pool_size)

    def __repr__(self) -> str:
        return f"PostgresStore({_redact(self.url)!r})"

    # -- plumbing ------------------------------------------------------------------------

    async def _run(self, fn: Callable[[Any], T], *, durable: bool = False) -> T:
        """Run ``fn(connection)`` in one database transaction in a worker thread (committed,
        or rolled back if it raises); database errors become StoreError. Every commit is
        durable (PostgreSQL's default ``synchronous_commit``)."""
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

    run = _run
    """``run(fn)``: ``fn(connection)`` on a plain psycopg connection (``%s`` placeholders),
    in one database transaction: how the cluster reaches its own tables."""

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
                    Sql(conn, POSTGRESQL).create_tables(TABLES)
                    conn.execute(CLUSTER_SCHEMA)
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

    # -- transaction ids -------------------------------------------------------------------

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

        return await self._run(work)

    async def last_transaction_id(self) -> int:
        """The highest transaction id ever stored or handed out (0 if none)."""

        def work(db: Any) -> int:
            stored = db.execute("SELECT MAX(transaction_id) FROM transactions").fetchone()[0]
            seq = db.execute("SELECT last_value, is_called FROM transaction_ids").fetchone()
            return max(int(stored or 0), int(seq[0]) if seq[1] else 0)

        return await self._run(work)

    # -- message log and retention ---------------------------------------------------------

    async def log_messages(self, records: Sequence[MessageRecord]) -> None:
        """Append OCPP messages to the log, in one transaction (COPY)."""
        rows = self._message_rows(records)

        def work(db: Any) -> None:
            with (
                db.cursor() as cur,
                cur.copy(f"COPY messages ({MESSAGE_COLUMNS}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)

        await self._run(work)

    async def _delete_older(
        self, table: str, older_than: dt.datetime, *, batch: int, exclusive: bool = False
    ) -> int:
        """Delete the rows of ``table`` (a constant) stored before ``older_than``, oldest
        first, in transactions of at most ``batch`` rows (``exclusive``: none while
        another node holds the pruning lock)."""
        lock = self.dialect.prune_lock if exclusive else None

        def work(db: Any) -> int:
            if lock is not None and not db.execute(lock).fetchone()[0]:
                return 0  # another node is pruning
            return int(
                db.execute(
                    f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} "
                    "WHERE at < %s ORDER BY id LIMIT %s)",
                    (older_than, batch),
                ).rowcount
            )

        total = 0
        while True:
            deleted = await self._run(work)
            total += deleted
            if deleted < batch:
                return total

    # -- the other nodes' changes ----------------------------------------------------------

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
            meta = dict(
                db.execute(
                    "SELECT key, value FROM meta WHERE key IN ('list_version', 'secrets_changed')"
                ).fetchall()
            )

            def since(table: str, kind: type[Any], order: str = "") -> list[Any]:
                rows = db.execute(  # table and order: constants
                    f"SELECT data FROM {table} WHERE changed >= %s::text::xid8{order}",
                    (str(mark),),
                ).fetchall()
                return [_conv.structure(r[0], kind) for r in rows]

            return Changes(
                since("chargers", ChargePointState),
                since("transactions", Transaction, " ORDER BY transaction_id"),
                int(horizon),
                int(meta.get("list_version", 0)),
                int(meta.get("secrets_changed", 0)),
                since("reservations", Reservation),
                since("charging_profiles", ChargingProfileRecord),
                since("local_lists", ChargerLocalList),
                since("firmware", ChargerFirmware),
                since("security", ChargerSecurity),
            )

        return await self._run(work)


def _redact(url: str) -> str:
    """``url`` without its password."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
