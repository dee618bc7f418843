"""Faults: graceful shutdown, a locked database, a simulator killed mid-transaction."""

from __future__ import annotations

import sqlite3

import pytest
import trio
from ocpp.v16 import call

from libv4e import Charger, ChargerConfig, CsmsConfig, RemoteCallError, SqliteStore, open_ocpp
from libv4e_apps.csms.backend import BackendConfig, serve_backend
from tests.support import NOW, api, boot, running_backend, wait_for, ws_url

pytestmark = pytest.mark.usefixtures("both_transports")


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


async def test_simulator_killed_mid_transaction_and_restarted(db, tmp_path):
    """The charger process dies while charging. Like a real charger after a power loss, the
    restarted one finds the interrupted session in its saved state and reports it stopped
    (reason PowerLoss, with its last energy register); the CSMS closes the transaction."""
    state = str(tmp_path / "EVSE001.json")
    async with running_backend(db) as backend, api(backend) as client:
        first = Charger(ChargerConfig(cp_id="EVSE001", reconnect_min=0.1, state_path=state))
        async with trio.open_nursery() as nursery:
            await nursery.start(first.run, ws_url(backend))
            with trio.fail_after(10):
                await first.connected_event.wait()
            await client.post(
                "/commands/change_configuration/EVSE001",
                json={"key": "MeterValueSampleInterval", "value": "1"},
            )
            await client.post("/commands/remote_start/EVSE001", json={"id_tag": "USER123"})
            await wait_for(lambda: _val(first.sessions and first.sessions[1].transaction_id))
            tx_id = first.sessions[1].transaction_id

            async def reported():  # samples have come in (every second): energy has flowed
                tx = (await client.get(f"/transactions/{tx_id}")).json()
                return (tx["last_meter_wh"] or 0) > tx["meter_start"]

            await wait_for(reported)
            first.persist()  # the last register a real charger would have written to flash
            energy = round(first.meters[1].energy_wh)
            nursery.cancel_scope.cancel()  # killed: no StopTransaction
        await wait_for(lambda: _offline(client))
        active = (await client.get("/transactions", params={"active": "true"})).json()[
            "transactions"
        ]
        assert [t["transaction_id"] for t in active] == [tx_id]

        second = Charger(ChargerConfig(cp_id="EVSE001", reconnect_min=0.1, state_path=state))
        async with trio.open_nursery() as nursery:
            await nursery.start(second.run, ws_url(backend))
            with trio.fail_after(10):
                await second.connected_event.wait()

            async def closed():
                tx = (await client.get(f"/transactions/{tx_id}")).json()
                return tx if not tx["active"] else None

            tx = await wait_for(closed)
            assert tx["stop_reason"] == "PowerLoss"
            assert tx["meter_stop"] == energy > 0
            assert second.configuration["MeterValueSampleInterval"] == "1"  # kept across restart
            assert not second.sessions

            async def available():
                state_now = (await client.get("/chargers/EVSE001")).json()
                return (
                    state_now["connection"] == "online"
                    and state_now["connectors"][1]["status"] == "Available"
                )

            await wait_for(available)
            nursery.cancel_scope.cancel()


async def _val(v):
    return v


async def _offline(client):
    return (await client.get("/chargers/EVSE001")).json()["connection"] == "offline"
