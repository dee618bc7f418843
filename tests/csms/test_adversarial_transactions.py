"""Adversarial checks of the transaction guarantees (docs/reliability.md).

Each test is a way a buggy or hostile charger (raw JSON frames over trio-websocket, not
libv4e's charger), or an unlucky interleaving, breaks one of the documented guarantees.
Each one failed when it was written (an adversarial review) and passes since its fix."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest
import trio
from trio_websocket import open_websocket_url

from libv4e import SqliteStore, StoreError
from libv4e.csms._txbook import FLAG_METER_DECREASED, TransactionBook
from libv4e.sandbox import trio_clock
from tests.support import BOOT, EPOCH, api, booted_ws, raw_call, running_backend, wait_for, ws_url

NOW = "2024-05-01T12:00:00Z"
T0 = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)


def meter(tx_id: int, at: str, value: str) -> dict:
    return {
        "connectorId": 1,
        "transactionId": tx_id,
        "meterValue": [{"timestamp": at, "sampledValue": [{"value": value}]}],
    }


def strict_json(text: str):
    """Parse JSON as a browser or a strict client would: NaN/Infinity are not JSON."""

    def refuse(token):
        raise ValueError(f"{token} is not valid JSON")

    return json.loads(text, parse_constant=refuse)


# -- NaN energy registers ------------------------------------------------------------------


async def test_nan_register_then_a_silent_reboot_does_not_take_the_csms_down(
    tmp_path, autojump_clock
):
    autojump_clock.autojump_threshold = 0.01  # no jump while I/O is in flight
    clock = trio_clock(EPOCH)
    async with running_backend(str(tmp_path / "v4e.db"), clock=clock, reconcile_grace=5) as backend:
        async with booted_ws(f"{ws_url(backend)}/NAN1", subprotocols=["ocpp1.6"]) as ws:
            start = {"connectorId": 1, "idTag": "T", "meterStart": 1000, "timestamp": NOW}
            tx_id = (await raw_call(ws, "a", "StartTransaction", start))[2]["transactionId"]
            await raw_call(ws, "b", "MeterValues", meter(tx_id, "2024-05-01T12:01:00Z", "NaN"))
            await raw_call(ws, "c", "BootNotification", BOOT)  # then silence: doubted

            async def closed():
                return not backend.csms.transactions.get(tx_id).active

            await wait_for(closed, timeout=100, interval=1)
            async with api(backend) as client:
                assert (await client.get("/status")).status_code == 200, "the CSMS still runs"


def test_a_nan_register_does_not_open_the_door_to_a_backwards_meter():
    book = TransactionBook()
    book.add_ids(1, 10)
    change = book.start("CP", 1, "T", 1000, T0)
    book.apply(change)
    tx_id = change.transaction.transaction_id
    book.apply(book.meter("CP", tx_id, 1500.0, T0 + dt.timedelta(minutes=1)))
    book.apply(book.meter("CP", tx_id, math.nan, T0 + dt.timedelta(minutes=2)))
    book.apply(book.meter("CP", tx_id, 10.0, T0 + dt.timedelta(minutes=3)))
    tx = book.get(tx_id)
    assert tx.last_meter_wh is not None and not math.isnan(tx.last_meter_wh)
    assert tx.last_meter_wh >= 1500 or FLAG_METER_DECREASED in tx.flags


async def test_transaction_api_answers_valid_json_after_a_nan_register(tmp_path):
    async with running_backend(str(tmp_path / "v4e.db")) as backend:
        async with booted_ws(f"{ws_url(backend)}/NAN2", subprotocols=["ocpp1.6"]) as ws:
            start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": NOW}
            tx_id = (await raw_call(ws, "a", "StartTransaction", start))[2]["transactionId"]
            await raw_call(ws, "b", "MeterValues", meter(tx_id, "2024-05-01T12:01:00Z", "NaN"))
            async with api(backend) as client:
                for path in (f"/transactions/{tx_id}", "/transactions", "/status"):
                    strict_json((await client.get(path)).text)


# -- the retry index -----------------------------------------------------------------------


async def test_a_second_session_identical_to_a_finished_one_gets_its_own_row(tmp_path):
    db = str(tmp_path / "v4e.db")
    async with running_backend(db) as backend:
        async with booted_ws(f"{ws_url(backend)}/NOCLOCK", subprotocols=["ocpp1.6"]) as ws:
            start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": NOW}
            first = (await raw_call(ws, "s1", "StartTransaction", start))[2]["transactionId"]
            stop = {"transactionId": first, "meterStop": 4000, "timestamp": NOW}
            await raw_call(ws, "e1", "StopTransaction", stop)
            second = (await raw_call(ws, "s2", "StartTransaction", start))[2]["transactionId"]
            stop = {"transactionId": second, "meterStop": 9000, "timestamp": NOW}
            await raw_call(ws, "e2", "StopTransaction", stop)
        rows = await backend.csms.store.transactions(
            cp_id="NOCLOCK", active=None, limit=10, offset=0
        )
        unmatched = await backend.csms.store.unmatched_stops(cp_id="NOCLOCK", limit=10, offset=0)
    assert second != first, "a new session after a stop is not a retry"
    assert sorted(r.meter_stop for r in rows) == [4000, 9000], "each session has its own row"
    assert unmatched == []


# -- failed writes -------------------------------------------------------------------------


async def test_meter_values_retried_after_a_failed_write_are_stored(tmp_path):
    async with running_backend(str(tmp_path / "v4e.db")) as backend:
        store = backend.csms.store
        real = store.save_meter_values
        calls = 0

        async def flaky(*args, **kwargs):
            nonlocal calls
            calls += 1
            if calls == 1:
                raise StoreError("disk full")
            await real(*args, **kwargs)

        store.save_meter_values = flaky
        async with booted_ws(f"{ws_url(backend)}/FLAKY", subprotocols=["ocpp1.6"]) as ws:
            start = {"connectorId": 1, "idTag": "T", "meterStart": 100, "timestamp": NOW}
            tx_id = (await raw_call(ws, "a", "StartTransaction", start))[2]["transactionId"]
            values = meter(tx_id, "2024-05-01T12:05:00Z", "2500")
            first = await raw_call(ws, "m1", "MeterValues", values)
            assert first[0] == 4 and first[2] == "InternalError"
            again = await raw_call(ws, "m2", "MeterValues", values)  # the charger retries
            assert again[0] == 3
        assert backend.csms.transactions.get(tx_id).last_meter_wh == 2500
        stored = await backend.csms.store.meter_values(tx_id)
        assert len(stored) == 1


# -- reconciliation racing with the charger's own messages ---------------------------------


async def _doubted_session(backend, ws, cp_id: str) -> int:
    """A session on ``cp_id`` that the CSMS doubts (the charger rebooted), with 1200 Wh
    acknowledged."""
    start = {"connectorId": 1, "idTag": "T", "meterStart": 1000, "timestamp": NOW}
    tx_id = (await raw_call(ws, "s", "StartTransaction", start))[2]["transactionId"]
    await raw_call(ws, "m", "MeterValues", meter(tx_id, "2024-05-01T12:01:00Z", "1200"))
    await raw_call(ws, "b", "BootNotification", BOOT)
    assert tx_id in backend.csms.transactions.suspects()
    return tx_id


async def test_a_stop_being_written_is_not_overwritten_by_the_reconciliation(
    tmp_path, autojump_clock
):
    autojump_clock.autojump_threshold = 0.05  # no jump while I/O is in flight
    db = str(tmp_path / "v4e.db")
    async with running_backend(db) as backend:
        csms = backend.csms
        async with booted_ws(f"{ws_url(backend)}/RACE1", subprotocols=["ocpp1.6"]) as ws:
            tx_id = await _doubted_session(backend, ws, "RACE1")
            real = csms.store.write_transactions
            written, release = trio.Event(), trio.Event()

            async def slow_return(new, changed, **kw):
                await real(new, changed, **kw)
                if any(t.stop_reason == "Local" for t in changed):
                    written.set()  # committed; the thread's answer is slow to come back
                    await release.wait()

            csms.store.write_transactions = slow_return
            stop = {"transactionId": tx_id, "meterStop": 5000, "timestamp": NOW[:-1] + "5Z"}
            await ws.send_message(json.dumps([2, "stop", "StopTransaction", stop]))
            with trio.fail_after(5):
                await written.wait()
            later = csms.clock() + dt.timedelta(seconds=csms.config.reconcile_grace + 1)
            csms.clock = lambda: later  # the doubted session's grace is over
            async with trio.open_nursery() as nursery:  # the reconciliation runs meanwhile
                nursery.start_soon(csms.bookkeeper.reconcile)
                await trio.sleep(0.2)
                release.set()
            with trio.fail_after(5):
                assert json.loads(await ws.get_message())[:2] == [3, "stop"]
        in_book = csms.transactions.get(tx_id)
        row = await csms.store.transaction(tx_id)
    assert in_book.meter_stop == 5000, "the charger's meterStop is the billing record"
    assert row.meter_stop == 5000, "the charger's meterStop is the billing record"


async def test_a_meter_write_racing_the_reconciliation_leaves_no_reopened_row(
    tmp_path, autojump_clock
):
    autojump_clock.autojump_threshold = 0.05  # no jump while I/O is in flight
    db = str(tmp_path / "v4e.db")
    async with running_backend(db) as backend:
        csms = backend.csms
        async with booted_ws(f"{ws_url(backend)}/RACE2", subprotocols=["ocpp1.6"]) as ws:
            tx_id = await _doubted_session(backend, ws, "RACE2")
            real = csms.store.save_meter_values
            planned, release = trio.Event(), trio.Event()

            async def slow(*args, **kwargs):
                planned.set()  # planned from the open session; the thread is busy
                await release.wait()
                await real(*args, **kwargs)

            csms.store.save_meter_values = slow
            values = meter(tx_id, "2024-05-01T12:02:00Z", "1300")
            await ws.send_message(json.dumps([2, "mv", "MeterValues", values]))
            with trio.fail_after(5):
                await planned.wait()
            later = csms.clock() + dt.timedelta(seconds=csms.config.reconcile_grace + 1)
            csms.clock = lambda: later
            async with trio.open_nursery() as nursery:  # the reconciliation runs meanwhile
                nursery.start_soon(csms.bookkeeper.reconcile)
                await trio.sleep(0.2)
                release.set()
            with trio.fail_after(5):
                answer = json.loads(await ws.get_message())
            believed = csms.transactions.get(tx_id)
    store = SqliteStore(db)  # the CSMS restarts on the same database
    await store.open()
    try:
        active = [t.transaction_id for t in await store.load_transactions() if t.active]
        closed = await store.transactions(cp_id="RACE2", active=False, limit=10, offset=0)
        row = await store.transaction(tx_id)
    finally:
        await store.close()
    # Booked one after the other: the MeterValues (planned first) confirms the doubted
    # session, so the reconciliation, planned afresh after it, leaves it open. Whatever
    # the order, the database says what the CSMS said, and the active column agrees.
    assert row == believed, "the row is what the CSMS believed when it answered"
    assert active == ([tx_id] if believed.active else [])
    assert [r.active for r in closed] == ([] if believed.active else [False])
    assert row.last_meter_wh == 1300
    assert answer[:2] == [3, "mv"], f"the MeterValues was answered {answer}"


async def test_meter_values_queued_behind_the_stop_do_not_bring_the_session_back(
    tmp_path, autojump_clock
):
    autojump_clock.autojump_threshold = 0.05  # no jump while I/O is in flight
    async with running_backend(str(tmp_path / "v4e.db")) as backend:
        csms = backend.csms
        async with booted_ws(f"{ws_url(backend)}/PIPE", subprotocols=["ocpp1.6"]) as ws:
            start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": NOW}
            tx_id = (await raw_call(ws, "s", "StartTransaction", start))[2]["transactionId"]
            stop = {"transactionId": tx_id, "meterStop": 700, "timestamp": NOW[:-1] + "9Z"}
            values = meter(tx_id, "2024-05-01T12:00:08Z", "650")
            async with csms.bookkeeper.lock("PIPE"):  # the charger's lock is busy
                # a charger pipelining its last MeterValues with the StopTransaction
                await ws.send_message(json.dumps([2, "stop", "StopTransaction", stop]))
                await trio.sleep(0.2)
                await ws.send_message(json.dumps([2, "mv", "MeterValues", values]))
                await trio.sleep(0.2)
            with trio.fail_after(5):
                answers = {json.loads(await ws.get_message())[1] for _ in range(2)}
            assert answers == {"stop", "mv"}
            async with api(backend) as client:
                charger = (await client.get("/chargers/PIPE")).json()
        assert not csms.transactions.get(tx_id).active
        (connector,) = [c for c in charger["connectors"] if c["connector_id"] == 1]
        assert connector["transaction_id"] is None, "a stopped session shows on the connector"


# -- absurd numbers --------------------------------------------------------------------------


async def test_an_absurd_meter_stop_does_not_break_the_transaction_list(tmp_path):
    async with running_backend(str(tmp_path / "v4e.db")) as backend:
        async with booted_ws(f"{ws_url(backend)}/HUGE", subprotocols=["ocpp1.6"]) as ws:
            start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": NOW}
            tx_id = (await raw_call(ws, "s", "StartTransaction", start))[2]["transactionId"]
            stop = {"transactionId": tx_id, "meterStop": 10**400, "timestamp": NOW}
            answer = await raw_call(ws, "e", "StopTransaction", stop)
            async with api(backend) as client:
                listing = await client.get("/transactions")
                one = await client.get(f"/transactions/{tx_id}")
        booked = not backend.csms.transactions.get(tx_id).active
    assert listing.status_code == 200 and one.status_code == 200
    assert (answer[0] == 3) == booked, f"answered {answer[:3]} but booked={booked}"


async def test_a_stop_for_an_out_of_range_id_is_refused_with_a_spec_error_and_logged(tmp_path):
    """An id no CSMS can have issued (beyond 32 bits) is a PropertyConstraintViolation
    before any handler (the bounds layer), not an InternalError the charger retries for
    ever; the frame stays in the message log as evidence."""
    async with running_backend(str(tmp_path / "v4e.db")) as backend:
        async with booted_ws(f"{ws_url(backend)}/BIGID", subprotocols=["ocpp1.6"]) as ws:
            stop = {"transactionId": 2**70, "meterStop": 5, "timestamp": NOW}
            answer = await raw_call(ws, "e", "StopTransaction", stop)
            ok = {"transactionId": 12345, "meterStop": 5, "timestamp": NOW}
            assert (await raw_call(ws, "f", "StopTransaction", ok))[0] == 3  # still served
        await backend.csms.flush_log()
        logged = await backend.csms.store.messages("BIGID", limit=9, offset=0)
        unmatched = await backend.csms.store.unmatched_stops(cp_id="BIGID", limit=9, offset=0)
    assert answer[:3] == [4, "e", "PropertyConstraintViolation"]
    assert any(m["unique_id"] == "e" and m["direction"] == "in" for m in logged)
    assert [(u.transaction_id, u.kind) for u in unmatched] == [(12345, "unknown")]


# -- clocks -----------------------------------------------------------------------------------


def _iso(at: dt.datetime) -> str:
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


async def test_a_charger_clock_ahead_of_the_csms_does_not_make_energy_implausible(tmp_path):
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)  # the charger's clock
    async with running_backend(str(tmp_path / "v4e.db")) as backend:
        async with booted_ws(f"{ws_url(backend)}/SKEW", subprotocols=["ocpp1.6"]) as ws:
            start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": _iso(ahead)}
            tx_id = (await raw_call(ws, "s", "StartTransaction", start))[2]["transactionId"]
            sample = _iso(ahead + dt.timedelta(minutes=2))
            await raw_call(ws, "m", "MeterValues", meter(tx_id, sample, "2000"))
        tx = backend.csms.transactions.get(tx_id)
    assert tx.flags == [] and tx.last_meter_wh == 2000


async def test_a_csms_restart_does_not_close_the_sessions_of_chargers_that_did_not_reboot(
    tmp_path,
    autojump_clock,
):
    autojump_clock.autojump_threshold = 0.01  # no jump while I/O is in flight
    db = str(tmp_path / "v4e.db")
    clock = trio_clock(EPOCH)
    async with running_backend(db, clock=clock, reconcile_grace=5) as backend:
        async with booted_ws(f"{ws_url(backend)}/QUIET", subprotocols=["ocpp1.6"]) as ws:
            start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": NOW}
            tx_id = (await raw_call(ws, "s", "StartTransaction", start))[2]["transactionId"]
            await raw_call(
                ws,
                "c",
                "StatusNotification",
                {"connectorId": 1, "errorCode": "NoError", "status": "Charging"},
            )
    async with running_backend(db, clock=clock, reconcile_grace=5) as backend:  # restarted
        async with open_websocket_url(f"{ws_url(backend)}/QUIET", subprotocols=["ocpp1.6"]) as ws:
            for i in range(3):  # the charger only reconnects and keeps its heartbeat
                await raw_call(ws, f"h{i}", "Heartbeat", {})
                await trio.sleep(6)  # past the grace
            tx = backend.csms.transactions.get(tx_id)
    assert tx.active, f"closed by the CSMS: {tx.reconciled}"


# -- simulator power loss ---------------------------------------------------------------------


@pytest.mark.slow
def test_simulator_power_loss_on_a_second_connector_reports_its_acknowledged_energy(tmp_path):
    import signal
    import time

    import httpx

    from tests.support import ROOT, read_until, start, stop

    db = str(tmp_path / "v4e.db")
    csms = start(
        "csms", "--host", "127.0.0.1", "--ws-port", "0", "--api-port", "0", "--db", db, cwd=ROOT
    )
    sim = None
    try:
        ws_match, _ = read_until(csms, r"ws://\S+:(\d+)")
        base = read_until(csms, r"(http://\S+:\d+)")[0].group(1)
        sim_args = [
            *("sim", "--url", f"ws://127.0.0.1:{ws_match.group(1)}", "--id", "PL2"),
            *("--connectors", "2", "--auto-charge", "TAGPL"),
            *("--state-dir", str(tmp_path / "state")),
        ]
        sim = start(*sim_args, cwd=ROOT)

        def until(what, fn, timeout=30):
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                result = fn()
                if result:
                    return result
                time.sleep(0.1)  # wall: the simulator and the CSMS are other processes, polled
            raise AssertionError(what)

        def command(name, body):
            r = httpx.post(f"{base}/commands/{name}/PL2", json=body, timeout=10)
            return r.status_code == 200

        until(
            "configured",
            lambda: command(
                "change_configuration", {"key": "MeterValueSampleInterval", "value": "2"}
            ),
        )
        until("remote start", lambda: command("remote_start", {"id_tag": "T2", "connector_id": 2}))

        def second():
            txs = httpx.get(f"{base}/transactions?cp_id=PL2").json()["transactions"]
            return next((t for t in txs if t["connector_id"] == 2), None)

        first = until("a sample on connector 2", lambda: (second() or {}).get("last_meter_wh"))
        until("the next sample", lambda: second()["last_meter_wh"] != first)  # just acknowledged
        sim.send_signal(signal.SIGKILL)
        sim.wait(10)
        sim.stdout.close()
        acknowledged = second()
        sim = start(*sim_args, cwd=ROOT)
        after = until("a PowerLoss stop", lambda: (t := second()) and not t["active"] and t)
    finally:
        stop(sim, csms, timeout=10)
    assert after["stop_reason"] == "PowerLoss"
    assert after["meter_stop"] >= acknowledged["last_meter_wh"], after
    assert "meter_stop_below_acknowledged" not in after["flags"]


# -- messages for old or impossible sessions -------------------------------------------------


async def test_late_meter_values_of_an_old_session_stay_linked_to_it(tmp_path):
    async with running_backend(str(tmp_path / "v4e.db")) as backend:
        csms = backend.csms
        csms.transactions.keep_finished = 2  # stands for 500 sessions finished since, fleet-wide
        async with booted_ws(f"{ws_url(backend)}/OLD", subprotocols=["ocpp1.6"]) as ws:
            ids = []
            for i in range(4):
                at = f"2024-05-01T12:0{i}:00Z"
                start = {"connectorId": 1, "idTag": "T", "meterStart": i * 100, "timestamp": at}
                tx_id = (await raw_call(ws, f"s{i}", "StartTransaction", start))[2]["transactionId"]
                stop = {"transactionId": tx_id, "meterStop": i * 100 + 50, "timestamp": at}
                await raw_call(ws, f"e{i}", "StopTransaction", stop)
                ids.append(tx_id)
            assert ids[0] not in csms.transactions
            late = meter(ids[0], "2024-05-01T12:00:30Z", "30")  # queued while offline
            assert (await raw_call(ws, "late", "MeterValues", late))[0] == 3
        assert len(await csms.store.meter_values(ids[0])) == 1


async def test_a_start_on_an_impossible_connector_is_not_booked(tmp_path):
    async with running_backend(str(tmp_path / "v4e.db")) as backend:
        async with booted_ws(f"{ws_url(backend)}/BADC", subprotocols=["ocpp1.6"]) as ws:
            answers = []
            for uid, connector in (("zero", 0), ("neg", -3), ("huge", 2**70)):
                start = {"connectorId": connector, "idTag": "T", "meterStart": 0, "timestamp": NOW}
                answers.append(await raw_call(ws, uid, "StartTransaction", start))
        assert backend.csms.transactions.active() == [], [a[:3] for a in answers]
        assert all(a[0] == 4 for a in answers)


async def test_a_truncated_meter_stop_is_not_flagged_as_going_backwards(tmp_path):
    async with running_backend(str(tmp_path / "v4e.db")) as backend:
        async with booted_ws(f"{ws_url(backend)}/KWH", subprotocols=["ocpp1.6"]) as ws:
            start = {"connectorId": 1, "idTag": "T", "meterStart": 10000, "timestamp": NOW}
            tx_id = (await raw_call(ws, "s", "StartTransaction", start))[2]["transactionId"]
            values = meter(tx_id, "2024-05-01T12:10:00Z", "12.3456")
            values["meterValue"][0]["sampledValue"][0]["unit"] = "kWh"
            await raw_call(ws, "m", "MeterValues", values)
            stop = {"transactionId": tx_id, "meterStop": 12345, "timestamp": "2024-05-01T12:10:01Z"}
            await raw_call(ws, "e", "StopTransaction", stop)
        tx = backend.csms.transactions.get(tx_id)
    assert tx.last_meter_wh == pytest.approx(12345.6)
    assert tx.flags == []
