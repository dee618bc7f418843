"""Transaction ids stop at 2^31−1, the largest a 1.6 message can carry: past it the CSMS
handed out ids its own bounds refuse, so those sessions could never be stopped."""

from __future__ import annotations

import json
import sqlite3

import pytest
from trio_websocket import open_websocket_url

from libv4e import SqliteStore
from libv4e.csms import PostgresStore
from tests.support import api, running_backend, ws_url

NOW = "2024-05-01T12:00:00Z"
MAX = 2**31 - 1


async def call(ws, uid, action, payload):
    await ws.send_message(json.dumps([2, uid, action, payload]))
    while True:
        frame = json.loads(await ws.get_message())
        if frame[1] == uid:
            return frame


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_ids_stop_at_the_32_bit_limit_and_every_given_id_can_be_stopped(
    tmp_path, request, database
):
    if database == "sqlite":
        db = str(tmp_path / "v4e.db")
        store = SqliteStore(db)
        await store.open()
        await store.close()
        with sqlite3.connect(db) as raw:  # as if 2^31 − 3 ids had been handed out already
            raw.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('tx_id_high', ?)",
                (str(MAX - 2),),
            )
    else:  # the cluster's store: the ids come from a sequence shared by every node
        import psycopg

        db = request.getfixturevalue("pg_url")
        store = PostgresStore(db)
        await store.open()
        await store.close()
        with psycopg.connect(db, autocommit=True) as raw:
            raw.execute("SELECT setval('transaction_ids', %s)", (MAX - 2,))
    async with running_backend(db, transaction_id_block=32) as backend:
        async with open_websocket_url(f"{ws_url(backend)}/CAP", subprotocols=["ocpp1.6"]) as ws:
            boot = {"chargePointVendor": "V", "chargePointModel": "M"}
            assert (await call(ws, "b", "BootNotification", boot))[0] == 3
            given, refused = [], []
            for connector in (1, 2, 3):
                start = {"connectorId": connector, "idTag": "T", "meterStart": 0, "timestamp": NOW}
                frame = await call(ws, f"s{connector}", "StartTransaction", start)
                if frame[0] == 3:
                    given.append(frame[2]["transactionId"])
                else:
                    refused.append(frame[2])
            assert given == [MAX - 1, MAX], "the last two ids, then no more"
            assert refused == ["InternalError"], "no id past 2^31 − 1: the charger retries"
            for tx in given:
                stop = {"transactionId": tx, "meterStop": 10, "timestamp": NOW}
                assert await call(ws, f"e{tx}", "StopTransaction", stop) == [3, f"e{tx}", {}]
        async with api(backend) as client:
            for tx in given:
                row = (await client.get(f"/transactions/{tx}")).json()
                assert not row["active"] and row["meter_stop"] == 10
        assert backend.csms.transactions.get(MAX + 1) is None
