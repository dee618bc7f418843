"""The tables of both SQL stores, declared once, and the dialect object that says how
SQLite and PostgreSQL spell what differs.

A :class:`Table` lists its columns with one :class:`ColumnType` each (the same word in both
databases, or one spelling per dialect); :meth:`Dialect.create` writes its
``CREATE TABLE``/``CREATE INDEX`` statements and adds the columns a database created by an
older release lacks. PostgreSQL rows that other nodes follow (``changes=True``) carry the
id of the database transaction that last wrote them (``changed``, see
``PostgresStore.changes_since``); SQLite has one node and no such column.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import Any

from libv4e.csms._pgschema import PRUNE_LOCK
from libv4e.csms._registry import iso


@dataclasses.dataclass(frozen=True, slots=True)
class ColumnType:
    """A column's type and constraints, in SQLite and in PostgreSQL."""

    sqlite: str
    postgresql: str

    @classmethod
    def both(cls, text: str) -> ColumnType:
        return cls(text, text)


TEXT = ColumnType.both("TEXT NOT NULL")
TEXT_KEY = ColumnType.both("TEXT PRIMARY KEY")
INT_KEY = ColumnType.both("INTEGER PRIMARY KEY")
INT = ColumnType.both("INTEGER")
JSON = ColumnType("TEXT NOT NULL", "JSON NOT NULL")
BOOL = ColumnType("INTEGER NOT NULL", "BOOLEAN NOT NULL")
SERIAL = ColumnType("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
TIME = ColumnType("TEXT NOT NULL", "TIMESTAMPTZ NOT NULL")
INT_NOT_NULL = ColumnType.both("INTEGER NOT NULL")
COUNT = ColumnType.both("INTEGER NOT NULL DEFAULT 0")

DEVICE_VARIABLE_KEY = (
    "cp_id, component, component_instance, evse_id, connector_id, variable, "
    "variable_instance, attribute"
)
"""The key of a device-model variable (``device_variables``), in index order."""


@dataclasses.dataclass(frozen=True, slots=True)
class Index:
    """``CREATE INDEX name ON table columns [WHERE where]``; ``only``: one dialect's."""

    name: str
    columns: str
    where: str | None = None
    only: str | None = None
    unique: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Table:
    """A table: its columns, the columns added since the first release (created by
    ``ALTER TABLE`` where missing), its indexes, and whether PostgreSQL tracks which
    transaction last wrote each row (``changes``, with an index unless
    ``changes_index=False``)."""

    name: str
    columns: tuple[tuple[str, ColumnType], ...]
    indexes: tuple[Index, ...] = ()
    added: tuple[tuple[str, ColumnType], ...] = ()
    changes: bool = False
    changes_index: bool = True


def _doc(name: str) -> Table:
    """One JSON document per charger, followed by the other nodes."""
    return Table(name, (("cp_id", TEXT_KEY), ("data", JSON)), changes=True)


TABLES: tuple[Table, ...] = (
    Table("chargers", (("cp_id", TEXT_KEY), ("data", JSON)), changes=True),
    Table(
        "transactions",
        (("transaction_id", INT_KEY), ("cp_id", TEXT), ("active", BOOL), ("data", JSON)),
        (
            Index("transactions_cp", "(cp_id, transaction_id)"),
            Index("transactions_active", "(transaction_id)", "active", only="postgresql"),
            # one row per OCPP 2.0.1 session: the charger's own id, unique per charger
            Index(
                "transactions_charger_id",
                "(cp_id, charger_transaction_id)",
                "charger_transaction_id IS NOT NULL",
                unique=True,
            ),
        ),
        added=(
            ("charger_transaction_id", ColumnType.both("TEXT")),  # 2.0.1 (NULL: 1.6)
            ("id_token_type", ColumnType.both("TEXT")),  # 2.0.1 IdToken type (NULL: 1.6)
        ),
        changes=True,
    ),
    Table(
        "meter_values",
        (
            ("id", SERIAL),
            ("cp_id", TEXT),
            ("connector_id", INT),
            ("transaction_id", INT),
            ("data", JSON),
        ),
        (
            Index("meter_values_tx", "(transaction_id)", only="sqlite"),
            Index("meter_values_tx", "(transaction_id, id)", only="postgresql"),
            Index("meter_values_untied", "(cp_id, id)", "transaction_id IS NULL"),
            Index("meter_values_at", "USING brin (at)", only="postgresql"),
        ),
        added=(
            ("at", ColumnType("TEXT", "TIMESTAMPTZ DEFAULT now()")),
        ),  # when stored (NULL before)
    ),
    Table("id_tags", (("id_tag", TEXT_KEY), ("data", JSON))),
    Table("meta", (("key", TEXT_KEY), ("value", TEXT))),
    Table(
        "messages",
        (
            ("id", SERIAL),
            ("cp_id", TEXT),
            ("at", TIME),
            ("direction", TEXT),
            ("message_type", ColumnType("INTEGER NOT NULL", "SMALLINT NOT NULL")),
            ("unique_id", TEXT),
            ("action", ColumnType.both("TEXT")),
            ("payload", JSON),
        ),
        (
            Index("messages_cp", "(cp_id, id)"),
            Index("messages_cp_action", "(cp_id, action, id)", only="postgresql"),
            Index("messages_action", "(action, id)", only="postgresql"),
            Index("messages_at", "USING brin (at)", only="postgresql"),
        ),
        added=(
            ("late", ColumnType("INTEGER NOT NULL DEFAULT 0", "BOOLEAN NOT NULL DEFAULT false")),
        ),
    ),
    Table("secrets", (("cp_id", TEXT_KEY), ("password_hash", TEXT))),
    Table(
        "unmatched_stops",
        (("id", SERIAL), ("cp_id", TEXT), ("data", JSON)),
        (Index("unmatched_stops_cp", "(cp_id, id)"),),
    ),
    _doc("local_lists"),
    Table(
        "reservations",
        (
            ("reservation_id", INT_KEY),
            ("cp_id", TEXT),
            ("status", TEXT),
            ("active", BOOL),
            ("data", JSON),
        ),
        (Index("reservations_cp", "(cp_id, reservation_id)"),),
        changes=True,
    ),
    Table(
        "charging_profiles",
        (("record_id", INT_KEY), ("cp_id", TEXT), ("status", TEXT), ("data", JSON)),
        (Index("charging_profiles_cp", "(cp_id, record_id)"),),
        changes=True,
    ),
    _doc("firmware"),
    _doc("security"),
    dataclasses.replace(_doc("spoken_names"), changes_index=False),
    Table(
        "security_events",
        (("id", SERIAL), ("cp_id", TEXT), ("data", JSON)),
        (Index("security_events_cp", "(cp_id, id)"),),
    ),
    # OCPP 2.0.1 device models: one row per charger (its dropped count; the row every
    # write of the charger's model takes first, so two writers of one charger queue),
    # its variables (no key column is NULL: no instance is '', no EVSE or connector -1,
    # see _sql.NO_ID) and its latest events
    Table("device_models", (("cp_id", TEXT_KEY), ("dropped", COUNT))),
    Table(
        "device_variables",
        (
            ("id", SERIAL),
            ("cp_id", TEXT),
            ("component", TEXT),
            ("component_instance", TEXT),
            ("evse_id", INT_NOT_NULL),
            ("connector_id", INT_NOT_NULL),
            ("variable", TEXT),
            ("variable_instance", TEXT),
            ("attribute", TEXT),
            ("value", ColumnType.both("TEXT")),
            ("mutability", ColumnType.both("TEXT")),
            ("source", TEXT),
        ),
        (
            Index(
                "device_variables_key",
                f"({DEVICE_VARIABLE_KEY})",
                unique=True,
            ),
        ),
    ),
    Table(
        "device_events",
        (("id", SERIAL), ("cp_id", TEXT), ("data", JSON)),
        (Index("device_events_cp", "(cp_id, id)"),),
    ),
)
"""Every table of the CSMS's books, in both databases (PostgreSQL adds the cluster's
own, see ``_pgschema``)."""


def _same(value: Any) -> Any:
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class Dialect:
    """How one database spells what the shared query layer says once.

    The layer writes its SQL with ``?`` placeholders, booleans as ``active`` / ``NOT
    active`` and ``INSERT … ON CONFLICT … DO UPDATE`` (both databases read these alike);
    what is left differs here."""

    name: str
    """``"sqlite"`` or ``"postgresql"``: picks a :class:`ColumnType`'s spelling."""
    placeholder: str
    """``?`` or ``%s``."""
    changed: str
    """Appended to the ``SET`` of an update of a ``changes`` table: marks the row
    changed for the other nodes (empty for SQLite)."""
    decode: Callable[[Any], Any]
    """A JSON column's value as read → Python (SQLite gives text, psycopg the value)."""
    time: Callable[[dt.datetime], Any]
    """A datetime → the value bound for a ``TIME`` column (ISO text in SQLite)."""
    time_text: Callable[[Any], str]
    """A ``TIME`` column's value as read → ISO text."""
    columns: str
    """A query giving the column names of the table named by its one parameter."""
    next_change: str | None = None
    """An SQL expression giving a new change number (the secrets' change mark the other
    nodes follow), or None where no other node follows."""
    prune_lock: str | None = None
    """A query that takes the pruning lock for the current transaction and says whether
    it got it (one node prunes at a time), or None where there is one node."""

    def sql(self, text: str) -> str:
        """``text`` with this dialect's placeholders."""
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def create(self, table: Table) -> list[str]:
        """The statements creating ``table`` and its indexes where missing (the added
        columns come from :meth:`add_column`, after the table and before the indexes:
        see :func:`create_tables`)."""
        columns = [f"{name} {getattr(kind, self.name)}" for name, kind in table.columns]
        tracked = table.changes and self.changed
        if tracked:
            columns.append("changed XID8 NOT NULL DEFAULT pg_current_xact_id()")
        return [f"CREATE TABLE IF NOT EXISTS {table.name} ({', '.join(columns)})"]

    def indexes(self, table: Table) -> list[str]:
        """The ``CREATE INDEX`` statements of ``table`` in this dialect."""
        out = []
        for index in table.indexes:
            if index.only not in (None, self.name):
                continue
            where = f" WHERE {index.where}" if index.where else ""
            unique = "UNIQUE " if index.unique else ""
            out.append(
                f"CREATE {unique}INDEX IF NOT EXISTS {index.name} ON {table.name} "
                f"{index.columns}{where}"
            )
        if table.changes and self.changed and table.changes_index:
            out.append(f"CREATE INDEX IF NOT EXISTS {table.name}_changed ON {table.name} (changed)")
        return out

    def add_column(self, table: Table, name: str, kind: ColumnType) -> str:
        return f"ALTER TABLE {table.name} ADD COLUMN {name} {getattr(kind, self.name)}"


SQLITE = Dialect(
    name="sqlite",
    placeholder="?",
    changed="",
    decode=json.loads,
    time=iso,
    time_text=str,
    columns="SELECT name FROM pragma_table_info(?)",
)
POSTGRESQL = Dialect(
    name="postgresql",
    placeholder="%s",
    changed=", changed = pg_current_xact_id()",
    decode=_same,
    time=_same,
    time_text=iso,
    columns=(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = ?"
    ),
    next_change="nextval('change_numbers')::text",
    prune_lock=f"SELECT pg_try_advisory_xact_lock({PRUNE_LOCK})",
)


class Sql:
    """One database transaction's connection, spoken in the layer's SQL: placeholders
    ``?`` whatever the database (the :class:`Dialect` translates)."""

    __slots__ = ("conn", "dialect")

    def __init__(self, conn: Any, dialect: Dialect) -> None:
        self.conn, self.dialect = conn, dialect

    def execute(self, sql: str, args: Sequence[Any] | None = None) -> Any:
        """Run one statement; returns the driver's cursor (``rowcount``, ``fetchone``)."""
        if args is None:
            return self.conn.execute(self.dialect.sql(sql))
        return self.conn.execute(self.dialect.sql(sql), args)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each of ``rows`` (nothing for none)."""
        if rows:
            self.conn.cursor().executemany(self.dialect.sql(sql), rows)

    def rows(self, sql: str, args: Sequence[Any] | None = None) -> list[Any]:
        return list(self.execute(sql, args).fetchall())

    def row(self, sql: str, args: Sequence[Any] | None = None) -> Any:
        return self.execute(sql, args).fetchone()

    def value(self, sql: str, args: Sequence[Any] | None = None) -> Any:
        """The first column of the first row (None if no row)."""
        row = self.row(sql, args)
        return None if row is None else row[0]

    def create_tables(self, tables: Sequence[Table]) -> None:
        """Create ``tables`` where missing and add the columns an older release's
        database lacks (the caller holds whatever lock keeps two nodes from doing it at
        once)."""
        for table in tables:
            for statement in self.dialect.create(table):
                self.execute(statement)
            if table.added:
                have = {r[0] for r in self.rows(self.dialect.columns, (table.name,))}
                for name, kind in table.added:
                    if name not in have:
                        self.execute(self.dialect.add_column(table, name, kind))
            for statement in self.dialect.indexes(table):
                self.execute(statement)
