"""The Store contract: every method of the Store protocol, run against both backends
(SQLite, and PostgreSQL on a throwaway server started by the test session)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libv4e.csms._auth import IdTag
from libv4e.csms._firmware import ChargerFirmware
from libv4e.csms._locallists import ChargerLocalList
from libv4e.csms._pgstore import PostgresStore, store_for
from libv4e.csms._profiles import ChargingProfileRecord
from libv4e.csms._registry import ChargePointState, Transaction
from libv4e.csms._reservations import Reservation
from libv4e.csms._sqlite import SqliteStore
from libv4e.csms._store import StoreDataError, StoreError
from libv4e.csms._txbook import UnmatchedStop
from libv4e.transport._connection import MessageRecord

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_factory(request, tmp_path):
    """A function giving a store object on one database (call it again for a second
    store on the same database, as after a restart)."""
    if request.param == "sqlite":
        path = tmp_path / "v4e.db"
        return lambda: SqliteStore(path)
    url = request.getfixturevalue("pg_url")
    return lambda: PostgresStore(url, pool_size=4)


@pytest.fixture
async def store(store_factory):
    s = store_factory()
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def tx(n: int, cp: str = "CP1", *, stopped: bool = False, connector: int = 1) -> Transaction:
    t = Transaction(
        transaction_id=n,
        cp_id=cp,
        connector_id=connector,
        id_tag="TAG",
        meter_start=100 * n,
        started_at=T0 + dt.timedelta(minutes=n),
    )
    if stopped:
        t.meter_stop = 100 * n + 50
        t.stopped_at = T0 + dt.timedelta(minutes=n, seconds=30)
        t.stop_reason = "Local"
    return t


def charger(cp: str, vendor: str = "V") -> ChargePointState:
    state = ChargePointState(cp, vendor=vendor, model="M", booted_at=T0, connected=True)
    c = state.connector(1)
    c.status = "Charging"
    c.transaction_id = 7
    c.meter.energy_wh = 1234.5
    return state


async def test_chargers_round_trip_and_replace(store, store_factory):
    await store.save_chargers([charger("CP1")])
    await store.save_chargers([charger("CP2"), charger("CP1", vendor="W")])
    loaded = {s.cp_id: s for s in await store.load_chargers()}
    assert set(loaded) == {"CP1", "CP2"}
    assert loaded["CP1"].vendor == "W"  # replaced, not duplicated
    assert loaded["CP2"].connectors[1].meter.energy_wh == 1234.5
    assert loaded["CP2"].connectors[1].transaction_id == 7
    assert loaded["CP2"].booted_at == T0
    assert not any(s.connected for s in loaded.values())  # nothing is connected at start
    await store.save_chargers([])


async def test_transactions_insert_update_query(store):
    await store.write_transactions(
        [tx(n, "CP1" if n % 2 else "CP2", stopped=n <= 2) for n in range(1, 5)], []
    )
    await store.write_transactions([tx(5, "CP1")], [])
    assert await store.last_transaction_id() == 5
    stopped = tx(3, "CP1", stopped=True)
    stopped.flags.append("meter_decreased")
    await store.write_transactions([], [stopped])  # an update of the same row
    assert await store.transaction(3) == stopped
    assert await store.transaction(99) is None
    assert await store.transaction(2**40) is None

    every = await store.transactions(cp_id=None, active=None, limit=100, offset=0)
    assert [t.transaction_id for t in every] == [5, 4, 3, 2, 1]  # newest first, no dupes
    cp1 = await store.transactions(cp_id="CP1", active=None, limit=100, offset=0)
    assert [t.transaction_id for t in cp1] == [5, 3, 1]
    active = await store.transactions(cp_id=None, active=True, limit=100, offset=0)
    assert [t.transaction_id for t in active] == [5, 4]
    done = await store.transactions(cp_id=None, active=False, limit=100, offset=0)
    assert [t.transaction_id for t in done] == [3, 2, 1]
    page = await store.transactions(cp_id=None, active=None, limit=2, offset=1)
    assert [t.transaction_id for t in page] == [4, 3]


async def test_inserts_never_replace_and_updates_need_the_same_charger(store):
    await store.write_transactions([tx(1, "CP1")], [])
    with pytest.raises(StoreError):  # id taken: the whole write fails
        await store.write_transactions([tx(2, "CP1"), tx(1, "CP2")], [])
    with pytest.raises(StoreError):  # not this charger's row
        await store.write_transactions([], [tx(1, "CP2", stopped=True)])
    with pytest.raises(StoreError):  # no such row: nothing is inserted by an update
        await store.write_transactions([tx(3, "CP1")], [tx(9, "CP1", stopped=True)])
    every = await store.transactions(cp_id=None, active=None, limit=10, offset=0)
    assert every == [tx(1, "CP1")]  # nothing of the failed writes landed


async def test_reserved_id_blocks_never_overlap_and_survive_reopen(store, store_factory):
    first = await store.reserve_transaction_ids(10)
    second = await store.reserve_transaction_ids(5)
    assert first >= 1
    assert second >= first + 10
    await store.write_transactions([tx(second + 100)], [])  # a row above the blocks
    third = await store.reserve_transaction_ids(1)
    assert third > second + 100
    await store.close()
    again = store_factory()
    await again.open()
    try:
        assert await again.reserve_transaction_ids(3) > third  # not reused after a restart
    finally:
        await again.close()


async def test_meter_values_update_their_transaction_in_the_same_write(store):
    await store.write_transactions([tx(4)], [])
    acknowledged = tx(4)
    acknowledged.last_meter_wh = 450.0
    await store.save_meter_values("CP1", 1, 4, [{"n": 1}], acknowledged)
    assert (await store.transaction(4)).last_meter_wh == 450.0
    assert await store.meter_values(4) == [{"n": 1}]


async def test_unmatched_stops_newest_first(store):
    stops = [
        UnmatchedStop(cp, n, 100, T0, "Local", None, T0, "unknown")
        for n, cp in enumerate(["CP1", "CP2", "CP1"])
    ]
    for stop in stops:
        await store.add_unmatched_stop(stop)
    assert await store.unmatched_stops(cp_id=None, limit=10, offset=0) == stops[::-1]
    assert await store.unmatched_stops(cp_id="CP1", limit=10, offset=0) == [stops[2], stops[0]]
    assert await store.unmatched_stops(cp_id=None, limit=1, offset=1) == [stops[1]]


async def test_load_transactions_keeps_active_and_recent_finished(store):
    await store.write_transactions([tx(n, stopped=n not in (2, 9)) for n in range(1, 11)], [])
    loaded = await store.load_transactions(finished=3)
    # both active ones (even the old one) and the three newest finished, oldest first
    assert [t.transaction_id for t in loaded] == [2, 7, 8, 9, 10]


async def test_last_transaction_id_survives_reopen(store, store_factory):
    assert await store.last_transaction_id() == 0
    await store.write_transactions([tx(41)], [])
    await store.close()
    again = store_factory()
    await again.open()
    try:
        assert await again.last_transaction_id() == 41
        assert (await again.transaction(41)) == tx(41)
    finally:
        await again.close()


async def test_meter_values_in_arrival_order(store):
    await store.save_meter_values("CP1", 1, 7, [{"n": 1}, {"n": 2}])
    await store.save_meter_values("CP1", 1, None, [{"n": 0}])
    await store.save_meter_values("CP1", 1, 7, [{"n": 3}])
    assert await store.meter_values(7) == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert await store.meter_values(7, last=1) == [{"n": 3}]  # the last message's, in order
    assert await store.meter_values(7, last=2) == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert await store.meter_values(8) == []
    assert await store.meter_values(2**70) == []  # a key no store can hold matches nothing
    assert await store.transaction(2**70) is None
    assert await store.reservation(2**70) is None


async def test_tags_and_list_version(store, store_factory):
    assert await store.load_tags() == ([], 0)
    a = IdTag("A", expiry=T0)
    b = IdTag("B", status="Blocked", parent_id_tag="A")
    await store.save_tag(a, 1)
    await store.save_tag(b, 2)
    await store.save_tag(IdTag("A", status="Expired"), 3)  # replaced
    await store.delete_tag("B", 4)
    await store.delete_tag("nope", 5)
    tags, version = await store.load_tags()
    assert version == 5
    assert tags == [IdTag("A", status="Expired")]


async def test_message_log_filters_pages_and_keeps_payload(store):
    payload = {"b": 1, "a": [1, "x\u0000y", {"z": None}], "é": "ü"}
    records = [
        MessageRecord("CP1", "in", 2, "u1", "Heartbeat", {}, T0),
        MessageRecord("CP1", "out", 3, "u1", None, {"currentTime": "now"}, T0),
        MessageRecord("CP2", "in", 2, "u2", "BootNotification", payload, T0),
        MessageRecord(
            "CP1", "in", 2, "u3", "BootNotification", {}, T0 + dt.timedelta(seconds=1), late=True
        ),
    ]
    await store.log_messages(records[:2])
    await store.log_messages(records[2:])
    await store.log_messages([])
    cp1 = await store.messages("CP1", limit=10, offset=0)
    assert [m["unique_id"] for m in cp1] == ["u3", "u1", "u1"]  # newest first
    assert cp1[1] | {"id": 0} == {
        "id": 0,
        "cp_id": "CP1",
        "at": "2024-05-01T12:00:00.000Z",
        "direction": "out",
        "message_type": 3,
        "unique_id": "u1",
        "action": None,
        "payload": {"currentTime": "now"},
        "late": False,
    }
    assert cp1[0]["late"] is True
    (cp2,) = await store.messages("CP2", limit=10, offset=0)
    assert cp2["payload"] == payload
    assert list(cp2["payload"]) == ["b", "a", "é"]  # key order as received
    boots = await store.messages(None, limit=10, offset=0, action="BootNotification")
    assert [m["cp_id"] for m in boots] == ["CP1", "CP2"]
    assert [m["unique_id"] for m in await store.messages(None, limit=2, offset=1)] == ["u2", "u1"]
    assert await store.messages("CP1", limit=10, offset=0, action="Authorize") == []


async def test_tickets_get_increasing_ids(store, store_factory):
    from libv4e_apps.csms.tickets import (  # the app keeps them, in the same database
        Ticket,
        TicketDesk,
    )

    desk = TicketDesk(store)
    first = await desk.add(Ticket(0, "CP1", "offline", T0, details={"k": [1]}))
    second = await desk.add(Ticket(0, "CP2", "faulted", T0, scenario="x"))
    assert second.ticket_id > first.ticket_id > 0
    assert await desk.tickets() == [first, second]
    again = store_factory()
    await again.open()
    try:
        assert await TicketDesk(again).tickets() == [first, second]  # kept in the database
    finally:
        await again.close()


async def test_secrets_set_replace_remove(store):
    await store.set_secret("CP1", "hash1")
    await store.set_secret("CP2", "hash2")
    await store.set_secret("CP1", "hash3")
    await store.set_secret("CP2", None)
    await store.set_secret("CP9", None)
    assert await store.secrets() == {"CP1": "hash3"}


async def test_concurrent_writes_all_land(store):
    async with trio.open_nursery() as nursery:
        for n in range(1, 51):
            nursery.start_soon(store.write_transactions, [tx(n, f"CP{n % 7}")], [])
            nursery.start_soon(store.save_meter_values, f"CP{n % 7}", 1, n, [{"n": n}])
    every = await store.transactions(cp_id=None, active=None, limit=1000, offset=0)
    assert sorted(t.transaction_id for t in every) == list(range(1, 51))
    for n in (1, 25, 50):
        assert await store.meter_values(n) == [{"n": n}]


async def test_closed_store_raises_store_error(store_factory):
    s = store_factory()
    with pytest.raises(StoreError):
        await s.save_chargers([charger("CP1")])


async def test_local_lists_and_firmware_states_round_trip_and_replace(store):
    a = ChargerLocalList("CP1", list_version=3, entries={"T1": IdTag("T1")}, complete=True)
    await store.save_local_list(a)
    await store.save_local_list(ChargerLocalList("CP2", reported_version=-1, reported_at=T0))
    a.list_version = 4
    await store.save_local_list(a)  # replaced
    lists = sorted(await store.load_local_lists(), key=lambda x: x.cp_id)
    assert lists == [a, ChargerLocalList("CP2", reported_version=-1, reported_at=T0)]
    f = ChargerFirmware("CP1", firmware_status="Downloading", firmware_status_at=T0)
    await store.save_firmware_state(f)
    f.firmware_status = "Installed"
    await store.save_firmware_state(f)
    assert await store.load_firmware_states() == [f]


async def test_spoken_names_round_trip_replace_and_survive_reopen(store, store_factory):
    from libv4e.csms import SpokenNames

    assert await store.spoken_names("CP1") is None
    names = SpokenNames("CP1", "bay 3", {1: "bay 3, left plug", 2: "bay 3, right plug"})
    await store.save_spoken_names(names)
    await store.save_spoken_names(SpokenNames("CP2", None, {1: "the café's plug 'Ünï' 🔌"}))
    names.connectors = {2: "right"}
    await store.save_spoken_names(names)  # replaced, not merged
    again = store_factory()
    await again.open()
    try:
        assert await again.spoken_names("CP1") == SpokenNames("CP1", "bay 3", {2: "right"})
        assert (await again.spoken_names("CP2")).connectors == {1: "the café's plug 'Ünï' 🔌"}
    finally:
        await again.close()


def reservation(n: int, cp: str = "CP1", status: str = "Reserved") -> Reservation:
    return Reservation(n, cp, 1, "TAG", T0 + dt.timedelta(hours=1), T0, status=status)


async def test_reservations_round_trip_filter_and_keep_recent_finished(store):
    assert await store.last_reservation_id() == 0
    for n in range(1, 7):
        await store.save_reservation(
            reservation(n, "CP1" if n % 2 else "CP2", "Reserved" if n in (2, 5) else "Used")
        )
    await store.save_reservation(reservation(3, "CP1", "Cancelled"))  # same id, same charger
    assert await store.last_reservation_id() == 6
    assert await store.reservation(3) == reservation(3, "CP1", "Cancelled")
    assert await store.reservation(99) is None
    assert await store.reservation(2**40) is None
    got = await store.reservations(cp_id="CP1", status=None, limit=10, offset=0)
    assert [r.reservation_id for r in got] == [5, 3, 1]
    got = await store.reservations(cp_id=None, status="Used", limit=2, offset=1)
    assert [r.reservation_id for r in got] == [4, 1]
    loaded = await store.load_reservations(finished=2)
    assert [r.reservation_id for r in loaded] == [2, 4, 5, 6]  # both active + 2 newest others


def profile(n: int, cp: str = "CP1", status: str = "Installed") -> ChargingProfileRecord:
    body = {"chargingProfileId": n, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile"}
    return ChargingProfileRecord(n, cp, 1, n, 0, "TxDefaultProfile", body, T0, status=status)


async def test_charging_profiles_round_trip_filter_and_keep_recent_finished(store):
    assert await store.last_charging_profile_record_id() == 0
    await store.save_charging_profiles(
        [
            profile(n, "CP1" if n < 4 else "CP2", "Installed" if n in (1, 4) else "Cleared")
            for n in range(1, 6)
        ]
    )
    await store.save_charging_profiles([profile(2, "CP1", "Pending")])  # replaced
    assert await store.last_charging_profile_record_id() == 5
    got = await store.charging_profiles(cp_id="CP1", status=None, limit=10, offset=0)
    assert [r.record_id for r in got] == [3, 2, 1]
    assert got[1] == profile(2, "CP1", "Pending")
    got = await store.charging_profiles(cp_id=None, status="Cleared", limit=10, offset=0)
    assert [r.record_id for r in got] == [5, 3]
    loaded = await store.load_charging_profiles(finished=1)
    assert [r.record_id for r in loaded] == [1, 2, 4, 5]  # installed, pending + newest other


async def test_message_retention_is_fair_per_charger(store):
    """one charger logging 4,700 calls/s evicted every other charger's history
    (a victim's 50 messages → 0). Retention now trims the biggest loggers first."""
    flood = [
        MessageRecord("FLOOD", "in", 2, f"f{i}", "Heartbeat", {}, T0 + dt.timedelta(seconds=i))
        for i in range(300)
    ]
    victim = [
        MessageRecord("VICTIM", "in", 2, f"v{i}", "StatusNotification", {}, T0) for i in range(50)
    ]
    other = [MessageRecord("OTHER", "in", 2, f"o{i}", "Heartbeat", {}, T0) for i in range(120)]
    await store.log_messages(victim + other)
    await store.log_messages(flood)  # the newest rows are the flood's
    deleted = await store.prune_messages(max_rows=200, older_than=None)
    assert deleted == 470 - 200
    kept = {}
    for m in await store.messages(None, limit=1000, offset=0):
        kept.setdefault(m["cp_id"], []).append(m["unique_id"])
    assert len(kept["VICTIM"]) == 50  # under its share: untouched
    assert len(kept["OTHER"]) == len(kept["FLOOD"]) == 75
    assert kept["FLOOD"][0] == "f299" and kept["FLOOD"][-1] == "f225"  # the newest kept
    assert await store.prune_messages(max_rows=None, older_than=None, per_charger=10) == 170
    for cp in kept:
        assert len(await store.messages(cp, limit=1000, offset=0)) == 10


@given(
    counts=st.dictionaries(st.text(min_size=1, max_size=3), st.integers(0, 500), max_size=8),
    max_rows=st.one_of(st.none(), st.integers(0, 2000)),
    per_charger=st.one_of(st.none(), st.integers(0, 600)),
)
def test_fair_quota(counts, max_rows, per_charger):
    from libv4e.csms._store import fair_quota

    quota = fair_quota(counts, max_rows, per_charger)
    kept = {k: n if quota is None else min(n, quota) for k, n in counts.items()}
    if max_rows is not None:
        assert sum(kept.values()) <= max_rows
    if per_charger is not None:
        assert all(n <= per_charger for n in kept.values())
    if quota is not None:
        assert any(n > quota for n in counts.values())  # someone is trimmed
        # no waste: one more row each for the trimmed would break a limit
        trimmed = [k for k, n in counts.items() if n > quota]
        if per_charger is None or quota < per_charger:
            assert max_rows is not None
            assert sum(kept.values()) + len(trimmed) > max_rows


async def test_message_retention_by_count_and_by_age(store):
    records = [
        MessageRecord("CP1", "in", 2, f"u{i}", "Heartbeat", {}, T0 + dt.timedelta(hours=i))
        for i in range(10)
    ]
    await store.log_messages(records)
    assert await store.prune_messages(max_rows=None, older_than=None) == 0
    assert await store.prune_messages(max_rows=7, older_than=None) == 3  # keeps the newest 7
    cutoff = T0 + dt.timedelta(hours=5)
    assert await store.prune_messages(max_rows=None, older_than=cutoff) == 2  # u3, u4
    left = [m["unique_id"] for m in await store.messages(None, limit=50, offset=0)]
    assert left == ["u9", "u8", "u7", "u6", "u5"]
    assert await store.prune_messages(max_rows=2, older_than=cutoff) == 3


async def test_delete_charger_forgets_only_its_state(store):
    await store.save_chargers([charger("CP1"), charger("CP2")])
    await store.write_transactions([tx(1, "CP1")], [])
    await store.delete_charger("CP1")
    await store.delete_charger("nobody")
    assert [c.cp_id for c in await store.load_chargers()] == ["CP2"]
    assert await store.transaction(1) == tx(1, "CP1")


async def test_text_a_peer_sent_is_stored_whatever_it_contains(store):
    odd = MessageRecord("CP1", "in", 2, "id\udc80\x00", "Heart\ud800beat", {"k": "\ud800"}, T0)
    await store.log_messages([odd])
    (got,) = await store.messages("CP1", limit=5, offset=0)
    assert got["unique_id"].startswith("id")
    assert got["action"].startswith("Heart")


# -- PostgreSQL only ---------------------------------------------------------------------


async def test_postgres_id_blocks_from_two_nodes_are_disjoint(pg_url):
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)  # two nodes on one database
    await a.open()
    await b.open()
    try:
        ids: list[int] = []

        async def take(s: PostgresStore, count: int) -> None:
            first = await s.reserve_transaction_ids(count)
            ids.extend(range(first, first + count))

        async with trio.open_nursery() as nursery:
            for i in range(100):
                nursery.start_soon(take, (a, b)[i % 2], 1 + i % 7)
        assert len(ids) == len(set(ids)) == sum(1 + i % 7 for i in range(100))
        assert await a.last_transaction_id() == max(ids)  # reserved counts, even unused
    finally:
        await a.close()
        await b.close()


