"""A transaction message's log rows are written with its change: after a kill -9
of a real ``v4e csms`` process, every StartTransaction / StopTransaction whose transaction
row is in the database also has its request and its answer in the message log — on SQLite
and on PostgreSQL — and the batched log writer does not write them a second time."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from libv4e import SqliteStore, StoreDataError, StoreError
from tests.support import api, running_backend, start_cli, wait_for, ws_url

NOW = "2024-05-01T12:00:00Z"
BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}
CHARGERS = 24
ROUNDS = 2


async def _call(ws: Any, uid: str, action: str, payload: dict[str, Any]) -> Any:
    await ws.send_message(json.dumps([2, uid, action, payload]))
    while True:
        frame = json.loads(await ws.get_message())
        if frame[0] in (3, 4) and frame[1] == uid:
            return frame


async def _fleet(proc: Any, ws_port: int, calls: dict[str, tuple[str, str, dict]], *, boot: bool):
    """Each charger of ``calls`` connects (and boots), then all send their call at once;
    the CSMS is killed (SIGKILL) as soon as half of them are answered. Returns the answers
    received before the kill, by charger."""
    answers: dict[str, Any] = {}
    ready = 0
    all_ready = trio.Event()
    kill_after = len(calls) // 2

    async def charger(cp_id: str, uid: str, action: str, payload: dict) -> None:
        nonlocal ready
        try:
            async with open_websocket_url(
                f"ws://127.0.0.1:{ws_port}/{cp_id}", subprotocols=["ocpp1.6"]
            ) as ws:
                if boot:
                    frame = await _call(ws, f"b-{cp_id}", "BootNotification", BOOT)
                    assert frame[2]["status"] == "Accepted", frame
                ready += 1
                if ready == len(calls):
                    all_ready.set()
                await all_ready.wait()
                frame = await _call(ws, uid, action, payload)
                assert frame[0] == 3, frame
                answers[cp_id] = frame[2]
                if len(answers) >= kill_after and proc.returncode is None:
                    proc.kill()  # SIGKILL at once: no goodbye, no flush
                await trio.sleep_forever()
        except ConnectionClosed:
            return

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for cp_id, (uid, action, payload) in calls.items():
                nursery.start_soon(charger, cp_id, uid, action, payload)
            await proc.wait()
            nursery.cancel_scope.cancel()
    assert len(answers) >= kill_after
    return answers


async def _checked(open_store):
    """(starts, stops) logged, after checking the log against the rows (:func:`_check_log`)."""
    store = await open_store()
    try:
        return await _check_log(store)
    finally:
        await store.close()


async def _check_log(store: Any) -> tuple[int, int]:
    """Every transaction row has its StartTransaction request and answer in the log, and
    every row a charger stopped its StopTransaction request and answer; returns how many
    starts and stops were checked."""
    rows = await store.transactions(cp_id=None, active=None, limit=10**6, offset=0)
    starts = stops = 0
    for tx in rows:
        log = await store.messages(tx.cp_id, limit=10_000, offset=0)
        by_id = {(m["direction"], m["message_type"], m["unique_id"]): m for m in log}
        answers = [
            m
            for m in log
            if m["action"] == "StartTransaction"
            and (m["direction"], m["message_type"]) == ("out", 3)
            and m["payload"].get("transactionId") == tx.transaction_id
        ]
        assert answers, f"transaction {tx.transaction_id} of {tx.cp_id}: no answer logged"
        request = by_id.get(("in", 2, answers[0]["unique_id"]))
        assert request is not None, f"{tx.cp_id}: StartTransaction request not logged"
        assert request["payload"]["meterStart"] == tx.meter_start
        starts += 1
        if tx.stopped_at is not None and tx.reconciled is None:
            requests = [
                m
                for m in log
                if (m["direction"], m["message_type"], m["action"]) == ("in", 2, "StopTransaction")
                and m["payload"]["transactionId"] == tx.transaction_id
            ]
            assert requests, f"transaction {tx.transaction_id}: StopTransaction not logged"
            answer = by_id.get(("out", 3, requests[0]["unique_id"]))
            assert answer is not None, f"transaction {tx.transaction_id}: stop answer not logged"
            assert answer["action"] == "StopTransaction"
            stops += 1
        # written with the change and not a second time by the batched writer
        counts = Counter((m["direction"], m["message_type"], m["unique_id"]) for m in log)
        assert max(counts.values()) == 1, counts
    return starts, stops


async def _kill_9_rounds(db: str, open_store: Any) -> None:
    checked_starts = checked_stops = 0
    for rnd in range(ROUNDS):
        cps = [f"K{rnd}-{n:02d}" for n in range(CHARGERS)]
        start = {"connectorId": 1, "idTag": "TAG", "timestamp": NOW}
        proc, ws_port, _ = await start_cli(db)
        calls = {
            cp: (f"s-{cp}", "StartTransaction", {**start, "meterStart": 1000 + n})
            for n, cp in enumerate(cps)
        }
        started = await _fleet(proc, ws_port, calls, boot=True)
        starts, _ = await _checked(open_store)
        assert starts >= checked_starts + len(started)
        checked_starts = starts

        proc, ws_port, _ = await start_cli(db)  # the same database, after the kill
        calls = {
            cp: (
                f"t-{cp}",
                "StopTransaction",
                {"transactionId": a["transactionId"], "meterStop": 5000, "timestamp": NOW},
            )
            for cp, a in started.items()
        }
        stopped = await _fleet(proc, ws_port, calls, boot=False)
        starts, stops = await _checked(open_store)
        assert stops >= checked_stops + len(stopped)
        checked_stops = stops


@pytest.mark.slow
async def test_kill_9_keeps_the_log_rows_of_every_stored_start_and_stop_sqlite(tmp_path):
    db = str(tmp_path / "v4e.db")

    async def open_store() -> SqliteStore:
        store = SqliteStore(db)
        await store.open()
        return store

    await _kill_9_rounds(db, open_store)


@pytest.mark.slow
async def test_kill_9_keeps_the_log_rows_of_every_stored_start_and_stop_postgres(pg_url):
    from libv4e.csms._pgstore import PostgresStore

    async def open_store() -> PostgresStore:
        store = PostgresStore(pg_url)
        await store.open()
        return store

    await _kill_9_rounds(pg_url, open_store)


async def _logged_once_in_order(db: str) -> None:
    async with running_backend(db) as backend:
        async with open_websocket_url(f"{ws_url(backend)}/ONCE", subprotocols=["ocpp1.6"]) as ws:
            await _call(ws, "b", "BootNotification", BOOT)
            status = {"connectorId": 1, "errorCode": "NoError", "status": "Preparing"}
            await _call(ws, "p", "StatusNotification", status)
            start = {"connectorId": 1, "idTag": "TAG", "meterStart": 10, "timestamp": NOW}
            tx_id = (await _call(ws, "s", "StartTransaction", start))[2]["transactionId"]
            await _call(ws, "h", "Heartbeat", {})
            stop = {"transactionId": tx_id, "meterStop": 20, "timestamp": NOW}
            await _call(ws, "t", "StopTransaction", stop)
            await _call(ws, "s", "StartTransaction", start)  # a new session, same message id
        await backend.csms.flush_log()
        async with api(backend) as client:
            r = await client.get("/chargers/ONCE/messages", params={"limit": 100})
        assert r.status_code == 200, r.text
        items = r.json()["messages"]
        seen = [(m["direction"], m["message_type"], m["unique_id"]) for m in reversed(items)]
        expected = [
            (d, t, uid)
            for uid in ("b", "p", "s", "h", "t", "s")
            for d, t in (("in", 2), ("out", 3))
        ]
        assert seen == expected


async def test_start_and_stop_are_logged_once_and_in_order_sqlite(tmp_path):
    await _logged_once_in_order(str(tmp_path / "v4e.db"))


@pytest.mark.slow
async def test_start_and_stop_are_logged_once_and_in_order_postgres(pg_url):
    await _logged_once_in_order(pg_url)


class Failing(SqliteStore):
    """Writes of transaction changes fail ``fail_next`` times (StoreError: the database),
    and whenever log rows come with them if ``refuse_logs`` (StoreDataError: the data)."""

    fail_next = 0
    refuse_logs = False
    saw_logs = 0

    async def write_transactions(self, new, changed, *, log=(), **rows):
        if self.fail_next:
            self.fail_next -= 1
            raise StoreError("database is locked")
        if log:
            self.saw_logs += 1
            if self.refuse_logs:
                raise StoreDataError("cannot store this data")
        return await super().write_transactions(new, changed, log=log, **rows)


async def _with_store(store: SqliteStore, body: Any) -> list[tuple[str, int, str]]:
    from libv4e_apps.csms.backend import BackendConfig, serve_backend

    config = BackendConfig(host="127.0.0.1", ws_port=0, api_port=0, db_path=":memory:")
    async with trio.open_nursery() as nursery:
        backend = await nursery.start(
            lambda task_status: serve_backend(config, store=store, task_status=task_status)
        )
        async with open_websocket_url(f"{ws_url(backend)}/FAIL", subprotocols=["ocpp1.6"]) as ws:
            await _call(ws, "b", "BootNotification", BOOT)
            await body(ws)
        await backend.csms.flush_log()
        rows = await store.messages("FAIL", limit=100, offset=0)
        nursery.cancel_scope.cancel()
    return [(m["direction"], m["message_type"], m["unique_id"]) for m in reversed(rows)]


START = {"connectorId": 1, "idTag": "TAG", "meterStart": 10, "timestamp": NOW}


async def test_a_failed_change_write_leaves_its_messages_to_the_batched_log(tmp_path):
    store = Failing(str(tmp_path / "v4e.db"))

    async def body(ws: Any) -> None:
        store.fail_next = 1
        assert (await _call(ws, "s1", "StartTransaction", START))[:3] == [4, "s1", "InternalError"]
        assert (await _call(ws, "s2", "StartTransaction", START))[0] == 3  # the retry

    seen = await _with_store(store, body)
    assert store.saw_logs == 1  # the retry's write carried the log rows
    assert seen == [
        ("in", 2, "b"),
        ("out", 3, "b"),
        ("in", 2, "s1"),
        ("out", 4, "s1"),
        ("in", 2, "s2"),
        ("out", 3, "s2"),
    ]


async def test_a_log_row_the_store_refuses_does_not_fail_the_change(tmp_path):
    store = Failing(str(tmp_path / "v4e.db"))
    store.refuse_logs = True

    async def body(ws: Any) -> None:
        answer = await _call(ws, "s", "StartTransaction", START)
        assert answer[0] == 3 and answer[2]["transactionId"] >= 1

    seen = await _with_store(store, body)
    assert store.saw_logs == 1
    await store.open()
    try:
        rows = await store.transactions(cp_id="FAIL", active=True, limit=9, offset=0)
    finally:
        await store.close()
    assert len(rows) == 1  # the change was written without the log rows...
    assert seen == [
        ("in", 2, "b"),
        ("out", 3, "b"),
        ("in", 2, "s"),
        ("out", 3, "s"),
    ]  # ...logged later


class Held(SqliteStore):
    """Transaction writes wait for ``release`` (the charger closes its socket meanwhile)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.writing, self.release = trio.Event(), trio.Event()

    async def write_transactions(self, new, changed, *, log=(), **rows):
        self.writing.set()
        await self.release.wait()
        return await super().write_transactions(new, changed, log=log, **rows)


