"""A transaction message's log row is written in the same database transaction as the
change it makes (#21): after a kill -9 of a real `v4e csms` process mid-traffic, every
stored transaction has its StartTransaction in the message log, and every stopped one its
StopTransaction (they were missing for the last ~0.2 s of batched log writes). On SQLite
and on PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import trio

from libv4e import SqliteStore
from tests.support import INTEROP, read_until, start, stop

pytestmark = pytest.mark.slow


def _kill_mid_traffic(db: str, tmp_path) -> None:
    csms = start(  # in tmp_path: with a PostgreSQL --db the development CA goes in the cwd
        "csms", "--host", "127.0.0.1", "--api-port", "0", "--db", db, "--ws-port", "0", cwd=tmp_path
    )
    fleet = None
    errors = open(tmp_path / "fleet.err", "w+")  # noqa: SIM115
    try:
        match, _ = read_until(csms, r"ws://\S+:(\d+)")
        fleet = subprocess.Popen(
            [
                sys.executable,
                str(INTEROP / "raw_fleet.py"),
                f"ws://127.0.0.1:{match.group(1)}",
                "L",
                "40",
                "--rounds",
                "20",
                "--pause",
                "0.01",
            ],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        started = 0
        while started < 200:
            line = fleet.stdout.readline()
            assert line, (tmp_path / "fleet.err").read_text()[-2000:]
            started += json.loads(line)["event"] == "started"
        os.kill(csms.pid, signal.SIGKILL)  # mid-traffic: answers just sent, batch unwritten
        csms.wait(10)
    finally:
        stop(csms, fleet, timeout=10)
        errors.close()


async def _check(store) -> int:
    rows = await store.transactions(cp_id=None, active=None, limit=10**6, offset=0)
    log = await store.messages(None, limit=10**7, offset=0)
    starts = {
        (m["cp_id"], m["payload"]["connectorId"], m["payload"]["idTag"], m["payload"]["meterStart"])
        for m in log
        if m["action"] == "StartTransaction" and m["direction"] == "in" and m["message_type"] == 2
    }
    stops = {
        (m["cp_id"], m["payload"]["transactionId"])
        for m in log
        if m["action"] == "StopTransaction" and m["direction"] == "in" and m["message_type"] == 2
    }
    assert rows
    keys = [(m["cp_id"], m["unique_id"], m["direction"], m["message_type"]) for m in log]
    assert len(keys) == len(set(keys)), "a message was logged twice"
    missing = [
        t.transaction_id
        for t in rows
        if (t.cp_id, t.connector_id, t.id_tag, t.meter_start) not in starts
    ]
    assert missing == [], f"{len(missing)} stored transactions have no StartTransaction in the log"
    stopped = [t for t in rows if not t.active and t.reconciled is None]
    unlogged = [t.transaction_id for t in stopped if (t.cp_id, t.transaction_id) not in stops]
    assert unlogged == [], f"{len(unlogged)} stopped transactions have no StopTransaction logged"
    return len(rows)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_after_a_kill_9_every_stored_transaction_has_its_messages(tmp_path, request, backend):
    from libv4e.csms import PostgresStore

    if backend == "sqlite":
        db = str(tmp_path / "v4e.db")
        make = lambda: SqliteStore(db)  # noqa: E731
    else:
        db = request.getfixturevalue("pg_url")
        make = lambda: PostgresStore(db)  # noqa: E731
    _kill_mid_traffic(db, tmp_path)

    async def check() -> int:
        store = make()
        await store.open()
        try:
            return await _check(store)
        finally:
            await store.close()

    assert trio.run(check) >= 200