async def test_postgres_retention_deletes_in_batches(pg_url):
    s = PostgresStore(pg_url)
    await s.open()
    try:
        old = [MessageRecord("CP1", "in", 2, f"o{i}", "Heartbeat", {}, T0) for i in range(25)]
        new = MessageRecord("CP1", "in", 2, "new", "Heartbeat", {}, T0 + dt.timedelta(days=2))
        await s.log_messages([*old, new])
        cutoff = T0 + dt.timedelta(days=1)
        assert await s.prune_messages(max_rows=None, older_than=cutoff, batch=10) == 25
        assert [m["unique_id"] for m in await s.messages(None, limit=50, offset=0)] == ["new"]
    finally:
        await s.close()


async def test_never_replaces_another_chargers_record_of_the_same_id(store):
    # two nodes may pick the same new id at the same moment; SQLite refuses it alike
    await store.save_reservation(reservation(7, "CP1"))
    with pytest.raises(StoreError):
        await store.save_reservation(reservation(7, "CP2"))
    assert (await store.reservation(7)).cp_id == "CP1"
    await store.save_reservation(reservation(7, "CP1", "Cancelled"))  # its own: replaced
    assert (await store.reservation(7)).status == "Cancelled"
    await store.save_charging_profiles([profile(3, "CP1")])
    with pytest.raises(StoreError):
        await store.save_charging_profiles([profile(4, "CP2"), profile(3, "CP2")])
    got = await store.charging_profiles(cp_id=None, status=None, limit=10, offset=0)
    assert [(r.record_id, r.cp_id) for r in got] == [(3, "CP1")]  # all or nothing