async def test_an_answer_logged_with_its_change_but_never_sent_is_retracted(tmp_path):
    """The answer's row is written with the change, before the frame goes out; when the
    socket is gone by then, the row is deleted: the log shows only what was sent."""
    from libv4e_apps.csms.backend import BackendConfig, serve_backend

    store = Held(str(tmp_path / "v4e.db"))
    config = BackendConfig(host="127.0.0.1", ws_port=0, api_port=0, db_path=":memory:")
    async with trio.open_nursery() as nursery:
        backend = await nursery.start(
            lambda task_status: serve_backend(config, store=store, task_status=task_status)
        )
        csms = backend.csms
        async with open_websocket_url(f"{ws_url(backend)}/GONE", subprotocols=["ocpp1.6"]) as ws:
            await _call(ws, "b", "BootNotification", BOOT)
            await ws.send_message(json.dumps([2, "s", "StartTransaction", START]))
            with trio.fail_after(5):
                await store.writing.wait()
        store.release.set()  # the socket is closed: the answer cannot go out

        async def suspected():  # reply_lost: the handler is done
            return csms.transactions.suspects()

        await wait_for(suspected, timeout=5, interval=0.01)
        await csms.flush_log()
        rows = await store.messages("GONE", limit=100, offset=0)
        txs = await store.transactions(cp_id="GONE", active=None, limit=9, offset=0)
        nursery.cancel_scope.cancel()
    seen = [(m["direction"], m["message_type"], m["unique_id"]) for m in reversed(rows)]
    assert len(txs) == 1  # the change is stored, with its call; the unsent answer is not
    assert seen == [("in", 2, "b"), ("out", 3, "b"), ("in", 2, "s")]


async def _retract_deletes_the_newest_matching_row(store: Any) -> None:
    import datetime as dt

    from libv4e.transport._connection import MessageRecord

    at = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
    answer = MessageRecord("R", "out", 3, "s", "StartTransaction", {"transactionId": 1}, at)
    again = MessageRecord("R", "out", 3, "s", "StartTransaction", {"transactionId": 2}, at)
    other = MessageRecord("R2", "out", 3, "s", "StartTransaction", {"transactionId": 3}, at)
    await store.log_messages([answer, again, other])
    await store.retract_messages([again])
    left = await store.messages(None, limit=9, offset=0)
    assert sorted(m["payload"]["transactionId"] for m in left) == [1, 3]


async def test_retract_messages_sqlite(tmp_path):
    store = SqliteStore(str(tmp_path / "v4e.db"))
    await store.open()
    try:
        await _retract_deletes_the_newest_matching_row(store)
    finally:
        await store.close()


async def test_retract_messages_postgres(pg_url):
    from libv4e.csms._pgstore import PostgresStore

    store = PostgresStore(pg_url)
    await store.open()
    try:
        await _retract_deletes_the_newest_matching_row(store)
    finally:
        await store.close()
