"""Transactions are billing records: checked over real sockets with chargers we did not
write (raw `websockets` frames in another process, a raw trio-websocket client), under
concurrency, lost answers, reboots and a kill -9 of the CSMS."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
import trio
from ocpp.v16 import call
from trio_websocket import open_websocket_url

from libv4e import CallTimeoutError
from libv4e.sandbox import trio_clock
from tests.support import (
    EPOCH,
    INTEROP,
    ROOT,
    all_rows,
    api,
    read_until,
    running_backend,
    start,
    stop,
    wait_for,
    ws_url,
)
from tests.support import run_fleet as fleet

pytest.importorskip("websockets")

NOW = "2024-05-01T12:00:00Z"


async def run_fleet(url: str, prefix: str, count: int, *args: str, timeout: float = 240):
    """Run the raw fleet to completion; its JSON events."""
    return await fleet("raw_fleet.py", url, prefix, count, *args, timeout=timeout)


@pytest.mark.slow
async def test_1000_concurrent_starts_by_independent_chargers_get_1000_ids_and_rows(tmp_path):
    db = str(tmp_path / "v4e.db")
    async with running_backend(db, transaction_id_block=7) as backend:
        events = await run_fleet(ws_url(backend), "RAW", 1000, "--together", "--retry")
        await backend.csms.flush_log()
    started = [e for e in events if e["event"] == "started"]
    stopped = {e["cp"]: e for e in events if e["event"] == "stopped"}
    assert len(started) == 1000
    ids = [e["tx"] for e in started]
    assert len(set(ids)) == 1000, "two chargers were given the same transactionId"
    assert all(e["retry_tx"] == e["tx"] for e in started), "a repeated start got a new id"

    rows, unmatched = await all_rows(db)
    assert len(rows) == 1000, "every session has exactly one row"
    by_id = {t.transaction_id: t for t in rows}
    for e in started:
        row = by_id[e["tx"]]
        index = int(e["cp"][3:])
        assert (row.cp_id, row.connector_id, row.id_tag, row.meter_start) == (
            e["cp"],
            1,
            f"TAG{index}",
            e["meter_start"],
        )
        assert not row.active, "every row is closed"
        assert row.meter_stop == stopped[e["cp"]]["meter_stop"], "each with its own meterStop"
        assert row.flags == []
    assert unmatched == []


async def test_stops_that_match_nothing_are_answered_and_kept_as_evidence(tmp_path):
    async with running_backend(str(tmp_path / "v4e.db")) as backend:
        url = ws_url(backend)
        async with open_websocket_url(f"{url}/OWNER", subprotocols=["ocpp1.6"]) as owner:
            boot = {"chargePointVendor": "V", "chargePointModel": "M"}
            await raw_call(owner, "boot0", "BootNotification", boot)  # nothing counts before
            start = {"connectorId": 1, "idTag": "T", "meterStart": 100, "timestamp": NOW}
            await owner.send_message(json.dumps([2, "s1", "StartTransaction", start]))
            tx_id = json.loads(await owner.get_message())[2]["transactionId"]
            async with open_websocket_url(f"{url}/IMPOSTOR", subprotocols=["ocpp1.6"]) as other:
                boot = {"chargePointVendor": "V", "chargePointModel": "M"}
                await raw_call(other, "boot", "BootNotification", boot)
                for uid, tid in (("x1", tx_id), ("x2", 987654)):
                    stop = {"transactionId": tid, "meterStop": 999_999_999, "timestamp": NOW}
                    await other.send_message(json.dumps([2, uid, "StopTransaction", stop]))
                    answer = json.loads(await other.get_message())
                    assert answer == [3, uid, {}], "answered as OCPP 1.6 requires"
            async with api(backend) as client:
                tx = (await client.get(f"/transactions/{tx_id}")).json()
                assert tx["active"] and tx["meter_stop"] is None, "the owner's session is intact"
                listed = (await client.get("/transactions/unmatched_stops")).json()
                kinds = {(s["transaction_id"], s["kind"]) for s in listed["unmatched_stops"]}
                assert kinds == {(tx_id, "foreign"), (987654, "unknown")}
                assert {s["cp_id"] for s in listed["unmatched_stops"]} == {"IMPOSTOR"}
                foreign = next(s for s in listed["unmatched_stops"] if s["kind"] == "foreign")
                assert foreign["owner"] == "OWNER"
                log = (await client.get("/chargers/IMPOSTOR/messages")).json()["messages"]
                assert [m["action"] for m in log if m["direction"] == "in"].count(
                    "StopTransaction"
                ) == 2


async def raw_call(ws, uid: str, action: str, payload: dict) -> dict:
    await ws.send_message(json.dumps([2, uid, action, payload]))
    while True:
        frame = json.loads(await ws.get_message())
        if frame[0] == 3 and frame[1] == uid:
            return frame[2]
        assert not (frame[0] == 4 and frame[1] == uid), f"{action} refused: {frame}"


async def test_reboot_then_available_closes_the_phantom_session_with_a_reason(tmp_path):
    async with running_backend(str(tmp_path / "v4e.db")) as backend:
        url = f"{ws_url(backend)}/CP1"
        async with open_websocket_url(url, subprotocols=["ocpp1.6"]) as ws:
            boot = {"chargePointVendor": "V", "chargePointModel": "M"}
            await raw_call(ws, "boot0", "BootNotification", boot)  # nothing counts before
            start = {"connectorId": 1, "idTag": "T", "meterStart": 100, "timestamp": NOW}
            tx_id = (await raw_call(ws, "a", "StartTransaction", start))["transactionId"]
            start2 = {"connectorId": 2, "idTag": "T", "meterStart": 5, "timestamp": NOW}
            tx2 = (await raw_call(ws, "b", "StartTransaction", start2))["transactionId"]
            boot = {"chargePointVendor": "V", "chargePointModel": "M"}
            await raw_call(ws, "c", "BootNotification", boot)
            for uid, connector, status in (("d", 1, "Available"), ("e", 2, "Charging")):
                note = {"connectorId": connector, "errorCode": "NoError", "status": status}
                await raw_call(ws, uid, "StatusNotification", note)
            async with api(backend) as client:
                closed = (await client.get(f"/transactions/{tx_id}")).json()
                kept = (await client.get(f"/transactions/{tx2}")).json()
                status = (await client.get("/status")).json()
        assert not closed["active"] and "Available" in closed["reconciled"]
        assert closed["meter_stop"] == 100 and closed["stopped_at"]
        assert kept["active"] and kept["reconciled"] is None, "a session that survived stays"
        active = status["charge_points"]["CP1"]["active_transactions"]
        assert [t["transaction_id"] for t in active] == [tx2]


async def test_session_not_confirmed_after_reboot_is_closed_after_the_grace(
    tmp_path, autojump_clock
):
    """On trio's clock: closed once the grace (20 s) has passed since the reboot, not before."""
    autojump_clock.autojump_threshold = 0.005  # no jump while loopback I/O is in flight
    clock = trio_clock(EPOCH)
    async with running_backend(
        str(tmp_path / "v4e.db"), clock=clock, reconcile_grace=20
    ) as backend:
        async with open_websocket_url(f"{ws_url(backend)}/CP1", subprotocols=["ocpp1.6"]) as ws:
            boot = {"chargePointVendor": "V", "chargePointModel": "M"}
            await raw_call(ws, "boot0", "BootNotification", boot)  # nothing counts before
            start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": NOW}
            tx_id = (await raw_call(ws, "a", "StartTransaction", start))["transactionId"]
            boot = {"chargePointVendor": "V", "chargePointModel": "M"}
            await raw_call(ws, "b", "BootNotification", boot)
            rebooted = trio.current_time()
            await wait_for(lambda: _closed(backend, tx_id), timeout=100, interval=1)
            assert 20 <= trio.current_time() - rebooted <= 20 + 5
            assert "rebooted" in backend.csms.transactions.get(tx_id).reconciled