async def test_ids_outside_the_ocpp_integer_range_are_refused_alike(store):
    for key in (2**31, -(2**31) - 1, 2**40):
        with pytest.raises(StoreDataError):
            await store.save_reservation(reservation(key))
        with pytest.raises(StoreDataError):
            await store.save_charging_profiles([profile(1), profile(key)])
        with pytest.raises(StoreDataError):
            await store.write_transactions(
                [tx(1), dataclasses.replace(tx(2), transaction_id=key)], []
            )
        with pytest.raises(StoreDataError):
            await store.save_meter_values("CP1", 1, key, [{"n": 1}])
        assert await store.reservation(key) is None
        assert await store.transaction(key) is None
        assert await store.meter_values(key) == []
    assert await store.reservations(cp_id=None, status=None, limit=10, offset=0) == []
    assert await store.charging_profiles(cp_id=None, status=None, limit=10, offset=0) == []
    assert await store.transactions(cp_id=None, active=None, limit=10, offset=0) == []
    await store.save_reservation(reservation(2**31 - 1))  # the largest is fine
    assert await store.last_reservation_id() == 2**31 - 1


async def test_unreachable_postgres_is_a_store_error():
    s = PostgresStore("postgresql://nobody@127.0.0.1:1/none", timeout=1)
    with pytest.raises(StoreError, match="cannot open database"):
        await s.open()


