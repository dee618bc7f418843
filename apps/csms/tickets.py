"""Support tickets: the help desk's data, kept by the app in the CSMS's database (the
CSMS itself never files or reads one).

:class:`TicketDesk` keeps them in a ``tickets`` table of its own next to the CSMS's
books, through the store's query layer (:meth:`libv4e.csms.SqlStore.query`), so they
live in SQLite or PostgreSQL alike and survive a restart; databases written by earlier
releases already hold the table."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import cattrs

from libv4e.csms import ColumnType, Sql, SqlStore, Store, Table
from libv4e.protocol import iso, parse_time

TICKETS = Table(
    "tickets",
    (
        ("ticket_id", ColumnType("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")),
        ("cp_id", ColumnType.both("TEXT NOT NULL")),
        ("data", ColumnType("TEXT NOT NULL", "JSON NOT NULL")),
    ),
)
"""The tickets table (the same in both databases)."""

_conv = cattrs.Converter()
_conv.register_unstructure_hook(dt.datetime, iso)
_conv.register_structure_hook(dt.datetime, lambda v, _: parse_time(v))


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


class TicketDesk:
    """The tickets kept in ``store``'s database (any :class:`~libv4e.csms.SqlStore`;
    another store keeps them in memory, for as long as the process runs)."""

    def __init__(self, store: Store) -> None:
        self.store = store if isinstance(store, SqlStore) else None
        self._memory: list[Ticket] = []
        self._ready = False

    def _create(self, q: Sql) -> None:
        """Create the table where missing (once per desk)."""
        if not self._ready:
            q.create_tables([TICKETS])

    async def add(self, ticket: Ticket) -> Ticket:
        """Store a new ticket; returns it with its assigned id (increasing)."""
        if self.store is None:
            ticket.ticket_id = len(self._memory) + 1
            self._memory.append(ticket)
            return ticket
        data = _conv.unstructure(ticket)
        data.pop("ticket_id")

        def work(q: Sql) -> int:
            self._create(q)
            return int(
                q.value(
                    "INSERT INTO tickets (cp_id, data) VALUES (?, ?) RETURNING ticket_id",
                    (ticket.cp_id, json.dumps(data)),
                )
            )

        ticket.ticket_id = await self.store.query(work)
        self._ready = True
        return ticket

    async def tickets(self) -> list[Ticket]:
        """Every ticket, oldest first."""
        if self.store is None:
            return list(self._memory)

        def work(q: Sql) -> list[Any]:
            self._create(q)
            return q.rows("SELECT ticket_id, data FROM tickets ORDER BY ticket_id")

        rows = await self.store.query(work)
        self._ready = True
        decode = self.store.dialect.decode
        return [_conv.structure({**decode(r[1]), "ticket_id": r[0]}, Ticket) for r in rows]
