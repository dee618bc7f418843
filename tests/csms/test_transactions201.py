"""OCPP 2.0.1 sessions are billing records too: the invariants of the 1.6 ones, checked
over real sockets with stations we did not write (raw `websockets` frames in another
process, tests/interop/raw_fleet201.py), under concurrency, resent events and a kill -9
of the CSMS, on SQLite and PostgreSQL.

- one row per (station, its transaction id); CSMS numbers distinct;
- every event resent after a lost answer is recognised (nothing written twice);
- each row carries its station's own values (start and stop registers, id token);
- nothing lost across kill -9 and restart: every session a station ran has its row.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import trio

from tests.support import INTEROP, ROOT, all_rows, read_until, running_backend, start, stop, ws_url
from tests.support import run_fleet as fleet

pytest.importorskip("websockets")


async def run_fleet(url: str, prefix: str, count: int, *args: str, timeout: float = 300):
    """Run the raw 2.0.1 fleet to completion; its JSON events."""
    return await fleet("raw_fleet201.py", url, prefix, count, *args, timeout=timeout)


def check_rows(rows, unmatched, events) -> None:
    started = [e for e in events if e["event"] == "started"]
    stopped = {e["tid"]: e for e in events if e["event"] == "stopped"}
    by_session = {(t.cp_id, t.charger_transaction_id): t for t in rows}
    assert len(by_session) == len(rows), "two rows for one session"
    assert len({t.transaction_id for t in rows}) == len(rows)
    assert len(rows) == len(started), "a session without its row, or a row without a session"
    for e in started:
        row = by_session.get((e["cp"], e["tid"]))
        assert row is not None, f"no row for {e['tid']} of {e['cp']}"
        index = int(e["cp"][-4:])
        assert (row.connector_id, row.id_tag, row.meter_start) == (
            1,
            f"TAG{index}",
            e["meter_start"],
        )
        assert not row.active, "every session ended"
        assert row.meter_stop == stopped[e["tid"]]["meter_stop"], "each with its own stop"
        assert row.seq_no == 2
        # what each event told of the session, kept however often it was resent
        assert (row.id_token_type, row.started_by, row.ended_by) == (
            "ISO14443",
            "Authorized",
            "StopAuthorized",
        )
        assert row.flags == [], row.flags
    assert unmatched == []


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "v4e.db")
    return request.getfixturevalue("pg_url")


@pytest.mark.slow
async def test_300_stations_starting_together_and_resending_get_one_row_each(database):
    async with running_backend(database, transaction_id_block=7) as backend:
        events = await run_fleet(ws_url(backend), "S", 300, "--together", "--retry")
        await backend.csms.flush_log()
    assert all(e["status"] == "Accepted" for e in events if e["event"] == "started")
    rows, unmatched = await all_rows(database)
    check_rows(rows, unmatched, events)


@pytest.mark.slow
def test_kill_9_mid_traffic_loses_no_201_session(tmp_path, database):
    """A real `v4e csms` process is killed (SIGKILL) while 30 independent 2.0.1 stations
    run sessions; restarted on the same database, the stations resend what was not
    answered. Every session has exactly one row with its own values."""
    args = ["csms", "--host", "127.0.0.1", "--api-port", "0", "--db", database]
    csms = start(*args, "--ws-port", "0", cwd=ROOT)
    fleet = None
    errors = open(tmp_path / "fleet.err", "w+")  # noqa: SIM115
    seen: list[dict] = []
    try:
        match, _ = read_until(csms, r"ws://\S+:(\d+)")
        port = match.group(1)
        fleet = subprocess.Popen(
            [
                sys.executable,
                str(INTEROP / "raw_fleet201.py"),
                f"ws://127.0.0.1:{port}",
                "K",
                "30",
                "--rounds",
                "10",
                "--pause",
                "0.05",
            ],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )

        def read_event():
            line = fleet.stdout.readline()
            if line:
                seen.append(json.loads(line))
            return line

        while len([e for e in seen if e["event"] == "started"]) < 100:
            assert read_event(), (tmp_path / "fleet.err").read_text()[-2000:]
        os.kill(csms.pid, signal.SIGKILL)
        csms.wait(10)
        csms.stdout.close()
        csms = start(*args, "--ws-port", port, cwd=ROOT)
        read_until(csms, r"ws://\S+:(\d+)")
        while read_event():
            pass
        assert fleet.wait(60) == 0, (tmp_path / "fleet.err").read_text()[-2000:]
    finally:
        stop(csms, fleet, timeout=10)
        errors.close()
    assert len([e for e in seen if e["event"] == "started"]) == 30 * 10
    assert any(e["event"] == "resend" for e in seen), "the kill happened mid-traffic"
    rows, unmatched = trio.run(all_rows, database)
    check_rows(rows, unmatched, seen)
