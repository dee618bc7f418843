"""OCPP 2.0.1 sessions in the transaction book: TransactionEvent Started / Updated / Ended,
planned as one change each, with the same invariants as a 1.6 session.

Invariants (the state machine below checks them over random interleavings of many
sessions on several chargers, with resent events, lost events, failed writes and
restarts):

- one row per (charger, charger transaction id), whichever event arrives first and
  however often each is resent; CSMS ids unique;
- an event repeated (a ``seqNo`` not above the last recorded) writes nothing;
- a session ended by the charger never becomes active again;
- the acknowledged energy register never decreases;
- ``sequence_gap`` is flagged exactly when the received ``seqNo``\\ s of a session have a hole;
- nothing a charger reports is dropped: a session first heard of by an Updated or Ended
  event has its row (flagged ``started_unseen``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from libv4e.csms._registry import Transaction
from libv4e.csms._txbook import (
    ENDED,
    FLAG_METER_DECREASED,
    FLAG_METER_START_UNKNOWN,
    FLAG_REPORTED_OFFLINE,
    FLAG_SEQUENCE_GAP,
    FLAG_STARTED_UNSEEN,
    RECONCILED_SUPERSEDED,
    STARTED,
    UPDATED,
    Change,
    SessionEvent,
    TransactionBook,
)

T0 = dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


class Rows:
    """What a store does: an insert refuses a taken id and a taken (charger, charger
    transaction id) pair (the unique index), an update needs the row of that charger."""

    def __init__(self) -> None:
        self.rows: dict[int, Transaction] = {}
        self.history: dict[int, list[Transaction]] = {}

    def write(self, change: Change) -> None:
        pairs = {(t.cp_id, t.charger_transaction_id) for t in self.rows.values()}
        for tx in change.changed:
            old = self.rows.get(tx.transaction_id)
            assert old is not None, f"update of a missing row {tx.transaction_id}"
            assert (old.cp_id, old.charger_transaction_id) == (
                tx.cp_id,
                tx.charger_transaction_id,
            ), "a row was about to become another session"
            assert old.connector_id in (0, tx.connector_id), "a session moved to another EVSE"
        for tx in change.new:
            assert tx.transaction_id not in self.rows, f"id {tx.transaction_id} inserted twice"
            assert (tx.cp_id, tx.charger_transaction_id) not in pairs, "a session inserted twice"
        for tx in (*change.new, *change.changed):
            self.rows[tx.transaction_id] = tx
            self.history.setdefault(tx.transaction_id, []).append(tx)

    def of_charger(self, cp_id: str, charger_transaction_id: str) -> Transaction | None:
        for tx in self.rows.values():
            if (tx.cp_id, tx.charger_transaction_id) == (cp_id, charger_transaction_id):
                return tx
        return None


def book_with_ids(**kwargs) -> TransactionBook:
    book = TransactionBook(**kwargs)
    book.add_ids(1, 10_000)
    return book


def ev(kind: str, seq: int, t: float, *, tid: str = "a1", wh: float | None = None, **kw):
    return SessionEvent(
        kind=kind,
        charger_transaction_id=tid,
        seq_no=seq,
        connector_id=kw.pop("connector_id", 1),
        timestamp=at(t),
        energy_wh=wh,
        **kw,
    )


def send(book: TransactionBook, rows: Rows, cp: str, event: SessionEvent, t: float) -> Change:
    change = book.event(cp, event, received_at=at(t))
    rows.write(change)
    book.apply(change)
    return change


def test_a_session_started_without_an_evse_moves_to_the_evse_its_next_event_names():
    book, rows = book_with_ids(), Rows()
    started = send(book, rows, "CS1", ev(STARTED, 0, 0, wh=1000, connector_id=0), 0)
    tx = started.transaction
    assert tx is not None and tx.connector_id == 0 and book.active_on("CS1", 0) == tx
    send(book, rows, "CS1", ev(UPDATED, 1, 30, wh=1200, connector_id=2), 30)
    moved = book.active_on("CS1", 2)
    assert moved is not None and moved.transaction_id == tx.transaction_id
    assert book.active_on("CS1", 0) is None and rows.rows[tx.transaction_id].connector_id == 2
    # it stays where it is now; an event without an EVSE names the session's own
    send(book, rows, "CS1", ev(UPDATED, 2, 60, wh=1300, connector_id=2), 60)
    assert book.active_on("CS1", 2).transaction_id == tx.transaction_id
    # a session without an EVSE does not take an EVSE another session runs on
    send(book, rows, "CS1", ev(STARTED, 0, 70, tid="b2", wh=50, connector_id=0), 70)
    other = book.of_charger("CS1", "b2")
    send(book, rows, "CS1", ev(UPDATED, 1, 80, tid="b2", wh=60, connector_id=2), 80)
    assert book.active_on("CS1", 2).transaction_id == tx.transaction_id
    assert book.active_on("CS1", 0).transaction_id == other.transaction_id
    ended = send(book, rows, "CS1", ev(ENDED, 3, 90, wh=1400, connector_id=2), 90)
    assert ended.transaction.meter_stop == 1400 and book.active_on("CS1", 2) is None


def test_the_record_keeps_why_the_session_started_and_ended_and_offline_events():
    book, rows = book_with_ids(), Rows()
    started = send(book, rows, "CS1", ev(STARTED, 0, 0, wh=10, trigger_reason="CablePluggedIn"), 0)
    tx = started.transaction
    assert (tx.started_by, tx.ended_by, tx.flags) == ("CablePluggedIn", None, [])
    send(book, rows, "CS1", ev(UPDATED, 1, 30, wh=20, trigger_reason="MeterValuePeriodic"), 30)
    send(
        book,
        rows,
        "CS1",
        ev(UPDATED, 2, 60, wh=30, trigger_reason="MeterValuePeriodic", offline=True),
        90,
    )
    ended = send(
        book,
        rows,
        "CS1",
        ev(ENDED, 3, 70, wh=40, trigger_reason="StopAuthorized", reason="Local"),
        95,
    )
    done = rows.rows[tx.transaction_id]
    assert (done.started_by, done.ended_by, done.stop_reason) == (
        "CablePluggedIn",
        "StopAuthorized",
        "Local",
    )
    assert done.flags == [FLAG_REPORTED_OFFLINE] and ended.transaction == done
    # a session first heard of by its Ended: no Started trigger to keep
    late = send(
        book,
        rows,
        "CS1",
        ev(ENDED, 5, 99, tid="b2", wh=7, trigger_reason="EVCommunicationLost", offline=True),
        99,
    )
    assert (late.transaction.started_by, late.transaction.ended_by) == (None, "EVCommunicationLost")
    assert FLAG_REPORTED_OFFLINE in late.transaction.flags


def test_a_session_is_one_row_from_started_to_ended_and_repeats_write_nothing():
    book, rows = book_with_ids(), Rows()
    started = send(book, rows, "CS1", ev(STARTED, 0, 0, wh=1000, id_tag="TAG"), 0)
    tx = started.transaction
    assert tx is not None and started.new == (tx,)
    assert (tx.charger_transaction_id, tx.meter_start, tx.id_tag, tx.seq_no) == (
        "a1",
        1000,
        "TAG",
        0,
    )
    again = book.event("CS1", ev(STARTED, 0, 0, wh=1000, id_tag="TAG"), received_at=at(1))
    assert again.retry and not again.writes and again.transaction == tx

    send(book, rows, "CS1", ev(UPDATED, 1, 60, wh=1500), 60)
    assert book.event("CS1", ev(UPDATED, 1, 60, wh=1500), received_at=at(61)).retry
    ended = send(book, rows, "CS1", ev(ENDED, 2, 120, wh=2200, reason="EVDisconnected"), 120)
    done = ended.transaction
    assert done is not None and not done.active
    assert (done.meter_stop, done.stop_reason, done.energy_wh, done.seq_no) == (
        2200,
        "EVDisconnected",
        1200,
        2,
    )
    assert book.event("CS1", ev(ENDED, 2, 120, wh=2200), received_at=at(121)).retry
    assert list(rows.rows) == [tx.transaction_id] and done.flags == []


def test_the_same_charger_id_on_two_chargers_is_two_sessions():
    book, rows = book_with_ids(), Rows()
    a = send(book, rows, "CS1", ev(STARTED, 0, 0, wh=0), 0).transaction
    b = send(book, rows, "CS2", ev(STARTED, 0, 0, wh=0), 0).transaction
    assert a is not None and b is not None and a.transaction_id != b.transaction_id
    assert book.of_charger("CS1", "a1") == a and book.of_charger("CS2", "a1") == b


def test_a_hole_in_the_sequence_is_flagged_and_the_session_kept():
    book, rows = book_with_ids(), Rows()
    send(book, rows, "CS1", ev(STARTED, 0, 0, wh=0), 0)
    tx = send(book, rows, "CS1", ev(UPDATED, 3, 60, wh=500), 60).transaction
    assert tx is not None and FLAG_SEQUENCE_GAP in tx.flags and tx.last_meter_wh == 500


def test_a_session_first_heard_of_by_a_later_event_is_opened_and_flagged():
    book, rows = book_with_ids(), Rows()
    tx = send(book, rows, "CS1", ev(UPDATED, 4, 60, wh=700, id_tag="T"), 60).transaction
    assert tx is not None and tx.active and FLAG_STARTED_UNSEEN in tx.flags
    assert tx.meter_start == 700
    only_end = send(book, rows, "CS1", ev(ENDED, 9, 90, tid="b2", wh=50, connector_id=2), 90)
    done = only_end.transaction
    assert done is not None and not done.active and done.meter_stop == 50
    assert FLAG_STARTED_UNSEEN in done.flags
    assert book.active_on("CS1", 1) == book.get(tx.transaction_id), "nothing superseded"


def test_a_start_without_a_register_adopts_the_first_one_and_a_late_token():
    book, rows = book_with_ids(), Rows()
    tx = send(book, rows, "CS1", ev(STARTED, 0, 0), 0).transaction
    assert tx is not None and FLAG_METER_START_UNKNOWN in tx.flags and tx.id_tag == ""
    tx = send(book, rows, "CS1", ev(UPDATED, 1, 30, wh=42_000, id_tag="LATE"), 30).transaction
    assert tx is not None and tx.meter_start == 42_000 and tx.energy_wh == 0
    assert tx.id_tag == "LATE" and FLAG_METER_START_UNKNOWN not in tx.flags
    tx = send(book, rows, "CS1", ev(ENDED, 2, 600, wh=45_000), 600).transaction
    assert tx is not None and tx.energy_wh == 3000


def test_energy_never_decreases_and_non_finite_registers_are_ignored():
    book, rows = book_with_ids(), Rows()
    send(book, rows, "CS1", ev(STARTED, 0, 0, wh=1000), 0)
    send(book, rows, "CS1", ev(UPDATED, 1, 60, wh=1800), 60)
    tx = send(book, rows, "CS1", ev(UPDATED, 2, 120, wh=1200), 120).transaction
    assert tx is not None and tx.last_meter_wh == 1800 and FLAG_METER_DECREASED in tx.flags
    tx = send(book, rows, "CS1", ev(UPDATED, 3, 180, wh=float("nan")), 180).transaction
    assert tx is not None and tx.last_meter_wh == 1800 and tx.seq_no == 3


def test_an_ended_session_with_other_values_later_is_kept_as_conflicting():
    book, rows = book_with_ids(), Rows()
    send(book, rows, "CS1", ev(STARTED, 0, 0, wh=0), 0)
    send(book, rows, "CS1", ev(ENDED, 1, 60, wh=900), 60)
    late = book.event("CS1", ev(ENDED, 2, 70, wh=1900), received_at=at(70))
    assert late.unmatched is not None and late.unmatched.kind == "conflicting"
    assert late.changed == () and late.new == ()


def test_a_new_session_on_a_busy_connector_supersedes_the_old_one():
    book, rows = book_with_ids(), Rows()
    old = send(book, rows, "CS1", ev(STARTED, 0, 0, wh=0), 0).transaction
    new = send(book, rows, "CS1", ev(STARTED, 0, 60, tid="z9", wh=10), 60)
    assert old is not None and [t.reconciled for t in new.changed] == [RECONCILED_SUPERSEDED]
    assert book.active_on("CS1", 1) == new.transaction


def test_after_a_restart_the_books_read_back_recognise_resent_events():
    book, rows = book_with_ids(), Rows()
    first = send(book, rows, "CS1", ev(STARTED, 0, 0, wh=0), 0).transaction
    send(book, rows, "CS1", ev(UPDATED, 1, 60, wh=100), 60)
    restarted = TransactionBook()
    restarted.load(rows.rows.values())
    restarted.add_ids(5000, 100)
    assert restarted.event("CS1", ev(UPDATED, 1, 60, wh=100), received_at=at(70)).retry
    change = restarted.event("CS1", ev(UPDATED, 2, 90, wh=150), received_at=at(90))
    assert first is not None and change.transaction is not None
    assert change.transaction.transaction_id == first.transaction_id and not change.new


# -- random interleavings ----------------------------------------------------------------

CHARGERS = ("CS1", "CS2", "CS3")


@dataclasses.dataclass
class Session:
    cp: str
    tid: str
    connector: int
    events: list[SessionEvent]
    sent: int = 0  # events handed to the CSMS (or dropped) so far
    received: set[int] = dataclasses.field(default_factory=set)  # seqNos written


@settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
class SessionMachine(RuleBasedStateMachine):
    """Chargers report sessions event by event; the CSMS's writes may fail (nothing
    applied, the charger resends), events may be lost on the way (never seen) or
    resent after a lost answer, and the CSMS may restart from its rows."""

    @initialize()
    def setup(self) -> None:
        self.book = book_with_ids(keep_finished=5)
        self.rows = Rows()
        self.sessions: list[Session] = []
        self.clock = 0.0
        self.next_id = 10_001

    def tick(self) -> float:
        self.clock += 7.0
        return self.clock

    def deliver(self, s: Session, event: SessionEvent, fail: bool) -> None:
        now = self.tick()
        if self.book.of_charger(s.cp, s.tid) is None:  # as the handler: look it up
            stored = self.rows.of_charger(s.cp, s.tid)
            if stored is not None:
                self.book.load([stored])
        change = self.book.event(s.cp, event, received_at=at(now))
        if fail:
            return  # the write failed: nothing applied, the charger sends it again
        self.rows.write(change)
        self.book.apply(change)
        if change.unmatched is None:
            s.received.add(event.seq_no)

    @rule(
        cp=st.sampled_from(CHARGERS),
        connector=st.integers(1, 2),
        updates=st.integers(0, 4),
        start_wh=st.one_of(st.none(), st.integers(0, 10_000)),
        steps=st.lists(st.integers(0, 500), min_size=5, max_size=5),
    )
    def plug_in(self, cp, connector, updates, start_wh, steps) -> None:
        tid = f"{cp}-{len(self.sessions)}"
        t = self.clock
        wh = start_wh
        events = [
            SessionEvent(STARTED, tid, 0, connector, at(t), "TAG", None if wh is None else wh)
        ]
        base = wh or 0
        for i in range(updates):
            base += steps[i]
            events.append(SessionEvent(UPDATED, tid, i + 1, connector, at(t + i + 1), None, base))
        events.append(
            SessionEvent(ENDED, tid, updates + 1, connector, at(t + 99), None, base + steps[4])
        )
        self.sessions.append(Session(cp, tid, connector, events))

    def _pending(self) -> list[Session]:
        return [s for s in self.sessions if s.sent < len(s.events)]

    @precondition(lambda self: self._pending())
    @rule(
        data=st.data(),
        burst=st.integers(1, 4),
        fail=st.sampled_from([False, False, False, True]),
        lose=st.sampled_from([False, False, False, True]),
    )
    def next_events(self, data, burst: int, fail: bool, lose: bool) -> None:
        s = data.draw(st.sampled_from(self._pending()))
        for _ in range(burst):
            if s.sent >= len(s.events):
                return
            event = s.events[s.sent]
            if lose and event.kind != ENDED:  # lost on the way: never seen, sent no more
                s.sent += 1
                lose = False
                continue
            self.deliver(s, event, fail)
            if fail:
                return
            s.sent += 1

    @precondition(lambda self: any(s.received for s in self.sessions))
    @rule(data=st.data())
    def resend(self, data) -> None:
        done = [s for s in self.sessions if s.received]
        if done:
            s = data.draw(st.sampled_from(done))
            seq = data.draw(st.sampled_from(sorted(s.received)))
            before = len(self.rows.history.get(self._row(s).transaction_id, []))
            event = next(e for e in s.events if e.seq_no == seq)
            change = self.book.event(s.cp, event, received_at=at(self.tick()))
            if self.book.of_charger(s.cp, s.tid) is not None:
                assert change.retry and not change.writes, "a repeated event wrote something"
            assert len(self.rows.history[self._row(s).transaction_id]) == before

    @rule()
    def restart(self) -> None:
        self.book = TransactionBook(keep_finished=5)
        self.book.load(
            [t for t in self.rows.rows.values() if t.active]
            + sorted(
                (t for t in self.rows.rows.values() if not t.active),
                key=lambda t: t.transaction_id,
            )[-5:]
        )
        self.book.add_ids(self.next_id, 1000)
        self.next_id += 1000

    def _row(self, s: Session) -> Transaction:
        row = self.rows.of_charger(s.cp, s.tid)
        assert row is not None
        return row

    @invariant()
    def one_row_per_session_and_unique_ids(self) -> None:
        pairs = [(t.cp_id, t.charger_transaction_id) for t in self.rows.rows.values()]
        assert len(pairs) == len(set(pairs))
        assert len(self.rows.rows) == len({t.transaction_id for t in self.rows.rows.values()})
        heard = [s for s in self.sessions if s.received]
        assert len(self.rows.rows) == len(heard), "a session reported was dropped"

    @invariant()
    def gaps_flagged_exactly_and_first_event_flagged(self) -> None:
        for s in self.sessions:
            if not s.received:
                continue
            row = self._row(s)
            seqs = sorted(s.received)
            holes = set(range(seqs[0], seqs[-1] + 1)) - s.received
            assert (FLAG_SEQUENCE_GAP in row.flags) == bool(holes), (seqs, row.flags)
            assert (FLAG_STARTED_UNSEEN in row.flags) == (0 not in s.received)
            assert row.seq_no == seqs[-1]

    @invariant()
    def stopped_never_reopen_and_energy_never_decreases(self) -> None:
        for history in self.rows.history.values():
            stopped = False
            last = None
            for tx in history:
                assert not (stopped and tx.active), "a stopped session reopened"
                stopped = stopped or (not tx.active and tx.reconciled is None)
                if tx.last_meter_wh is not None and FLAG_METER_START_UNKNOWN not in tx.flags:
                    assert last is None or tx.last_meter_wh >= last
                    last = tx.last_meter_wh


TestSessionMachine = SessionMachine.TestCase


# -- the message read for the book -------------------------------------------------------


def test_the_energy_register_is_read_whatever_its_unit_and_form():
    from ocpp.v201 import datatypes

    from libv4e.csms._sessions201 import meter_register_wh

    def sv(value, **kw):
        return {"value": value, **kw}

    values = [
        {"timestamp": "t1", "sampledValue": [sv(1000)]},  # no measurand: the register, in Wh
        {
            "timestamp": "t2",
            "sampledValue": [
                sv(7.5, measurand="Energy.Active.Import.Register", unitOfMeasure={"unit": "kWh"}),
                sv(3.2, measurand="Power.Active.Import", unitOfMeasure={"unit": "kW"}),
                sv(99, measurand="Energy.Active.Import.Register", phase="L1"),  # a phase
            ],
        },
    ]
    assert meter_register_wh(values) == 7500
    assert meter_register_wh([{"sampledValue": [sv(2, unitOfMeasure={"multiplier": 3})]}]) == 2000
    assert meter_register_wh([{"sampledValue": [sv(5, unitOfMeasure={"unit": "A"})]}]) is None
    assert meter_register_wh([{"sampledValue": [sv(1e308, unitOfMeasure={"unit": "kWh"})]}]) is None
    assert meter_register_wh([{"sampledValue": [sv("12")]}]) is None
    assert meter_register_wh(None) is None
    typed = [
        datatypes.MeterValueType(
            timestamp="t",
            sampled_value=[
                datatypes.SampledValueType(
                    value=4.25, unit_of_measure=datatypes.UnitOfMeasureType(unit="kWh")
                )
            ],
        )
    ]
    assert meter_register_wh(typed) == 4250


def test_a_transaction_event_becomes_a_session_event():
    from ocpp.v201 import call, datatypes

    from libv4e.csms._sessions201 import connector_of, session_event

    msg = call.TransactionEvent(
        event_type="Ended",
        timestamp="2025-03-01T08:10:00Z",
        trigger_reason="EVCommunicationLost",
        seq_no=7,
        transaction_info=datatypes.TransactionType(
            transaction_id="tx-9", stopped_reason="EVDisconnected"
        ),
        meter_value=[{"timestamp": "x", "sampledValue": [{"value": 1234.0}]}],
        evse=datatypes.EVSEType(id=2, connector_id=1),
        id_token=datatypes.IdTokenType(id_token="CARD1", type="ISO14443"),
        reservation_id=4,
    )
    assert connector_of(msg.evse) == 2 and connector_of(None) is None
    assert connector_of({"id": 3}) == 3
    event = session_event(msg, at(600), connector_id=2, id_tag_status="Invalid")
    assert event == SessionEvent(
        kind=ENDED,
        charger_transaction_id="tx-9",
        seq_no=7,
        connector_id=2,
        timestamp=at(600),
        id_tag="CARD1",
        energy_wh=1234.0,
        reason="EVDisconnected",
        reservation_id=4,
        id_tag_status="Invalid",
        id_token_type="ISO14443",
        trigger_reason="EVCommunicationLost",
    )
    as_dicts = call.TransactionEvent(
        event_type="Started",
        timestamp="2025-03-01T08:00:00Z",
        trigger_reason="Authorized",
        seq_no=0,
        transaction_info={"transactionId": "tx-10"},
        id_token={"idToken": "CARD2", "type": "Central"},
        offline=True,
    )
    event = session_event(as_dicts, at(0), connector_id=1)
    assert (event.kind, event.charger_transaction_id, event.id_tag, event.energy_wh) == (
        STARTED,
        "tx-10",
        "CARD2",
        None,
    )
    assert (event.trigger_reason, event.offline) == ("Authorized", True)


def test_an_update_after_a_reboot_shows_the_session_alive():
    book, rows = book_with_ids(), Rows()
    tx = send(book, rows, "CS1", ev(STARTED, 0, 0, wh=0), 0).transaction
    book.apply(book.booted("CS1", at(10)))
    assert tx is not None and tx.transaction_id in book.suspects()
    send(book, rows, "CS1", ev(UPDATED, 1, 20, wh=10), 20)
    assert book.suspects() == {}


def test_a_start_without_a_register_ended_with_one_is_not_billed_the_lifetime_register():
    # Started carries no register (TxStartedMeasurands empty) and no Updated carries one:
    # the Ended's register is the first the CSMS learns, so it is the start as well
    book, rows = book_with_ids(), Rows()
    send(book, rows, "CS1", ev(STARTED, 0, 0), 0)
    done = send(book, rows, "CS1", ev(ENDED, 1, 600, wh=12_345_678), 600).transaction
    assert done is not None and not done.active and done.meter_stop == 12_345_678
    assert done.meter_start == 12_345_678 and done.energy_wh == 0
    assert FLAG_METER_START_UNKNOWN in done.flags


def test_an_ended_event_for_a_session_only_the_store_has_stops_it():
    # closed by the CSMS (here: superseded), then gone from the book (a restart keeping
    # no finished sessions): the charger's Ended, read back from the store, is recorded
    book, rows = book_with_ids(), Rows()
    first = send(book, rows, "CS1", ev(STARTED, 0, 0, wh=100), 0).transaction
    send(book, rows, "CS1", ev(STARTED, 0, 60, tid="b2", wh=900), 60)
    assert first is not None
    closed = rows.rows[first.transaction_id]
    assert not closed.active and closed.reconciled == RECONCILED_SUPERSEDED
    restarted = TransactionBook(keep_finished=0)
    restarted.load(rows.rows.values())
    restarted.add_ids(5000, 100)
    assert restarted.of_charger("CS1", "a1") is None
    ended = restarted.event("CS1", ev(ENDED, 1, 50, wh=800), received_at=at(120), stored=closed)
    assert ended.unmatched is None
    assert [t.transaction_id for t in ended.changed] == [first.transaction_id]
    assert ended.changed[0].meter_stop == 800 and ended.changed[0].seq_no == 1


def test_an_ended_event_whose_seq_no_restarted_still_ends_the_session():
    # a station that lost its counter (a reboot mid-session) numbers from 0 again: an
    # Ended is never a resend of an event recorded while the session runs
    book, rows = book_with_ids(), Rows()
    tx = send(book, rows, "CS1", ev(STARTED, 0, 0, wh=1000), 0).transaction
    send(book, rows, "CS1", ev(UPDATED, 41, 60, wh=1500), 60)
    ended = send(book, rows, "CS1", ev(ENDED, 2, 600, wh=4000, reason="EVDisconnected"), 600)
    assert tx is not None and not ended.retry
    done = book.get(tx.transaction_id)
    assert done is not None and not done.active and done.meter_stop == 4000
    assert done.stop_reason == "EVDisconnected" and done.seq_no == 41
    assert book.event("CS1", ev(ENDED, 2, 600, wh=4000), received_at=at(601)).retry