async def _closed(backend, tx_id):
    return not backend.csms.transactions.get(tx_id).active


async def test_a_start_whose_answer_was_lost_gets_its_id_on_retry(tmp_path, autojump_clock):
    autojump_clock.autojump_threshold = 0.005  # no jump while loopback I/O is in flight
    clock = trio_clock(EPOCH)
    async with running_backend(
        str(tmp_path / "v4e.db"), clock=clock, reconcile_grace=20
    ) as backend:
        url = f"{ws_url(backend)}/CP1"
        start = {"connectorId": 1, "idTag": "T", "meterStart": 7, "timestamp": NOW}
        async with open_websocket_url(url, subprotocols=["ocpp1.6"]) as ws:
            boot = {"chargePointVendor": "V", "chargePointModel": "M"}
            await raw_call(ws, "boot0", "BootNotification", boot)  # nothing counts before
            await ws.send_message(json.dumps([2, "lost", "StartTransaction", start]))
            with trio.fail_after(10):  # booked, but we leave before reading the answer
                while not backend.csms.transactions.active():  # noqa: ASYNC110
                    await trio.sleep(0.01)
        (booked,) = backend.csms.transactions.active()
        async with open_websocket_url(url, subprotocols=["ocpp1.6"]) as ws:
            again = await raw_call(ws, "again", "StartTransaction", start)
            assert again["transactionId"] == booked.transaction_id
            await trio.sleep(30)  # past the grace
            assert backend.csms.transactions.get(booked.transaction_id).active, (
                "confirmed by the retry"
            )


