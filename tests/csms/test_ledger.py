"""The ledger: one event, one planned change naming every row it touches, written in one
database transaction.

A StartTransaction that uses a reservation and binds the TxProfile its
RemoteStartTransaction carried is one store write (the transaction row, the reservation
Used, the profile bound, and the call and answer in the message log), and touches only
that connector's records: no other charger's profile is read or written (no fleet sweep).
The StopTransaction that ends it ends the profile in its own one write.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import trio
from ocpp.v16 import call, call_result, datatypes, enums

from libv4e import open_ocpp
from libv4e.csms import SqliteStore
from libv4e_apps.csms.backend import BackendConfig, serve_backend
from tests.support import boot, wait_for, ws_url

EVENT_WRITES = ("write_transactions", "save_reservation", "save_charging_profiles")


class Counting(SqliteStore):
    """Records each write of transaction or operator-book rows, with what it wrote."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.writes: list[tuple[str, dict[str, Any]]] = []

    async def write_transactions(self, new, changed, **rows):
        self.writes.append(("write_transactions", {"new": new, "changed": changed, **rows}))
        return await super().write_transactions(new, changed, **rows)

    async def save_reservation(self, reservation):
        self.writes.append(("save_reservation", {"reservation": reservation}))
        return await super().save_reservation(reservation)

    async def save_charging_profiles(self, records):
        self.writes.append(("save_charging_profiles", {"profiles": list(records)}))
        return await super().save_charging_profiles(records)


def tx_profile(profile_id: int) -> datatypes.ChargingProfile:
    return datatypes.ChargingProfile(
        charging_profile_id=profile_id,
        stack_level=1,
        charging_profile_purpose=enums.ChargingProfilePurposeType.tx_profile,
        charging_profile_kind=enums.ChargingProfileKindType.relative,
        charging_schedule=datatypes.ChargingSchedule(
            charging_rate_unit=enums.ChargingRateUnitType.watts,
            charging_schedule_period=[datatypes.ChargingSchedulePeriod(0, 7400.0)],
        ),
    )


class Accepting:
    """A charger's handlers that accept the commands of this test."""

    async def on_reserve_now(self, req: call.ReserveNow) -> call_result.ReserveNow:
        return call_result.ReserveNow(enums.ReservationStatus.accepted)

    async def on_remote_start_transaction(self, req):
        return call_result.RemoteStartTransaction(enums.RemoteStartStopStatus.accepted)


async def test_a_start_with_its_reservation_and_profile_is_one_write_for_one_connector(tmp_path):
    from libv4e.transport import handlers_from

    store = Counting(str(tmp_path / "v4e.db"))
    config = BackendConfig(host="127.0.0.1", ws_port=0, api_port=0, db_path=":memory:")
    async with trio.open_nursery() as nursery:
        backend = await nursery.start(
            lambda task_status: serve_backend(config, store=store, task_status=task_status)
        )
        csms = backend.csms
        handlers = handlers_from(Accepting())
        async with (
            open_ocpp(ws_url(backend), "LEDGER1", handlers=handlers) as one,
            open_ocpp(ws_url(backend), "LEDGER2", handlers=handlers) as other,
        ):
            await boot(one, connectors=2)
            await boot(other, connectors=1)
            expiry = (csms.clock() + dt.timedelta(hours=1)).isoformat()
            reserved = await csms.operate("LEDGER1", call.ReserveNow(1, expiry, "CARD1", 41))
            assert reserved.answer().status == "Accepted"
            for cp_id, profile_id in (("LEDGER1", 7), ("LEDGER2", 8)):  # a TxProfile each
                started = await csms.operate(
                    cp_id, call.RemoteStartTransaction("CARD1", 1, tx_profile(profile_id))
                )
                assert started.answer().status == "Accepted"
            store.writes.clear()

            answer = await one.call(
                call.StartTransaction(1, "CARD1", 1000, csms.clock().isoformat(), 41), timeout=5
            )
            start_writes = list(store.writes)
            store.writes.clear()
            await one.call(
                call.StopTransaction(2500, csms.clock().isoformat(), answer.transaction_id),
                timeout=5,
            )
            stop_writes = list(store.writes)
        nursery.cancel_scope.cancel()

    assert [name for name, _ in start_writes] == ["write_transactions"]  # one DB transaction
    written = start_writes[0][1]
    (tx,) = written["new"]
    assert tx.transaction_id == answer.transaction_id and tx.reservation_id == 41
    (used,) = written["reservations"]
    assert (used.reservation_id, str(used.status), used.transaction_id) == (
        41,
        "Used",
        tx.transaction_id,
    )
    (bound,) = written["profiles"]  # LEDGER1's profile only: LEDGER2's is not touched
    assert (bound.cp_id, bound.transaction_id) == ("LEDGER1", tx.transaction_id)
    # the call and its answer (after the charger's messages the batched log still held)
    assert [m.action for m in written["log"]][-2:] == ["StartTransaction", "StartTransaction"]
    # in memory once written: the books, the connector link
    assert str(csms.reservations.get(41).status) == "Used"
    assert csms.registry.get("LEDGER1").connectors[1].transaction_id is None  # stopped since
    other_profile = next(r for r in csms.profiles if r.cp_id == "LEDGER2")
    assert other_profile.transaction_id is None and str(other_profile.status) == "Installed"

    assert [name for name, _ in stop_writes] == ["write_transactions"]
    (ended,) = stop_writes[0][1]["profiles"]
    assert (ended.record_id, str(ended.status)) == (bound.record_id, "Ended")
    assert str(next(r for r in csms.profiles if r.record_id == bound.record_id).status) == "Ended"


