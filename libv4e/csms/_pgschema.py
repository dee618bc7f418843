"""What only the PostgreSQL store's database holds (the books' tables are declared once,
in ``_sqlschema``): the id and change-number sequences, the cluster's tables, and the
advisory-lock keys."""

from __future__ import annotations

CLUSTER_SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS transaction_ids AS integer;
CREATE SEQUENCE IF NOT EXISTS change_numbers;
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
