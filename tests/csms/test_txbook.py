"""The transaction book without sockets: its rules, and its invariants under random
interleavings of start / retry / stop / meter / reboot / status events over several
chargers (Hypothesis), with a model of the store that refuses what a real one refuses."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from libv4e.csms._registry import Transaction
from libv4e.csms._txbook import (
    CLOCK_TOLERANCE_S,
    FLAG_CLOCK_AHEAD,
    FLAG_IMPLAUSIBLE_ENERGY,
    FLAG_METER_DECREASED,
    FLAG_STOP_BELOW_ACKNOWLEDGED,
    FLAG_STOPPED_AFTER_RECONCILIATION,
    IMPLAUSIBLE_SLACK_WH,
    Change,
    NoIdsAvailable,
    TransactionBook,
)

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


class Rows:
    """What a store does with changes: inserts refuse a taken id, updates need the row."""

    def __init__(self) -> None:
        self.rows: dict[int, Transaction] = {}
        self.unmatched = 0
        self.history: dict[int, list[Transaction]] = {}

    def write(self, change: Change) -> None:
        for tx in change.changed:
            old = self.rows.get(tx.transaction_id)
            assert old is not None, f"update of a missing row {tx.transaction_id}"
            assert old.cp_id == tx.cp_id, "a row was about to be overwritten by another charger"
            assert (old.connector_id, old.id_tag, old.meter_start, old.started_at) == (
                tx.connector_id,
                tx.id_tag,
                tx.meter_start,
                tx.started_at,
            ), "a row's identity changed"
        for tx in change.new:
            assert tx.transaction_id not in self.rows, f"id {tx.transaction_id} inserted twice"
        for tx in (*change.new, *change.changed):
            self.rows[tx.transaction_id] = tx
            self.history.setdefault(tx.transaction_id, []).append(tx)
        self.unmatched += change.unmatched is not None


def book_with_ids(**kwargs) -> TransactionBook:
    book = TransactionBook(**kwargs)
    book.add_ids(1, 1000)
    return book


def commit(book: TransactionBook, rows: Rows, change: Change) -> Change:
    rows.write(change)
    book.apply(change)
    return change


def test_ids_come_only_from_reserved_blocks_and_never_go_back():
    book = TransactionBook()
    with pytest.raises(NoIdsAvailable):
        book.start("A", 1, "T", 0, at(0))
    book.add_ids(10, 2)
    ids = [book.start("A", i, "T", 0, at(0)).transaction.transaction_id for i in (1, 2)]
    assert ids == [10, 11]
    with pytest.raises(NoIdsAvailable):
        book.start("A", 3, "T", 0, at(0))
    with pytest.raises(ValueError, match="overlaps"):
        book.add_ids(11, 5)  # a block below what was handed out
    book.add_ids(100, 5)
    assert book.start("A", 3, "T", 0, at(0)).transaction.transaction_id == 100


def test_an_id_taken_by_a_failed_write_is_never_handed_out_again():
    book, rows = book_with_ids(), Rows()
    failed = book.start("A", 1, "T", 0, at(0))  # the store failed: never applied
    ok = commit(book, rows, book.start("A", 1, "T", 0, at(0)))
    assert ok.transaction.transaction_id == failed.transaction.transaction_id + 1
    assert failed.transaction.transaction_id not in book


def test_a_repeated_start_gets_the_same_id_and_writes_nothing():
    book, rows = book_with_ids(), Rows()
    first = commit(book, rows, book.start("A", 1, "T", 10, at(0)))
    again = book.start("A", 1, "T", 10, at(0))
    assert again.retry and not again.writes
    assert again.transaction.transaction_id == first.transaction.transaction_id
    other = book.start("B", 1, "T", 10, at(0))  # same values, another charger: new session
    assert not other.retry


def test_loaded_transactions_keep_their_ids_and_block_reuse():
    book = TransactionBook()
    book.load([Transaction(41, "A", 1, "T", 0, at(0))])
    with pytest.raises(ValueError, match="overlaps"):
        book.add_ids(41, 10)
    book.add_ids(42, 10)
    assert book.start("A", 1, "T", 0, at(0)).retry  # the loaded one is found by the index


def test_stop_of_unknown_or_foreign_id_is_kept_as_unmatched_and_changes_nothing():
    book, rows = book_with_ids(), Rows()
    tx = commit(book, rows, book.start("A", 1, "T", 0, at(0))).transaction
    unknown = book.stop("A", 999, 5, at(1), received_at=at(1))
    assert unknown.unmatched.kind == "unknown" and not unknown.changed
    foreign = book.stop("B", tx.transaction_id, 999_999_999, at(1), received_at=at(1))
    assert foreign.unmatched.kind == "foreign" and foreign.unmatched.owner == "A"
    assert not foreign.changed
    assert book.get(tx.transaction_id).active


def test_a_repeated_stop_is_a_retry_and_a_different_one_is_conflicting():
    book, rows = book_with_ids(), Rows()
    tx = commit(book, rows, book.start("A", 1, "T", 0, at(0))).transaction
    commit(book, rows, book.stop("A", tx.transaction_id, 500, at(60), received_at=at(60)))
    assert book.stop("A", tx.transaction_id, 500, at(60), received_at=at(61)).retry
    conflicting = book.stop("A", tx.transaction_id, 0, at(70), received_at=at(70))
    assert conflicting.unmatched.kind == "conflicting"
    assert book.get(tx.transaction_id).meter_stop == 500


def test_stop_below_the_acknowledged_register_is_flagged_not_trusted_silently():
    book, rows = book_with_ids(), Rows()
    tx = commit(book, rows, book.start("A", 1, "T", 100, at(0))).transaction
    commit(book, rows, book.meter("A", tx.transaction_id, 832, at(600)))
    stopped = commit(book, rows, book.stop("A", tx.transaction_id, 0, at(700), received_at=at(700)))
    assert FLAG_STOP_BELOW_ACKNOWLEDGED in stopped.transaction.flags
    assert stopped.transaction.last_meter_wh == 832  # what was acknowledged stays on record


def test_meter_going_backwards_is_flagged_and_ignored():
    book, rows = book_with_ids(), Rows()
    tx = commit(book, rows, book.start("A", 1, "T", 0, at(0))).transaction
    commit(book, rows, book.meter("A", tx.transaction_id, 500, at(60)))
    change = commit(book, rows, book.meter("A", tx.transaction_id, 100, at(120)))
    assert FLAG_METER_DECREASED in change.transaction.flags
    assert book.get(tx.transaction_id).last_meter_wh == 500


def test_absurd_energy_for_the_duration_is_flagged():
    book, rows = book_with_ids(max_power_w=22_000), Rows()
    tx = commit(book, rows, book.start("A", 1, "T", 0, at(0))).transaction
    stop = book.stop("A", tx.transaction_id, 999_999_999, at(60), received_at=at(60))
    assert FLAG_IMPLAUSIBLE_ENERGY in stop.transaction.flags
    tx2 = commit(book, rows, book.start("A", 2, "T", 0, at(0))).transaction
    fine = book.stop("A", tx2.transaction_id, 22_000, at(3600), received_at=at(3600))
    assert fine.transaction.flags == []


def test_a_timestamp_from_the_future_never_widens_the_energy_bound():
    """a register "sampled in year 9999" made 20 TWh plausible (reconciliation
    billed 20,000,000,000,000 Wh unflagged). The CSMS's own clock bounds the time a
    session may claim; a time ahead of it is flagged."""
    book, rows = book_with_ids(max_power_w=22_000), Rows()
    start = book.start("A", 1, "T", 0, at(0), received_at=at(0))
    tx = commit(book, rows, start).transaction
    far = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
    meter = commit(book, rows, book.meter("A", tx.transaction_id, 20e12, far, received_at=at(60)))
    flags = meter.transaction.flags
    assert FLAG_IMPLAUSIBLE_ENERGY in flags and FLAG_CLOCK_AHEAD in flags
    assert meter.transaction.last_meter_wh in (None, 0)  # not acknowledged
    stop = book.stop("A", tx.transaction_id, 20_000_000_000_000, far, received_at=at(120))
    assert {FLAG_IMPLAUSIBLE_ENERGY, FLAG_CLOCK_AHEAD} <= set(stop.transaction.flags)
    # a charger whose clock runs 2 h ahead, consistently, charging an hour at 20 kW: fine
    ahead = dt.timedelta(hours=2)
    tx2 = commit(book, rows, book.start("A", 2, "T", 0, at(0) + ahead, received_at=at(0)))
    honest = book.stop(
        "A", tx2.transaction.transaction_id, 20_000, at(3600) + ahead, received_at=at(3600)
    )
    assert FLAG_IMPLAUSIBLE_ENERGY not in honest.transaction.flags
    assert FLAG_CLOCK_AHEAD in honest.transaction.flags  # its clock is wrong: said so


@given(
    claimed=st.floats(0, 1e7),
    seen=st.floats(0, 1e6),
    power=st.floats(1_000, 400_000),
)
def test_the_energy_bound_follows_the_csms_clock(claimed, seen, power):
    book, rows = book_with_ids(max_power_w=power), Rows()
    tx = commit(book, rows, book.start("A", 1, "T", 0, at(0), received_at=at(0))).transaction
    allowed = power * (min(claimed, seen + CLOCK_TOLERANCE_S) / 3600) + IMPLAUSIBLE_SLACK_WH
    for energy, implausible in ((allowed * 0.99, False), (allowed * 1.01 + 1, True)):
        stop = book.stop("A", tx.transaction_id, int(energy), at(claimed), received_at=at(seen))
        assert (FLAG_IMPLAUSIBLE_ENERGY in stop.transaction.flags) == implausible or (
            abs(int(energy) - allowed) < 2
        )


def test_new_start_on_a_busy_connector_closes_the_old_session():
    book, rows = book_with_ids(), Rows()
    old = commit(book, rows, book.start("A", 1, "T", 0, at(0))).transaction
    change = commit(book, rows, book.start("A", 1, "U", 50, at(100)))
    (closed,) = change.closed
    assert closed.transaction_id == old.transaction_id and closed.reconciled
    assert book.active_on("A", 1).transaction_id == change.transaction.transaction_id


def test_available_after_start_closes_the_session_but_an_older_notification_does_not():
    book, rows = book_with_ids(), Rows()
    tx = commit(book, rows, book.start("A", 1, "T", 0, at(100))).transaction
    assert not book.status("A", 1, "Available", at(50)).writes  # sent before the start
    assert not book.status("A", 1, "Charging", at(150)).writes
    change = commit(book, rows, book.status("A", 1, "Available", at(200)))
    assert change.closed[0].transaction_id == tx.transaction_id
    assert "Available" in change.closed[0].reconciled
    assert book.active_on("A", 1) is None


def test_reboot_doubts_sessions_until_confirmed_or_grace_expires():
    book, rows = book_with_ids(), Rows()
    kept = commit(book, rows, book.start("A", 1, "T", 0, at(0))).transaction
    lost = commit(book, rows, book.start("A", 2, "T", 0, at(0))).transaction
    book.apply(book.booted("A", at(10)))
    assert set(book.suspects()) == {kept.transaction_id, lost.transaction_id}
    book.apply(book.status("A", 1, "Charging", at(11)))  # connector 1 still charges
    assert not book.expire(at(100), 300, ["A"]).writes
    assert not book.expire(at(400), 300, []).writes  # not connected: not judged
    change = commit(book, rows, book.expire(at(400), 300, ["A"]))
    assert [t.transaction_id for t in change.closed] == [lost.transaction_id]
    assert book.get(kept.transaction_id).active


def test_lost_start_answer_is_confirmed_by_the_retry():
    book, rows = book_with_ids(), Rows()
    tx = commit(book, rows, book.start("A", 1, "T", 0, at(0))).transaction
    book.apply(book.reply_lost(tx.transaction_id, at(0)))
    book.apply(book.reconnected("A", at(50)))
    commit(book, rows, book.start("A", 1, "T", 0, at(0)))  # the charger resends it
    assert book.suspects() == {}


def test_stop_after_reconciliation_records_the_chargers_values():
    book, rows = book_with_ids(), Rows()
    tx = commit(book, rows, book.start("A", 1, "T", 0, at(0))).transaction
    commit(book, rows, book.meter("A", tx.transaction_id, 700, at(60)))
    commit(book, rows, book.status("A", 1, "Available", at(100)))
    change = commit(book, rows, book.stop("A", tx.transaction_id, 732, at(90), received_at=at(120)))
    done = change.transaction
    assert not done.active and done.meter_stop == 732
    assert FLAG_STOPPED_AFTER_RECONCILIATION in done.flags
    assert book.stop("A", tx.transaction_id, 732, at(90), received_at=at(121)).retry


def test_finished_transactions_are_forgotten_beyond_the_window_but_active_ones_never():
    book, rows = book_with_ids(keep_finished=3), Rows()
    active = commit(book, rows, book.start("Z", 1, "T", 0, at(0))).transaction
    for i in range(10):
        tx = commit(book, rows, book.start("A", 1, "T", i, at(i))).transaction
        commit(book, rows, book.stop("A", tx.transaction_id, i + 5, at(i + 1), received_at=at(i)))
    assert len(book) == 4
    assert book.get(active.transaction_id).active


# -- property: random interleavings over several chargers -----------------------------------

CHARGERS = ("A", "B", "C")
CONNECTORS = (1, 2)


class BookMachine(RuleBasedStateMachine):
    """Random events; every accepted start has exactly one row and the invariants hold."""

    @initialize()
    def setup(self) -> None:
        self.book = TransactionBook(keep_finished=4, max_power_w=50_000)
        self.rows = Rows()
        self.clock = 0.0
        self.starts: dict[tuple, int] = {}  # start key -> id the charger was told
        self.issued: list[int] = []
        self.energy: dict[int, float] = {}
        self.next_block = 1

    def tick(self) -> dt.datetime:
        self.clock += 7
        return at(self.clock)

    def ensure_ids(self) -> None:
        if self.book.ids_left == 0:
            self.book.add_ids(self.next_block, 3)
            self.next_block += 3 + 2  # blocks may leave gaps (a crash after a reservation)

    @rule(
        cp=st.sampled_from(CHARGERS),
        connector=st.sampled_from(CONNECTORS),
        meter=st.integers(0, 10_000),
        fail=st.booleans(),
    )
    def start(self, cp: str, connector: int, meter: int, fail: bool) -> None:
        self.ensure_ids()
        when = self.tick()
        change = self.book.start(cp, connector, f"TAG-{cp}", meter, when)
        assert not change.retry
        self.issued.append(change.transaction.transaction_id)
        if fail:
            return  # the store write failed: the charger got InternalError, nothing applied
        commit(self.book, self.rows, change)
        key = (cp, connector, f"TAG-{cp}", meter, when)
        self.starts[key] = change.transaction.transaction_id

    @rule(data=st.data())
    def retry_start(self, data: st.DataObject) -> None:
        # a retry is of a start still open (or closed by the CSMS itself): once the charger
        # stopped it, identical values are a new session (see the adversarial tests)
        live = [
            k
            for k, i in self.starts.items()
            if (t := self.book.get(i)) is not None and (t.active or t.reconciled is not None)
        ]
        if not live:
            return
        key = data.draw(st.sampled_from(live))
        change = self.book.start(*key)
        assert change.retry and change.transaction.transaction_id == self.starts[key]
        commit(self.book, self.rows, change)

    @rule(data=st.data(), delta=st.integers(-500, 3000), cp=st.sampled_from(CHARGERS))
    def stop(self, data: st.DataObject, delta: int, cp: str) -> None:
        ids = [*sorted(self.rows.rows), 10_000]
        tx_id = data.draw(st.sampled_from(ids))
        row = self.rows.rows.get(tx_id)
        meter_stop = (row.meter_start if row else 0) + delta
        when = self.tick()
        change = self.book.stop(cp, tx_id, meter_stop, when, received_at=when)
        if row is None or row.cp_id != cp:
            assert change.unmatched is not None and not change.changed
        commit(self.book, self.rows, change)

    @rule(data=st.data(), delta=st.integers(-200, 2000))
    def meter(self, data: st.DataObject, delta: int) -> None:
        active = [t.transaction_id for t in self.book.active()]
        if not active:
            return
        tx_id = data.draw(st.sampled_from(active))
        tx = self.book.get(tx_id)
        reading = (tx.last_meter_wh or tx.meter_start) + delta
        commit(self.book, self.rows, self.book.meter(tx.cp_id, tx_id, reading, self.tick()))

    @rule(cp=st.sampled_from(CHARGERS))
    def reboot(self, cp: str) -> None:
        self.book.apply(self.book.booted(cp, self.tick()))

    @rule(
        cp=st.sampled_from(CHARGERS),
        connector=st.sampled_from(CONNECTORS),
        status=st.sampled_from(["Available", "Preparing", "Charging", "Finishing", "Faulted"]),
    )
    def status(self, cp: str, connector: int, status: str) -> None:
        commit(self.book, self.rows, self.book.status(cp, connector, status, self.tick()))

    @rule()
    def expire(self) -> None:
        self.clock += 100
        commit(self.book, self.rows, self.book.expire(at(self.clock), 150, CHARGERS))

    @invariant()
    def ids_unique_and_increasing(self) -> None:
        assert len(self.issued) == len(set(self.issued))
        assert self.issued == sorted(self.issued)

    @invariant()
    def every_accepted_start_has_exactly_its_own_row(self) -> None:
        for (cp, connector, tag, meter, when), tx_id in self.starts.items():
            row = self.rows.rows[tx_id]
            assert (row.cp_id, row.connector_id, row.id_tag, row.meter_start, row.started_at) == (
                cp,
                connector,
                tag,
                meter,
                when,
            )
        assert len(set(self.starts.values())) == len(self.starts) == len(self.rows.rows)

    @invariant()
    def stopped_never_reopen_and_energy_never_decreases(self) -> None:
        for history in self.rows.history.values():
            stopped = False
            acknowledged = None
            for tx in history:
                assert not (stopped and tx.active), "a stopped transaction reopened"
                stopped = stopped or not tx.active
                if acknowledged is not None:
                    assert tx.last_meter_wh is not None and tx.last_meter_wh >= acknowledged
                acknowledged = tx.last_meter_wh
                assert tx.energy_wh >= 0

    @invariant()
    def one_active_session_per_connector_and_book_matches_rows(self) -> None:
        active = [t for t in self.rows.rows.values() if t.active]
        places = [(t.cp_id, t.connector_id) for t in active]
        assert len(places) == len(set(places))
        assert {t.transaction_id for t in self.book.active()} == {t.transaction_id for t in active}
        for tx in self.book:
            assert self.rows.rows[tx.transaction_id] == tx


TestBookMachine = BookMachine.TestCase
TestBookMachine.settings = settings(
    max_examples=150,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@given(st.lists(st.tuples(st.sampled_from(CHARGERS), st.sampled_from(CONNECTORS)), max_size=200))
def test_concurrent_starts_planned_before_any_write_get_distinct_ids(places):
    """Many starts planned before any of them is written (what concurrent handlers do
    around their awaits) still get distinct ids."""
    book = TransactionBook()
    book.add_ids(1, 1000)
    planned = [book.start(cp, c, "T", i, at(i)) for i, (cp, c) in enumerate(places)]
    ids = [p.transaction.transaction_id for p in planned]
    assert len(ids) == len(set(ids))


def test_reconnecting_again_and_again_does_not_keep_a_doubted_session_open():
    book, rows = book_with_ids(), Rows()
    tx = commit(book, rows, book.start("A", 1, "T", 0, at(0))).transaction
    book.apply(book.booted("A", at(10)))
    for t in range(60, 600, 60):  # a flapping charger: back every minute, never confirms
        book.apply(book.reconnected("A", at(t)))
    change = commit(book, rows, book.expire(at(400), 300, ["A"]))
    assert [t.transaction_id for t in change.closed] == [tx.transaction_id]


async def test_a_charger_claiming_year_9999_is_flagged_end_to_end(tmp_path):
    from tests.support import api, booted_ws, raw_call, running_backend, ws_url

    async with running_backend(str(tmp_path / "v4e.db")) as backend, api(backend) as client:
        async with booted_ws(f"{ws_url(backend)}/FUTURE1") as ws:

            async def call(uid, action, payload):
                answer = await raw_call(ws, uid, action, payload)
                assert answer[0] == 3, answer
                return answer[2]

            now = backend.csms.clock().isoformat().replace("+00:00", "Z")
            start = {"connectorId": 1, "idTag": "T1", "meterStart": 0, "timestamp": now}
            tx_id = (await call("s", "StartTransaction", start))["transactionId"]
            sample = {
                "timestamp": "9999-01-01T00:00:00Z",
                "sampledValue": [
                    {"value": "20000000000000", "measurand": "Energy.Active.Import.Register"}
                ],
            }
            await call(
                "m",
                "MeterValues",
                {"connectorId": 1, "transactionId": tx_id, "meterValue": [sample]},
            )
            stop = {
                "transactionId": tx_id,
                "meterStop": 2_000_000_000,
                "timestamp": "9999-01-01T00:00:00Z",
            }
            await call("t", "StopTransaction", stop)
        tx = (await client.get(f"/transactions/{tx_id}")).json()
        assert "implausible_energy" in tx["flags"], tx
        assert "timestamp_ahead_of_csms" in tx["flags"], tx