class Gated(SqliteStore):
    """Transaction writes wait for ``release`` (a slow database, held as long as the test
    needs); ``writing`` is set when one is under way."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.writing, self.release = trio.Event(), trio.Event()
        self.release.set()

    def hold(self) -> None:
        self.writing, self.release = trio.Event(), trio.Event()

    async def write_transactions(self, new, changed, **rows):
        self.writing.set()
        await self.release.wait()
        return await super().write_transactions(new, changed, **rows)


class AcceptingClears(Accepting):
    async def on_set_charging_profile(self, req):
        return call_result.SetChargingProfile(enums.ChargingProfileStatus.accepted)

    async def on_clear_charging_profile(self, req):
        return call_result.ClearChargingProfile(enums.ClearChargingProfileStatus.accepted)

    async def on_cancel_reservation(self, req):
        return call_result.CancelReservation(enums.CancelReservationStatus.accepted)


async def test_an_answer_recorded_while_a_start_is_written_is_not_undone_by_it(tmp_path):
    """A ClearChargingProfile (and a CancelReservation) answered while the StartTransaction
    that would bind the profile (use the reservation) is being written: the start's change
    was planned from the record as it was, and must not bring it back when applied. The
    operator records answers under the charger's bookkeeping lock: Cleared (Cancelled) it
    stays, in memory and in the store."""
    from libv4e.transport import handlers_from

    store = Gated(str(tmp_path / "v4e.db"))
    config = BackendConfig(host="127.0.0.1", ws_port=0, api_port=0, db_path=":memory:")
    async with trio.open_nursery() as nursery:
        backend = await nursery.start(
            lambda task_status: serve_backend(config, store=store, task_status=task_status)
        )
        csms = backend.csms
        lock = csms.bookkeeper.lock("RACE1")

        async def answered_during_a_start(start, command):
            """``command``'s answer arrives while ``start`` is being written: it waits
            for the charger's lock, which the start holds until its write is done."""
            store.hold()
            outcome = []
            async with trio.open_nursery() as racing:
                racing.start_soon(start)
                await store.writing.wait()  # planned, and being written
                racing.start_soon(lambda: _append(outcome, csms.operate("RACE1", command)))

                async def parked():
                    return lock.statistics().tasks_waiting == 1

                await wait_for(parked)  # the answer is in, waiting for its turn
                store.release.set()
            return outcome[0]

        async with open_ocpp(
            ws_url(backend), "RACE1", handlers=handlers_from(AcceptingClears())
        ) as charger:
            await boot(charger, connectors=2)
            expiry = (csms.clock() + dt.timedelta(hours=1)).isoformat()
            assert (await csms.operate("RACE1", call.ReserveNow(2, expiry, "C", 5))).answer()
            profile = call.SetChargingProfile(1, tx_profile(7))
            assert (await csms.operate("RACE1", profile)).answer().status == "Accepted"
            now = csms.clock().isoformat()
            cleared = await answered_during_a_start(
                lambda: charger.call(call.StartTransaction(1, "C", 0, now), timeout=5),
                call.ClearChargingProfile(id=7),
            )
            cancelled = await answered_during_a_start(
                lambda: charger.call(call.StartTransaction(2, "C", 0, now, 5), timeout=5),
                call.CancelReservation(5),
            )
            stored_profiles = await store.charging_profiles(
                cp_id="RACE1", status=None, limit=5, offset=0
            )
            stored_reservation = await store.reservation(5)
        nursery.cancel_scope.cancel()
    assert cleared.answer().status == "Accepted" and cancelled.answer().status == "Accepted"
    (record,) = [r for r in csms.profiles if r.cp_id == "RACE1"]
    assert str(record.status) == "Cleared"
    assert [str(r.status) for r in stored_profiles] == ["Cleared"]
    # the reservation was used by the start (booked first); the cancel came after it and
    # found it used: nothing to cancel
    assert str(csms.reservations.get(5).status) == str(stored_reservation.status) == "Used"


