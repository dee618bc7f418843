"""Faults: graceful shutdown, a locked database, a simulator killed mid-transaction."""

from __future__ import annotations

import sqlite3

import pytest
import trio
from ocpp.v16 import call

from libv4e import (
    BackendConfig,
    Charger,
    ChargerConfig,
    CsmsConfig,
    RemoteCallError,
    SqliteStore,
    open_ocpp,
    serve_backend,
)

from .helpers import NOW, api, boot, running_backend, ws_url
from .test_charger import wait_for


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "v4e.db")


async def test_graceful_shutdown_closes_websockets_with_1001_and_commits(db):
    config = BackendConfig(
        host="127.0.0.1", ws_port=0, api_port=0, db_path=db, csms=CsmsConfig(log_flush_interval=60)
    )  # only shutdown flushes
    scope = trio.CancelScope()

    async def run_backend(task_status):
        with scope:
            await serve_backend(config, task_status=task_status)

    async with trio.open_nursery() as nursery:
        backend = await nursery.start(run_backend)
        async with open_ocpp(ws_url(backend), "EVSE001") as conn:
            await boot(conn)
            tx = await conn.call(call.StartTransaction(1, "USER123", 0, NOW), timeout=5)
            for _ in range(5):
                await conn.call(call.Heartbeat(), timeout=5)
            scope.cancel()
            with trio.fail_after(5):
                await conn.wait_closed()
            assert conn.ws.closed.code == 1001
    with sqlite3.connect(db) as check:
        beats = check.execute(
            "SELECT COUNT(*) FROM messages WHERE action = 'Heartbeat'"
        ).fetchone()[0]
        stored = check.execute(
            "SELECT COUNT(*) FROM transactions WHERE transaction_id = ?", (tx.transaction_id,)
        ).fetchone()[0]
    assert beats == 10  # five calls in, five results out: the log was flushed at shutdown
    assert stored == 1


async def test_locked_database_gives_clear_errors_and_loses_nothing(db):
    store = SqliteStore(db, busy_timeout=0.2)
    config = BackendConfig(host="127.0.0.1", ws_port=0, api_port=0, db_path=db)
    async with trio.open_nursery() as nursery:
        backend = await nursery.start(
            lambda task_status: serve_backend(config, store=store, task_status=task_status)
        )
        async with open_ocpp(ws_url(backend), "EVSE001") as conn, api(backend) as client:
            await boot(conn)
            locker = sqlite3.connect(db, isolation_level=None)
            locker.execute("BEGIN EXCLUSIVE")
            try:
                with pytest.raises(RemoteCallError) as info:
                    await conn.call(call.StartTransaction(1, "USER123", 0, NOW), timeout=5)
                assert info.value.code == "InternalError"  # the charger will retry
                r = await client.post("/id_tags", json={"id_tag": "LOCKED"})
                assert (r.status_code, r.json()["error"]) == (503, "storage_unavailable")
                assert "locked" in r.json()["message"]
            finally:
                locker.execute("ROLLBACK")
                locker.close()
            tx = await conn.call(call.StartTransaction(1, "USER123", 0, NOW), timeout=5)
            r = await client.post("/id_tags", json={"id_tag": "LOCKED"})
            assert r.status_code == 201
            txs = (await client.get("/transactions")).json()["transactions"]
            assert [t["transaction_id"] for t in txs] == [tx.transaction_id]
        nursery.cancel_scope.cancel()
    with sqlite3.connect(db) as check:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_simulator_killed_mid_transaction_and_restarted(db):
    """The charger process dies while charging; a new one with the same id connects, and
    the CSMS keeps the transaction open until it is stopped (as a real charger that lost
    its memory would report it after boot)."""
    async with running_backend(db) as backend, api(backend) as client:
        first = Charger(ChargerConfig(cp_id="EVSE001", reconnect_min=0.1))
        async with trio.open_nursery() as nursery:
            await nursery.start(first.run, ws_url(backend))
            with trio.fail_after(10):
                await first.connected_event.wait()
            await client.post("/commands/remote_start/EVSE001", json={"id_tag": "USER123"})
            await wait_for(lambda: _val(first.sessions and first.sessions[1].transaction_id))
            tx_id = first.sessions[1].transaction_id
            nursery.cancel_scope.cancel()  # killed: no StopTransaction
        await wait_for(lambda: _offline(client))
        txs = (await client.get("/transactions", params={"active": "true"})).json()["transactions"]
        assert [t["transaction_id"] for t in txs] == [tx_id]
        second = Charger(ChargerConfig(cp_id="EVSE001", reconnect_min=0.1))
        async with trio.open_nursery() as nursery:
            await nursery.start(second.run, ws_url(backend))
            with trio.fail_after(10):
                await second.connected_event.wait()
            state = (await client.get("/chargers/EVSE001")).json()
            assert state["connection"] == "online"
            # the operator (or agent) stops the orphaned transaction remotely: the new
            # charger does not know it and rejects; the CSMS still shows it so it can be closed
            r = await client.post("/commands/remote_stop/EVSE001", json={"transaction_id": tx_id})
            assert r.json()["status"] == "Rejected"
            nursery.cancel_scope.cancel()


async def _val(v):
    return v


async def _offline(client):
    return (await client.get("/chargers/EVSE001")).json()["connection"] == "offline"