async def test_an_answer_after_the_timeout_is_logged_as_late(tmp_path, autojump_clock):
    autojump_clock.autojump_threshold = 0.005  # no jump while loopback I/O is in flight
    async with running_backend(str(tmp_path / "v4e.db")) as backend:
        url = f"{ws_url(backend)}/SLOW"
        async with open_websocket_url(url, subprotocols=["ocpp1.6"]) as ws:
            boot = {"chargePointVendor": "V", "chargePointModel": "M"}
            await raw_call(ws, "b", "BootNotification", boot)
            async with trio.open_nursery() as nursery:

                async def answer_slowly():
                    frame = json.loads(await ws.get_message())
                    await trio.sleep(0.6)
                    await ws.send_message(json.dumps([3, frame[1], {"status": "Accepted"}]))

                nursery.start_soon(answer_slowly)
                with pytest.raises(CallTimeoutError):
                    await backend.csms.send("SLOW", call.Reset("Soft"), timeout=0.2)
            async with api(backend) as client:
                with trio.fail_after(5):
                    while True:
                        log = (await client.get("/chargers/SLOW/messages")).json()["messages"]
                        late = [m for m in log if m["late"]]
                        if late:
                            break
                        await trio.sleep(0.1)
        assert late[0]["action"] == "Reset" and late[0]["message_type"] == 3
        assert late[0]["payload"] == {"status": "Accepted"}
        assert not [m for m in log if m["action"] == "BootNotification" and m["late"]]


async def test_store_failure_leaves_no_half_booked_session(tmp_path):
    """A start whose row could not be written is answered InternalError and leaves the
    book as it was; the charger's retry then gets a fresh id and its own row."""
    async with running_backend(str(tmp_path / "v4e.db")) as backend:
        store = backend.csms.store
        real = store.write_transactions
        calls = 0

        async def flaky(new, changed, **kw):
            nonlocal calls
            calls += 1
            if calls == 1:
                from libv4e import StoreError

                raise StoreError("disk full")
            await real(new, changed, **kw)

        store.write_transactions = flaky
        async with open_websocket_url(f"{ws_url(backend)}/CP1", subprotocols=["ocpp1.6"]) as ws:
            boot = {"chargePointVendor": "V", "chargePointModel": "M"}
            await raw_call(ws, "boot0", "BootNotification", boot)  # nothing counts before
            start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": NOW}
            await ws.send_message(json.dumps([2, "one", "StartTransaction", start]))
            assert json.loads(await ws.get_message())[:3] == [4, "one", "InternalError"]
            assert backend.csms.transactions.active() == []
            tx_id = (await raw_call(ws, "two", "StartTransaction", start))["transactionId"]
        rows = await backend.csms.store.transactions(cp_id="CP1", active=None, limit=9, offset=0)
        assert [r.transaction_id for r in rows] == [tx_id]
        # the refused attempt's message, taken to be written with its change, was put back
        await backend.csms.flush_log()
        logged = await backend.csms.store.messages("CP1", limit=50, offset=0)
        calls = sorted(
            m["unique_id"]
            for m in logged
            if m["action"] == "StartTransaction" and m["direction"] == "in"
        )
        assert calls == ["one", "two"]


