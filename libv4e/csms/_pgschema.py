"""The PostgreSQL store's schema, advisory-lock keys and query helpers."""

from __future__ import annotations

from typing import Any

SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS transaction_ids AS integer;
CREATE SEQUENCE IF NOT EXISTS change_numbers;
CREATE TABLE IF NOT EXISTS chargers (
    cp_id TEXT PRIMARY KEY, data JSON NOT NULL,
    changed XID8 NOT NULL DEFAULT pg_current_xact_id());
CREATE INDEX IF NOT EXISTS chargers_changed ON chargers (changed);
CREATE TABLE IF NOT EXISTS transactions (
    transaction_id INTEGER PRIMARY KEY, cp_id TEXT NOT NULL, active BOOLEAN NOT NULL,
    data JSON NOT NULL, changed XID8 NOT NULL DEFAULT pg_current_xact_id());
CREATE INDEX IF NOT EXISTS transactions_cp ON transactions (cp_id, transaction_id);
CREATE INDEX IF NOT EXISTS transactions_active ON transactions (transaction_id) WHERE active;
CREATE INDEX IF NOT EXISTS transactions_changed ON transactions (changed);
CREATE TABLE IF NOT EXISTS meter_values (
    id BIGSERIAL PRIMARY KEY, cp_id TEXT NOT NULL, connector_id INTEGER,
    transaction_id INTEGER, data JSON NOT NULL);
CREATE INDEX IF NOT EXISTS meter_values_tx ON meter_values (transaction_id, id);
ALTER TABLE meter_values ADD COLUMN IF NOT EXISTS at TIMESTAMPTZ DEFAULT now();
CREATE INDEX IF NOT EXISTS meter_values_untied ON meter_values (cp_id, id)
    WHERE transaction_id IS NULL;
CREATE INDEX IF NOT EXISTS meter_values_at ON meter_values USING brin (at);
CREATE TABLE IF NOT EXISTS id_tags (id_tag TEXT PRIMARY KEY, data JSON NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id BIGSERIAL PRIMARY KEY, cp_id TEXT NOT NULL, at TIMESTAMPTZ NOT NULL,
    direction TEXT NOT NULL, message_type SMALLINT NOT NULL, unique_id TEXT NOT NULL,
    action TEXT, payload JSON NOT NULL, late BOOLEAN NOT NULL DEFAULT false);
CREATE INDEX IF NOT EXISTS messages_cp ON messages (cp_id, id);
CREATE INDEX IF NOT EXISTS messages_cp_action ON messages (cp_id, action, id);
CREATE INDEX IF NOT EXISTS messages_action ON messages (action, id);
CREATE INDEX IF NOT EXISTS messages_at ON messages USING brin (at);
CREATE TABLE IF NOT EXISTS tickets (
    ticket_id BIGSERIAL PRIMARY KEY, cp_id TEXT NOT NULL, data JSON NOT NULL);
CREATE TABLE IF NOT EXISTS secrets (cp_id TEXT PRIMARY KEY, password_hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS unmatched_stops (
    id BIGSERIAL PRIMARY KEY, cp_id TEXT NOT NULL, data JSON NOT NULL);
CREATE INDEX IF NOT EXISTS unmatched_stops_cp ON unmatched_stops (cp_id, id);
CREATE TABLE IF NOT EXISTS local_lists (
    cp_id TEXT PRIMARY KEY, data JSON NOT NULL,
    changed XID8 NOT NULL DEFAULT pg_current_xact_id());
CREATE INDEX IF NOT EXISTS local_lists_changed ON local_lists (changed);
CREATE TABLE IF NOT EXISTS reservations (
    reservation_id INTEGER PRIMARY KEY, cp_id TEXT NOT NULL, status TEXT NOT NULL,
    active BOOLEAN NOT NULL, data JSON NOT NULL,
    changed XID8 NOT NULL DEFAULT pg_current_xact_id());
CREATE INDEX IF NOT EXISTS reservations_cp ON reservations (cp_id, reservation_id);
CREATE INDEX IF NOT EXISTS reservations_changed ON reservations (changed);
CREATE TABLE IF NOT EXISTS charging_profiles (
    record_id INTEGER PRIMARY KEY, cp_id TEXT NOT NULL, status TEXT NOT NULL,
    data JSON NOT NULL, changed XID8 NOT NULL DEFAULT pg_current_xact_id());
CREATE INDEX IF NOT EXISTS charging_profiles_cp ON charging_profiles (cp_id, record_id);
CREATE INDEX IF NOT EXISTS charging_profiles_changed ON charging_profiles (changed);
CREATE TABLE IF NOT EXISTS firmware (
    cp_id TEXT PRIMARY KEY, data JSON NOT NULL,
    changed XID8 NOT NULL DEFAULT pg_current_xact_id());
CREATE INDEX IF NOT EXISTS firmware_changed ON firmware (changed);
CREATE TABLE IF NOT EXISTS security (
    cp_id TEXT PRIMARY KEY, data JSON NOT NULL,
    changed XID8 NOT NULL DEFAULT pg_current_xact_id());
CREATE INDEX IF NOT EXISTS security_changed ON security (changed);
CREATE TABLE IF NOT EXISTS spoken_names (
    cp_id TEXT PRIMARY KEY, data JSON NOT NULL,
    changed XID8 NOT NULL DEFAULT pg_current_xact_id());
CREATE TABLE IF NOT EXISTS security_events (
    id BIGSERIAL PRIMARY KEY, cp_id TEXT NOT NULL, data JSON NOT NULL);
CREATE INDEX IF NOT EXISTS security_events_cp ON security_events (cp_id, id);
CREATE TABLE IF NOT EXISTS nodes (
    node_id TEXT PRIMARY KEY, started_at TIMESTAMPTZ NOT NULL, lease_until TIMESTAMPTZ NOT NULL,
    info JSON NOT NULL);
CREATE TABLE IF NOT EXISTS presence (
    cp_id TEXT PRIMARY KEY, node_id TEXT NOT NULL, since TIMESTAMPTZ NOT NULL,
    connected BOOLEAN NOT NULL, claim BIGINT NOT NULL,
    changed XID8 NOT NULL DEFAULT pg_current_xact_id());
CREATE INDEX IF NOT EXISTS presence_node ON presence (node_id) WHERE connected;
CREATE INDEX IF NOT EXISTS presence_changed ON presence (changed);
CREATE TABLE IF NOT EXISTS mailbox (
    id BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ NOT NULL DEFAULT now(), body JSON NOT NULL);
"""
SCHEMA_LOCK = 0x76346531  # pg_advisory_xact_lock keys: nodes starting together create once
TX_ID_LOCK = 0x76346532  # one id block reservation at a time (each block consecutive)
PRUNE_LOCK = 0x76346533  # one node prunes the message log at a time


class Refused(Exception):
    """A write that must not happen (it would replace or miss a row); rolled back."""


def filtered(
    db: Any,
    table: str,
    key: str,
    cp_id: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> list[Any]:
    """``data`` of the rows of ``table`` (fixed names, never user input), newest first."""
    where: list[str] = []
    args: list[Any] = []
    if cp_id is not None:
        where.append("cp_id = %s")
        args.append(cp_id)
    if status is not None:
        where.append("status = %s")
        args.append(status)
    sql = f"SELECT data FROM {table}"  # table and key are constants
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {key} DESC LIMIT %s OFFSET %s"
    return list(db.execute(sql, (*args, limit, offset)).fetchall())


def int4(value: int) -> bool:
    return -(2**31) <= value < 2**31