def test_store_for_picks_the_backend_from_the_db_value(tmp_path):
    assert isinstance(store_for(str(tmp_path / "x.db")), SqliteStore)
    assert isinstance(store_for("x.db"), SqliteStore)
    assert isinstance(store_for("postgresql://u@h/db"), PostgresStore)
    assert isinstance(store_for("postgres://u:secret@h:5433/db"), PostgresStore)
    assert "secret" not in repr(store_for("postgres://u:secret@h:5433/db"))
    for bad in ("mysql://u@h/db", "sqlite:///x.db", "postgresql:db", "redis://h"):
        with pytest.raises(ValueError, match="--db") as info:
            store_for(bad)
        assert "\n" not in str(info.value)
    assert not list(tmp_path.iterdir())  # nothing created


# -- both backends answer the API's queries alike (Hypothesis) ---------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_records = st.builds(
    MessageRecord,
    cp_id=st.sampled_from(["CP1", "CP2", "CP3"]),
    direction=st.sampled_from(["in", "out"]),
    message_type=st.sampled_from([2, 3, 4]),
    unique_id=st.text(max_size=12),
    action=st.none() | st.sampled_from(["Heartbeat", "BootNotification", "MeterValues"]),
    payload=st.dictionaries(st.text(max_size=6), _json, max_size=4),
    at=st.datetimes(
        min_value=dt.datetime(2020, 1, 1),
        max_value=dt.datetime(2030, 1, 1),
        timezones=st.just(dt.UTC),
    ).map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000)),
    late=st.booleans(),
)
_queries = st.tuples(
    st.none() | st.sampled_from(["CP1", "CP2", "CP9"]),
    st.none() | st.sampled_from(["Heartbeat", "MeterValues", "Authorize"]),
    st.integers(0, 40),
    st.integers(0, 40),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(st.lists(_records, max_size=12), max_size=4),
    queries=st.lists(_queries, min_size=1, max_size=4),
)
async def test_message_log_queries_agree_on_both_backends(pg_url, batches, queries):
    lite, pg = SqliteStore(":memory:"), PostgresStore(pg_url, pool_size=2)
    await lite.open()
    await pg.open()
    try:
        await pg.run(lambda db: db.execute("TRUNCATE messages"))
        for batch in batches:
            await lite.log_messages(batch)
            await pg.log_messages(batch)
        for cp_id, action, limit, offset in queries:
            got = [
                [
                    {**m, "id": None}
                    for m in await s.messages(cp_id, limit=limit, offset=offset, action=action)
                ]
                for s in (lite, pg)
            ]
            for m in got[0]:  # what PostgreSQL cannot store in TEXT (see _pgstore._text)
                m["unique_id"] = m["unique_id"].replace("\x00", "\ufffd")
            assert got[0] == got[1]
    finally:
        await lite.close()
        await pg.close()