@pytest.mark.slow
def test_kill_9_mid_traffic_loses_no_row_and_reuses_no_id(tmp_path):
    """A real `v4e csms` process is killed (SIGKILL) while 40 independent chargers start
    and stop sessions; restarted on the same database, the chargers resend what was not
    answered. Every id a charger was given has its own row; no id is given twice."""
    db = str(tmp_path / "v4e.db")
    args = ["csms", "--host", "127.0.0.1", "--api-port", "0", "--db", db]
    csms = start(*args, "--ws-port", "0", cwd=ROOT)
    fleet = None
    errors = open(tmp_path / "fleet.err", "w+")  # noqa: SIM115
    try:
        match, _ = read_until(csms, r"ws://\S+:(\d+)")
        port = match.group(1)
        fleet = subprocess.Popen(
            [
                sys.executable,
                str(INTEROP / "raw_fleet.py"),
                f"ws://127.0.0.1:{port}",
                "K",
                "40",
                "--rounds",
                "12",
                "--pause",
                "0.05",
            ],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        seen = []

        def read_event():
            line = fleet.stdout.readline()
            if line:
                seen.append(json.loads(line))
            return line

        while len([e for e in seen if e["event"] == "started"]) < 150:
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
    started = [e for e in seen if e["event"] == "started"]
    assert len(started) == 40 * 12
    assert any(e["event"] == "resend" for e in seen), "the kill happened mid-traffic"
    ids = [e["tx"] for e in started]
    assert len(set(ids)) == len(ids), "an id was handed out twice"
    rows, unmatched = trio.run(all_rows, db)
    by_id = {t.transaction_id: t for t in rows}
    for e in started:
        row = by_id.get(e["tx"])
        assert row is not None, f"no row for transaction {e['tx']} given to {e['cp']}"
        assert (row.cp_id, row.meter_start) == (e["cp"], e["meter_start"])
    stops = {e["tx"]: e["meter_stop"] for e in seen if e["event"] == "stopped"}
    assert all(by_id[t].meter_stop == m for t, m in stops.items())
    assert len(rows) == len(started), "a row without a session the charger knows"
    assert unmatched == []


async def test_api_lists_flags_on_implausible_and_backwards_stops(tmp_path):
    async with running_backend(str(tmp_path / "v4e.db"), max_connector_power_w=22_000) as backend:
        async with open_websocket_url(f"{ws_url(backend)}/CP1", subprotocols=["ocpp1.6"]) as ws:
            boot = {"chargePointVendor": "V", "chargePointModel": "M"}
            await raw_call(ws, "boot0", "BootNotification", boot)  # nothing counts before
            ids = []
            for uid, connector in (("a", 1), ("b", 2)):
                start = {
                    "connectorId": connector,
                    "idTag": "T",
                    "meterStart": 1000,
                    "timestamp": NOW,
                }
                ids.append((await raw_call(ws, uid, "StartTransaction", start))["transactionId"])
            meter = {
                "connectorId": 1,
                "transactionId": ids[0],
                "meterValue": [
                    {"timestamp": "2024-05-01T12:10:00Z", "sampledValue": [{"value": "1732"}]}
                ],
            }
            await raw_call(ws, "m", "MeterValues", meter)
            await raw_call(
                ws,
                "s1",
                "StopTransaction",
                {"transactionId": ids[0], "meterStop": 0, "timestamp": "2024-05-01T12:20:00Z"},
            )
            await raw_call(
                ws,
                "s2",
                "StopTransaction",
                {
                    "transactionId": ids[1],
                    "meterStop": 999_999_999,
                    "timestamp": "2024-05-01T12:01:00Z",
                },
            )
        async with api(backend) as client:
            listed = (await client.get("/transactions?cp_id=CP1")).json()["transactions"]
    flags = {t["transaction_id"]: t["flags"] for t in listed}
    assert flags[ids[0]] == ["meter_stop_below_acknowledged"]
    assert flags[ids[1]] == ["implausible_energy"]
    backwards = next(t for t in listed if t["transaction_id"] == ids[0])
    assert backwards["last_meter_wh"] == 1732 and backwards["meter_stop"] == 0


@pytest.mark.slow
def test_simulator_killed_mid_session_reports_its_last_reported_energy(tmp_path):
    """`v4e sim --state-dir`, SIGKILL mid-session, restart: the PowerLoss StopTransaction
    carries the register the CSMS last acknowledged and that sample's time."""
    db = str(tmp_path / "v4e.db")
    csms = start(
        "csms", "--host", "127.0.0.1", "--ws-port", "0", "--api-port", "0", "--db", db, cwd=ROOT
    )
    sim = None
    try:
        ws_match, _ = read_until(csms, r"ws://\S+:(\d+)")
        api_match, _ = read_until(csms, r"(http://\S+:\d+)")
        base = api_match.group(1)
        sim_args = [
            "sim",
            "--url",
            f"ws://127.0.0.1:{ws_match.group(1)}",
            "--id",
            "PL1",
            "--count",
            "1",
            "--auto-charge",
            "TAGPL",
            "--state-dir",
            str(tmp_path / "state"),
        ]
        sim = start(*sim_args, cwd=ROOT)
        end = time.monotonic() + 30
        while time.monotonic() < end:  # sample every second, not every ten
            r = httpx.post(
                f"{base}/commands/change_configuration/PL1",
                json={"key": "MeterValueSampleInterval", "value": "1"},
            )
            if r.status_code == 200:
                break
            time.sleep(0.3)  # wall: the CSMS and the simulator are other processes, polled
        end = time.monotonic() + 40
        acknowledged = None
        while time.monotonic() < end:
            txs = httpx.get(f"{base}/transactions?cp_id=PL1").json()["transactions"]
            if txs and (txs[0]["last_meter_wh"] or 0) > txs[0]["meter_start"] + 1:
                acknowledged = txs[0]
                break
            time.sleep(0.3)  # wall: the CSMS and the simulator are other processes, polled
        assert acknowledged, "the simulated charger never reported energy"
        time.sleep(1.5)  # wall: a few more samples from the simulator process
        tx_id = acknowledged["transaction_id"]
        before = httpx.get(f"{base}/transactions/{tx_id}").json()
        sim.send_signal(signal.SIGKILL)
        sim.wait(10)
        sim.stdout.close()
        killed_at = time.time()
        time.sleep(1.0)  # wall: the killed simulator process stays away a while
        sim = start(*sim_args, cwd=ROOT)
        end = time.monotonic() + 40
        while time.monotonic() < end:
            after = httpx.get(f"{base}/transactions/{tx_id}").json()
            if not after["active"] and after["stop_reason"] == "PowerLoss":
                break
            time.sleep(0.3)  # wall: the CSMS and the simulator are other processes, polled
        else:
            raise AssertionError(f"no PowerLoss stop: {after}")
    finally:
        stop(sim, csms, timeout=10)
    assert after["meter_stop"] >= before["last_meter_wh"] > after["meter_start"]
    assert "meter_stop_below_acknowledged" not in after["flags"]
    stopped = dt.datetime.fromisoformat(after["stopped_at"]).timestamp()
    assert stopped <= killed_at, "the stop time is the last saved sample, not the restart"
