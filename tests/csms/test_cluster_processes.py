"""Cluster nodes as real processes (``v4e csms --db postgresql://...``): a node killed with
SIGKILL hands its chargers over, and ``--workers 2`` serves one fleet from two processes."""

from __future__ import annotations

import signal
from typing import Any

import httpx
import psycopg
import pytest
import trio
from ocpp.v16 import call, datatypes, enums

from libv4e import open_ocpp
from tests.support import (
    NOW,
    PlainCharger,
    api,
    boot,
    holders,
    node,
    start_cli,
    synced,
    ws_url,
)

pytestmark = pytest.mark.slow


async def stop(proc: Any) -> int:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    with trio.fail_after(30):
        return int(await proc.wait())


async def test_kill_9_of_a_node_hands_its_charger_and_transaction_to_another(pg_url):
    lease = 2.0
    async with node(pg_url, lease=lease) as b:
        proc, a_ws, _ = await start_cli(pg_url, "--node-id", "node-a", "--node-lease", str(lease))
        try:
            charger = PlainCharger()
            a_url = f"ws://127.0.0.1:{a_ws}"
            async with (
                open_ocpp(a_url, "CP-STAY"),
                open_ocpp(a_url, "CP-K", handlers=charger.handlers()) as conn,
            ):
                await boot(conn)
                started = await conn.call(call.StartTransaction(1, "TAG", 1000, NOW), timeout=5)
                tx_id = started.transaction_id
                sample = [datatypes.MeterValue(NOW, [datatypes.SampledValue("1200")])]
                await conn.call(call.MeterValues(1, sample, transaction_id=tx_id), timeout=5)
                async with api(b) as client:  # across processes: B → A → charger
                    r = await client.post("/commands/reset/CP-K", json={"type": "Soft"})
                    assert r.status_code == 200, r.text
                    assert charger.received == [call.Reset("Soft")]
                assert holders(pg_url)["CP-K"] == ("node-a", True)
                proc.kill()  # SIGKILL: no goodbye, no flush
                await proc.wait()
                with trio.fail_after(10):
                    await conn.wait_closed()
            # the charger reconnects (its load balancer now sends it to B) and goes on
            later = "2024-05-01T12:30:00Z"
            async with open_ocpp(ws_url(b), "CP-K", handlers=charger.handlers()) as conn:
                sample = [datatypes.MeterValue(later, [datatypes.SampledValue("1800")])]
                await conn.call(call.MeterValues(1, sample, transaction_id=tx_id), timeout=5)
                await conn.call(
                    call.StopTransaction(2000, later, tx_id, reason=enums.Reason.local), timeout=5
                )
                assert holders(pg_url)["CP-K"] == (b.node.node_id, True)
                async with api(b) as client:
                    r = await client.post("/commands/reset/CP-K", json={"type": "Hard"})
                    assert r.status_code == 200, r.text
                    r = await client.get(f"/transactions/{tx_id}")
                    data = r.json()
                    assert data["active"] is False
                    assert data["meter_start"] == 1000
                    assert data["meter_stop"] == 2000
                    assert len(data["meter_values"]) == 2  # one written by A, one by B
            with psycopg.connect(pg_url) as db:
                rows = db.execute(
                    "SELECT transaction_id FROM transactions WHERE cp_id = 'CP-K'"
                ).fetchall()
                assert rows == [(tx_id,)]  # one row: continued, not restarted or duplicated
                assert db.execute("SELECT count(*) FROM unmatched_stops").fetchone() == (0,)
            # A's presence expires with its lease: its other charger is shown disconnected
            with trio.fail_after(lease * 5):
                # another process's state: polled (nothing here to wait on)
                while holders(pg_url)["CP-STAY"] != ("node-a", False):  # noqa: ASYNC110
                    await trio.sleep(0.2)  # wall: a lease held by another process, polled
            await synced(b)
            async with api(b) as client:
                r = await client.get("/chargers/CP-STAY")
                assert r.status_code == 200, r.text
                assert r.json()["connected"] is False
                r = await client.post("/commands/reset/CP-STAY", json={"type": "Soft"})
                assert r.status_code == 404
                assert r.json()["error"] == "charger_not_connected"
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_two_workers_serve_one_fleet(pg_url):
    proc, ws_port, api_port = await start_cli(pg_url, "--workers", "2", "--node-id", "w")
    try:
        with trio.fail_after(60), psycopg.connect(pg_url, autocommit=True) as db:
            # both workers listening (each joins the cluster before it serves)
            while db.execute("SELECT count(*) FROM nodes").fetchone()[0] < 2:  # noqa: ASYNC110
                await trio.sleep(0.2)  # wall: the workers are other processes, polled
            # the workers (other processes) start listening after joining
            await trio.sleep(0.5)  # wall: other processes
        count = 24
        chargers = {f"CP{i:02d}": PlainCharger() for i in range(count)}
        connected = trio.Event()
        done = trio.Event()
        booted = 0

        async def run(cp_id: str) -> None:
            nonlocal booted
            url = f"ws://127.0.0.1:{ws_port}"
            async with open_ocpp(url, cp_id, handlers=chargers[cp_id].handlers()) as conn:
                await boot(conn)
                booted += 1
                if booted == count:
                    connected.set()
                await done.wait()

        async with trio.open_nursery() as nursery:
            for cp_id in chargers:
                nursery.start_soon(run, cp_id)
            with trio.fail_after(30):
                await connected.wait()
            nodes = {n for n, up in holders(pg_url).values() if up}
            assert nodes == {"w-0", "w-1"}  # both workers took chargers
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}") as client:
                for cp_id in chargers:  # each request lands on either worker
                    r = await client.post(f"/commands/reset/{cp_id}", json={"type": "Soft"})
                    assert r.status_code == 200, r.text
                with trio.fail_after(10):  # and either worker sees the whole fleet
                    while True:
                        views = [(await client.get("/status")).json() for _ in range(6)]
                        if all(v["total_connected"] == count for v in views):
                            break
                        await trio.sleep(0.3)  # wall: the workers are other processes, polled
            assert all(c.received == [call.Reset("Soft")] for c in chargers.values())
            done.set()
    finally:
        assert await stop(proc) == 0
    with psycopg.connect(pg_url) as db:  # both workers left the cluster cleanly
        assert db.execute("SELECT count(*) FROM nodes").fetchone() == (0,)