async def test_a_change_writes_its_operator_records_with_its_transactions_or_nothing(store):
    """One event, one database transaction: the transaction rows and the reservation and
    profile records the event moved land together, and a refused row (an id already
    taken) leaves none of them."""
    await store.save_reservation(reservation(11, "CP1", "Reserved"))
    await store.save_charging_profiles([profile(12, "CP1", "Installed")])
    started = tx(21)
    await store.write_transactions(
        [started],
        [],
        reservations=[reservation(11, "CP1", "Used")],
        profiles=[profile(12, "CP1", "Ended")],
    )
    assert (await store.transaction(21)) == started
    assert str((await store.reservation(11)).status) == "Used"
    (record,) = await store.charging_profiles(cp_id="CP1", status=None, limit=5, offset=0)
    assert str(record.status) == "Ended"
    with pytest.raises(StoreError):  # transaction 21 exists: the whole write is refused
        await store.write_transactions(
            [tx(21)], [], reservations=[reservation(11, "CP1", "Cancelled")]
        )
    assert str((await store.reservation(11)).status) == "Used"


def session201(n: int, cp: str, charger_id: str, **changes) -> Transaction:
    """An OCPP 2.0.1 session: the charger's own id beside the CSMS's number."""
    changes.setdefault("seq_no", 0)
    return dataclasses.replace(tx(n, cp), charger_transaction_id=charger_id, **changes)