async def test_a_txprofile_answered_after_its_session_started_is_bound_to_it(tmp_path):
    """A charger may start the session a RemoteStartTransaction asked for before the CSMS
    has recorded its answer (here: before it answers at all). The StartTransaction found
    the TxProfile still Pending; once the answer is recorded, the profile is bound to the
    session that runs on its connector, and ends with it."""
    from libv4e.transport import handlers_from

    store = Counting(str(tmp_path / "v4e.db"))
    config = BackendConfig(host="127.0.0.1", ws_port=0, api_port=0, db_path=":memory:")
    started: list[int] = []

    class StartsFirst:
        conn: Any = None

        async def on_remote_start_transaction(self, req):
            now = dt.datetime.now(dt.UTC).isoformat()
            answer = await self.conn.call(
                call.StartTransaction(req.connector_id, req.id_tag, 0, now), timeout=5
            )
            started.append(answer.transaction_id)
            return call_result.RemoteStartTransaction(enums.RemoteStartStopStatus.accepted)

    charger_side = StartsFirst()
    async with trio.open_nursery() as nursery:
        backend = await nursery.start(
            lambda task_status: serve_backend(config, store=store, task_status=task_status)
        )
        csms = backend.csms
        async with open_ocpp(
            ws_url(backend), "EARLY1", handlers=handlers_from(charger_side)
        ) as conn:
            charger_side.conn = conn
            await boot(conn)
            outcome = await csms.operate(
                "EARLY1", call.RemoteStartTransaction("CARD1", 1, tx_profile(9))
            )
            assert outcome.answer().status == "Accepted"
            (record,) = [r for r in csms.profiles if r.cp_id == "EARLY1"]
            assert (str(record.status), record.transaction_id) == ("Installed", started[0])
            (stored,) = await store.charging_profiles(
                cp_id="EARLY1", status=None, limit=5, offset=0
            )
            assert stored.transaction_id == started[0]
            now = csms.clock().isoformat()
            await conn.call(call.StopTransaction(10, now, started[0]), timeout=5)
            assert str(record.status) == "Ended"
        nursery.cancel_scope.cancel()


async def test_late_meter_values_of_a_finished_session_are_stored_once_and_not_kept(tmp_path):
    """MeterValues for a session that has already stopped (a charger emptying its queue),
    sent twice: stored once (the window is read back from the store), and the ledger keeps
    no window for the finished session afterwards."""
    store = Counting(str(tmp_path / "v4e.db"))
    config = BackendConfig(host="127.0.0.1", ws_port=0, api_port=0, db_path=":memory:")
    async with trio.open_nursery() as nursery:
        backend = await nursery.start(
            lambda task_status: serve_backend(config, store=store, task_status=task_status)
        )
        csms = backend.csms
        async with open_ocpp(ws_url(backend), "LATE1") as conn:
            await boot(conn)
            now = csms.clock().isoformat()
            tx = (await conn.call(call.StartTransaction(1, "C", 0, now), timeout=5)).transaction_id
            await conn.call(call.StopTransaction(500, now, tx), timeout=5)
            value = datatypes.MeterValue(
                now, [datatypes.SampledValue("400", measurand="Energy.Active.Import.Register")]
            )
            for _ in range(2):  # the retry of a lost answer
                await conn.call(call.MeterValues(1, [value], tx), timeout=5)
            assert csms.ledger.meter_seen.get(tx) is None
            stored = await store.meter_values(tx, last=10)
        nursery.cancel_scope.cancel()
    assert len(stored) == 1


async def _append(into: list[Any], work: Any) -> None:
    into.append(await work)
