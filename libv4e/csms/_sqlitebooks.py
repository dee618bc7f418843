"""The operator books (issue 15) in SQLite: one JSON document per record."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from libv4e.csms._firmware import ChargerFirmware
from libv4e.csms._locallists import ChargerLocalList
from libv4e.csms._names import SpokenNames
from libv4e.csms._profiles import ChargingProfileRecord
from libv4e.csms._reservations import Reservation
from libv4e.csms._security import ChargerSecurity, SecurityEvent
from libv4e.csms._store import _conv, storable

T = TypeVar("T")
D = TypeVar("D")


class SqliteOperatorBooks:
    """The operator-book methods of :class:`~libv4e.csms._sqlite.SqliteStore`."""

    async def _run(self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = False) -> T:
        """Run ``fn(connection)`` in the store's thread (see SqliteStore._run)."""
        raise NotImplementedError

    # -- operator books (issue 15) -------------------------------------------------------------

    async def save_local_list(self, state: ChargerLocalList) -> None:
        """Insert or replace one charger's local list state."""
        await self._save_document("local_lists", state.cp_id, state)

    async def load_local_lists(self) -> list[ChargerLocalList]:
        """Every charger's local list state."""
        return await self._load_documents("local_lists", ChargerLocalList)

    async def save_reservation(self, reservation: Reservation) -> None:
        """Insert or replace a reservation."""
        r = reservation
        data = json.dumps(_conv.unstructure(r))
        await self._run(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO reservations (reservation_id, cp_id, status, active, "
                "data) VALUES (?,?,?,?,?)",
                (r.reservation_id, r.cp_id, str(r.status), int(r.active), data),
            )
        )

    async def load_reservations(self, *, finished: int = 500) -> list[Reservation]:
        """Active reservations and the ``finished`` most recent others, by id."""
        rows = await self._run(
            lambda db: db.execute(
                "SELECT data FROM reservations WHERE active = 1 OR reservation_id IN "
                "(SELECT reservation_id FROM reservations WHERE active = 0 "
                "ORDER BY reservation_id DESC LIMIT ?) ORDER BY reservation_id",
                (finished,),
            ).fetchall()
        )
        return [_conv.structure(json.loads(r[0]), Reservation) for r in rows]

    async def reservations(
        self, *, cp_id: str | None, status: str | None, limit: int, offset: int
    ) -> list[Reservation]:
        """Reservations, newest first, optionally filtered by charger and status."""
        rows = await self._run(
            lambda db: filtered(db, "reservations", "reservation_id", cp_id, status, limit, offset)
        )
        return [_conv.structure(json.loads(r[0]), Reservation) for r in rows]

    async def reservation(self, reservation_id: int) -> Reservation | None:
        """One reservation, if stored."""
        if not storable(reservation_id):
            return None
        row = await self._run(
            lambda db: db.execute(
                "SELECT data FROM reservations WHERE reservation_id = ?", (reservation_id,)
            ).fetchone()
        )
        return None if row is None else _conv.structure(json.loads(row[0]), Reservation)

    async def last_reservation_id(self) -> int:
        """The highest reservation id ever stored (0 if none)."""
        row = await self._run(
            lambda db: db.execute("SELECT MAX(reservation_id) FROM reservations").fetchone()
        )
        return int(row[0] or 0)

    async def save_charging_profiles(self, records: Sequence[ChargingProfileRecord]) -> None:
        """Insert or replace charging profile records, in one transaction."""
        rows = [
            (r.record_id, r.cp_id, str(r.status), json.dumps(_conv.unstructure(r))) for r in records
        ]
        await self._run(
            lambda db: db.executemany(
                "INSERT OR REPLACE INTO charging_profiles (record_id, cp_id, status, data) "
                "VALUES (?,?,?,?)",
                rows,
            )
        )

    async def load_charging_profiles(self, *, finished: int = 500) -> list[ChargingProfileRecord]:
        """Installed and pending records, and the ``finished`` most recent others."""
        rows = await self._run(
            lambda db: db.execute(
                "SELECT data FROM charging_profiles WHERE status IN ('Installed', 'Pending') "
                "OR record_id IN (SELECT record_id FROM charging_profiles WHERE status NOT IN "
                "('Installed', 'Pending') ORDER BY record_id DESC LIMIT ?) ORDER BY record_id",
                (finished,),
            ).fetchall()
        )
        return [_conv.structure(json.loads(r[0]), ChargingProfileRecord) for r in rows]

    async def charging_profiles(
        self, *, cp_id: str | None, status: str | None, limit: int, offset: int
    ) -> list[ChargingProfileRecord]:
        """Charging profile records, newest first, optionally filtered."""
        rows = await self._run(
            lambda db: filtered(db, "charging_profiles", "record_id", cp_id, status, limit, offset)
        )
        return [_conv.structure(json.loads(r[0]), ChargingProfileRecord) for r in rows]

    async def last_charging_profile_record_id(self) -> int:
        """The highest charging profile record id ever stored (0 if none)."""
        row = await self._run(
            lambda db: db.execute("SELECT MAX(record_id) FROM charging_profiles").fetchone()
        )
        return int(row[0] or 0)

    async def save_firmware_state(self, state: ChargerFirmware) -> None:
        """Insert or replace one charger's firmware and diagnostics state."""
        await self._save_document("firmware", state.cp_id, state)

    async def load_firmware_states(self) -> list[ChargerFirmware]:
        """Every charger's firmware and diagnostics state."""
        return await self._load_documents("firmware", ChargerFirmware)

    async def save_security_state(self, state: ChargerSecurity) -> None:
        """Insert or replace one charger's security record (security extension)."""
        await self._save_document("security", state.cp_id, state)

    async def load_security_states(self) -> list[ChargerSecurity]:
        """Every charger's security record."""
        return await self._load_documents("security", ChargerSecurity)

    async def security_state(self, cp_id: str) -> ChargerSecurity | None:
        """One charger's security record as stored, if any."""
        row = await self._run(
            lambda db: db.execute("SELECT data FROM security WHERE cp_id = ?", (cp_id,)).fetchone()
        )
        return None if row is None else _conv.structure(json.loads(row[0]), ChargerSecurity)

    async def save_spoken_names(self, names: SpokenNames) -> None:
        """Insert or replace one charger's spoken names."""
        await self._save_document("spoken_names", names.cp_id, names)

    async def spoken_names(self, cp_id: str) -> SpokenNames | None:
        """One charger's spoken names as stored, if any."""
        row = await self._run(
            lambda db: db.execute(
                "SELECT data FROM spoken_names WHERE cp_id = ?", (cp_id,)
            ).fetchone()
        )
        return None if row is None else _conv.structure(json.loads(row[0]), SpokenNames)

    async def add_security_event(self, cp_id: str, event: SecurityEvent, *, keep: int) -> None:
        """Append a security event; the charger keeps its newest ``keep`` only."""
        data = json.dumps(_conv.unstructure(event))

        def work(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO security_events (cp_id, data) VALUES (?, ?)", (cp_id, data))
            db.execute(
                "DELETE FROM security_events WHERE cp_id = ? AND id <= (SELECT id FROM "
                "security_events WHERE cp_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (cp_id, cp_id, keep),
            )

        await self._run(work)

    async def security_events(self, cp_id: str, *, limit: int) -> tuple[list[SecurityEvent], int]:
        """The charger's newest ``limit`` security events (newest first) and the count kept."""

        def work(db: sqlite3.Connection) -> tuple[list[Any], int]:
            rows = db.execute(
                "SELECT data FROM security_events WHERE cp_id = ? ORDER BY id DESC LIMIT ?",
                (cp_id, limit),
            ).fetchall()
            count = db.execute(
                "SELECT count(*) FROM security_events WHERE cp_id = ?", (cp_id,)
            ).fetchone()[0]
            return rows, int(count)

        rows, count = await self._run(work)
        return [_conv.structure(json.loads(r[0]), SecurityEvent) for r in rows], count

    async def _save_document(self, table: str, cp_id: str, state: Any) -> None:
        """Insert or replace the one JSON document of ``cp_id`` in ``table`` (a constant)."""
        data = json.dumps(_conv.unstructure(state))
        await self._run(
            lambda db: db.execute(
                f"INSERT INTO {table} (cp_id, data) VALUES (?, ?) "
                "ON CONFLICT (cp_id) DO UPDATE SET data = excluded.data",
                (cp_id, data),
            )
        )

    async def _load_documents(self, table: str, kind: type[D]) -> list[D]:
        """Every document of ``table`` (a constant) as ``kind``."""
        rows = await self._run(lambda db: db.execute(f"SELECT data FROM {table}").fetchall())
        return [_conv.structure(json.loads(r[0]), kind) for r in rows]


def filtered(
    db: sqlite3.Connection,
    table: str,
    key: str,
    cp_id: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> list[Any]:
    """``data`` of the rows of ``table`` (fixed names, never user input), newest first."""
    where: list[str] = []
    args: list[str | int] = []
    if cp_id is not None:
        where.append("cp_id = ?")
        args.append(cp_id)
    if status is not None:
        where.append("status = ?")
        args.append(status)
    sql = f"SELECT data FROM {table}"  # table and key are constants
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {key} DESC LIMIT ? OFFSET ?"
    return db.execute(sql, (*args, limit, offset)).fetchall()