async def test_a_201_session_is_one_row_per_charger_id_found_by_it(store, store_factory):
    await store.write_transactions([session201(1, "CS1", "a-1"), session201(2, "CS2", "a-1")], [])
    assert await store.transaction_of_charger("CS1", "a-1") == session201(1, "CS1", "a-1")
    assert (await store.transaction_of_charger("CS2", "a-1")).transaction_id == 2
    assert await store.transaction_of_charger("CS1", "nope") is None
    assert await store.transaction_of_charger("CS3", "a-1") is None
    with pytest.raises(StoreError):  # the same session again under another number
        await store.write_transactions([session201(3, "CS1", "a-1")], [])
    ended = session201(1, "CS1", "a-1", seq_no=4, meter_stop=900, stopped_at=T0)
    await store.write_transactions([], [ended])
    await store.write_transactions([tx(4, "CS1"), tx(5, "CS1")], [])  # 1.6 rows: no id, no clash
    await store.close()
    reopened = store_factory()
    await reopened.open()
    try:
        assert await reopened.transaction_of_charger("CS1", "a-1") == ended
        loaded = {t.transaction_id: t for t in await reopened.load_transactions()}
        assert loaded[1].charger_transaction_id == "a-1" and loaded[1].seq_no == 4
        assert loaded[4].charger_transaction_id is None
    finally:
        await reopened.close()
        await store.open()  # the fixture closes it


