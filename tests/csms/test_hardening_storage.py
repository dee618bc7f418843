"""What a peer can make the CSMS store, and that nothing answered is
lost. Real backends on 127.0.0.1, raw websockets, real SQLite (and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import pytest
import trio
from ocpp.v16 import call
from ocpp.v16.datatypes import MeterValue, SampledValue
from trio_websocket import open_websocket_url

from libv4e import open_ocpp
from libv4e.transport._flow import FlowControl
from tests.support import NOW, boot, running_backend, ws_url

UNLIMITED = FlowControl(backlog=16, rate=None)


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "v4e.db")


def table_counts(path: str) -> dict[str, int]:
    with sqlite3.connect(path) as con:
        tables = [
            r[0]
            for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not r[0].startswith("sqlite_")
        ]
        return {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}


def _frames(i: int) -> list[str]:
    stamp = "2024-05-01T12:00:00Z"
    meter = {"timestamp": stamp, "sampledValue": [{"value": str(i)}]}
    return [
        json.dumps([2, f"m{i}", "MeterValues", {"connectorId": 1, "meterValue": [meter]}]),
        json.dumps(
            [
                2,
                f"mt{i}",
                "MeterValues",
                {"connectorId": 1, "transactionId": i + 1, "meterValue": [meter]},
            ]
        ),
        json.dumps(
            [
                2,
                f"s{i}",
                "StartTransaction",
                {"connectorId": 1, "idTag": "T1", "meterStart": i, "timestamp": stamp},
            ]
        ),
        json.dumps(
            [
                2,
                f"x{i}",
                "StopTransaction",
                {
                    "transactionId": i + 1,
                    "meterStop": i + 10,
                    "timestamp": stamp,
                    "transactionData": [meter],
                },
            ]
        ),
        json.dumps(
            [
                2,
                f"d{i}",
                "SecurityEventNotification",
                {"type": "FirmwareUpdated", "timestamp": stamp},
            ]
        ),
    ]


async def test_a_never_booted_id_can_make_the_csms_store_nothing(
    db, both_transports, autojump_clock
):
    autojump_clock.autojump_threshold = 0.01  # no jump while I/O is in flight
    async with running_backend(db, flow=UNLIMITED, log_flush_interval=0.05) as backend:
        await backend.csms.flush_log()
        before = table_counts(db)
        async with open_websocket_url(ws_url(backend) + "/NOBOOT1", subprotocols=["ocpp1.6"]) as ws:
            answers = []
            for i in range(600):  # 3,000 calls
                for frame in _frames(i):
                    await ws.send_message(frame)
                    with trio.fail_after(5):
                        answers.append(json.loads(await ws.get_message()))
            # what a charger may send before its boot is answered (nothing is stored)
            await ws.send_message('[2,"h","Heartbeat",{}]')
            assert json.loads(await ws.get_message())[0] == 3
        refused = {tuple(a[:1] + a[2:3]) for a in answers}
        assert refused == {(4, "SecurityError")}, refused
        await trio.sleep(0.3)
        await backend.csms.flush_log()
        assert len(backend.csms.transactions) == 0
        after = table_counts(db)
        assert after == before, {t: (before.get(t), n) for t, n in after.items()}
        assert after["messages"] == after["meter_values"] == after["transactions"] == 0
        assert after["unmatched_stops"] == 0

        # and once it boots, the same calls are stored (the gate is the boot, nothing else)
        async with open_websocket_url(ws_url(backend) + "/NOBOOT1", subprotocols=["ocpp1.6"]) as ws:
            await ws.send_message(
                '[2,"b","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]'
            )
            assert json.loads(await ws.get_message())[2]["status"] == "Accepted"
            for frame in _frames(0)[:3]:
                await ws.send_message(frame)
                assert json.loads(await ws.get_message())[0] == 3
        await backend.csms.flush_log()
        after = table_counts(db)
        assert after["transactions"] == 1 and after["meter_values"] == 2
        assert after["messages"] >= 8


# -- meter-value retention ----------------------------------------------------------------


async def _meter_rows(store, where: str) -> int:
    sql = f"SELECT COUNT(*) FROM meter_values WHERE {where}"
    if hasattr(store, "_run"):  # SQLite
        return (await store._run(lambda db: db.execute(sql).fetchone()))[0]
    return (await store.run(lambda db: db.execute(sql).fetchone()))[0]


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "v4e.db")
    return request.getfixturevalue("pg_url")


async def test_meter_values_are_kept_per_transaction_per_charger_and_by_age(any_db):

    async with running_backend(
        any_db,
        flow=UNLIMITED,
        meter_max_per_transaction=10,
        meter_max_untied=5,
        log_prune_interval=3600,
    ) as backend:
        csms = backend.csms
        async with open_ocpp(ws_url(backend), "RET01") as conn:
            await boot(conn)
            started = await conn.call(call.StartTransaction(1, "T1", 0, NOW), timeout=5)
            tx_id = started.transaction_id
            for i in range(30):
                stamp = f"2024-05-01T12:{i:02d}:00Z"
                sample = [MeterValue(stamp, [SampledValue(str(i * 10))])]
                await conn.call(call.MeterValues(1, sample, transaction_id=tx_id), timeout=5)
                await conn.call(call.MeterValues(2, sample), timeout=5)
        store = csms.store
        assert await _meter_rows(store, f"transaction_id = {tx_id}") == 30
        assert await _meter_rows(store, "transaction_id IS NULL") == 30
        assert await csms.prune_meter_values() == 20 + 25
        assert await _meter_rows(store, f"transaction_id = {tx_id}") == 10
        assert await _meter_rows(store, "transaction_id IS NULL") == 5
        kept = await store.meter_values(tx_id)  # the newest ones
        assert [mv["sampledValue"][0]["value"] for mv in kept] == [
            str(i * 10) for i in range(20, 30)
        ]
        # by age: everything stored before the cut-off goes
        assert await csms.prune_meter_values() == 0  # nothing new since
        future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        assert await store.prune_meter_values(older_than=future) == 15
        assert await _meter_rows(store, "true") == 0
