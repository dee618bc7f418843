"""The message log in PostgreSQL: batched inserts, paged reads and retention (one
node prunes at a time)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from libv4e.csms._pgschema import PRUNE_LOCK
from libv4e.csms._registry import iso
from libv4e.csms._store import clean_text, fair_quota
from libv4e.transport._connection import MessageRecord

T = TypeVar("T")


class PgMessageLog:
    """The message-log methods of :class:`~libv4e.csms._pgstore.PostgresStore`."""

    async def run(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(connection)`` in one database transaction (see PostgresStore.run)."""
        raise NotImplementedError

    # -- message log -----------------------------------------------------------------------

    async def log_messages(self, records: Sequence[MessageRecord]) -> None:
        """Append OCPP messages to the log, in one transaction."""
        rows = message_rows(records)

        def work(db: Any) -> None:
            with (
                db.cursor() as cur,
                cur.copy(
                    "COPY messages (cp_id, at, direction, message_type, unique_id, action, "
                    "payload, late) FROM STDIN"
                ) as copy,
            ):
                for row in rows:
                    copy.write_row(row)

        await self.run(work)

    async def retract_messages(self, records: Sequence[MessageRecord]) -> None:
        """Delete the newest logged row of each of ``records`` (same charger, direction,
        message type and unique id): answers written with their change that could not be
        sent after all."""
        keys = [(_text(r.cp_id), _text(r.unique_id), r.direction, r.message_type) for r in records]

        def work(db: Any) -> None:
            for key in keys:
                db.execute(
                    "DELETE FROM messages WHERE id = (SELECT MAX(id) FROM messages WHERE "
                    "cp_id = %s AND unique_id = %s AND direction = %s AND message_type = %s)",
                    key,
                )

        await self.run(work)

    async def messages(
        self, cp_id: str | None, *, limit: int, offset: int, action: str | None = None
    ) -> list[dict[str, Any]]:
        """Logged messages, newest first."""
        where: list[str] = []
        args: list[Any] = []
        if cp_id is not None:
            where.append("cp_id = %s")
            args.append(cp_id)
        if action is not None:
            where.append("action = %s")
            args.append(action)
        sql = (
            "SELECT id, cp_id, at, direction, message_type, unique_id, action, payload, late "
            "FROM messages"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT %s OFFSET %s"
        rows = await self.run(lambda db: db.execute(sql, (*args, limit, offset)).fetchall())
        return [
            {
                "id": r[0],
                "cp_id": r[1],
                "at": iso(r[2]),
                "direction": r[3],
                "message_type": r[4],
                "unique_id": r[5],
                "action": r[6],
                "payload": r[7],
                "late": r[8],
            }
            for r in rows
        ]

    async def prune_messages(
        self,
        *,
        max_rows: int | None,
        older_than: dt.datetime | None,
        per_charger: int | None = None,
        batch: int = 10_000,
    ) -> int:
        """Delete logged messages logged before ``older_than``, and beyond a fair share
        per charger (:func:`fair_quota`: at most ``per_charger`` each, ``max_rows`` in all,
        the biggest loggers trimmed first), in transactions of at most ``batch`` rows (one
        node at a time: the others skip); returns how many were deleted."""

        def locked(db: Any) -> bool:
            return bool(
                db.execute("SELECT pg_try_advisory_xact_lock(%s)", (PRUNE_LOCK,)).fetchone()[0]
            )

        def old(db: Any) -> int:
            if not locked(db):
                return 0  # another node is pruning
            return int(
                db.execute(
                    "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE at < %s "
                    "ORDER BY id LIMIT %s)",
                    (older_than, batch),
                ).rowcount
            )

        def fair(db: Any) -> int:
            if not locked(db):
                return 0
            counts = dict(db.execute("SELECT cp_id, COUNT(*) FROM messages GROUP BY cp_id"))
            quota = fair_quota(counts, max_rows, per_charger)
            deleted = 0
            for cp_id, count in counts.items():
                if quota is None or count <= quota:
                    continue
                if quota == 0:
                    cur = db.execute("DELETE FROM messages WHERE cp_id = %s", (cp_id,))
                else:  # keep the newest ``quota``: delete below the quota-th newest id
                    cur = db.execute(
                        "DELETE FROM messages WHERE cp_id = %s AND id < (SELECT id FROM "
                        "messages WHERE cp_id = %s ORDER BY id DESC OFFSET %s LIMIT 1)",
                        (cp_id, cp_id, quota - 1),
                    )
                deleted += int(cur.rowcount)
            return deleted

        total = 0
        if older_than is not None:
            while True:
                deleted = await self.run(old)
                total += deleted
                if deleted < batch:
                    break
        if max_rows is not None or per_charger is not None:
            total += await self.run(fair)
        return total


def _text(value: str) -> str:
    """``value`` storable in a TEXT column: PostgreSQL also refuses NUL characters, which
    a peer may put in a message id (they become U+FFFD); lone surrogates are escaped as
    in the SQLite store (``clean_text``)."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    return clean_text(value)


INSERT_MESSAGE = (
    "INSERT INTO messages (cp_id, at, direction, message_type, unique_id, action, payload, "
    "late) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
"""One message-log row (batches use COPY with the same columns)."""


def message_rows(records: Sequence[MessageRecord]) -> list[tuple[Any, ...]]:
    """Message-log rows of ``records``, in the column order of :data:`INSERT_MESSAGE`."""
    return [
        (
            _text(r.cp_id),
            r.at,
            r.direction,
            r.message_type,
            _text(r.unique_id),
            None if r.action is None else _text(r.action),
            json.dumps(r.payload, default=repr),
            r.late,
        )
        for r in records
    ]