async def test_a_database_from_before_201_gains_the_charger_id_column(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)  # the transactions table as the 1.6-only releases made it
    db.execute(
        "CREATE TABLE transactions (transaction_id INTEGER PRIMARY KEY, cp_id TEXT NOT NULL, "
        "active INTEGER NOT NULL, data TEXT NOT NULL)"
    )
    db.execute(
        "INSERT INTO transactions VALUES (7, 'CP1', 1, ?)",
        (
            '{"transaction_id": 7, "cp_id": "CP1", "connector_id": 1, "id_tag": "T", '
            '"meter_start": 5, "started_at": "2024-05-01T12:00:00+00:00"}',
        ),
    )
    db.commit()
    db.close()
    store = SqliteStore(path)
    await store.open()
    try:
        (old,) = await store.load_transactions()
        assert old.transaction_id == 7 and old.charger_transaction_id is None
        await store.write_transactions([session201(8, "CP1", "x")], [])
        assert (await store.transaction_of_charger("CP1", "x")).transaction_id == 8
        with pytest.raises(StoreError):
            await store.write_transactions([session201(9, "CP1", "x")], [])
    finally:
        await store.close()


async def test_an_events_meter_values_are_written_with_its_rows_or_not_at_all(store):
    from libv4e.csms._txbook import MeterRows

    values = ({"timestamp": "2024-05-01T12:00:00Z", "sampledValue": [{"value": 5.0}]},)
    await store.write_transactions(
        [session201(1, "CS1", "a-1")], [], meter_values=[MeterRows("CS1", 1, 1, values)]
    )
    assert await store.meter_values(1) == list(values)
    later = ({"timestamp": "2024-05-01T12:01:00Z", "sampledValue": [{"value": 9.0}]},)
    with pytest.raises(StoreError):  # the event's row cannot be written: nor its values
        await store.write_transactions(
            [session201(2, "CS1", "a-1")], [], meter_values=[MeterRows("CS1", 1, 2, later)]
        )
    assert await store.meter_values(2) == []
    await store.write_transactions(
        [], [session201(1, "CS1", "a-1", seq_no=1)], meter_values=[MeterRows("CS1", 1, 1, later)]
    )
    assert await store.meter_values(1) == [*values, *later]
