"""The operator books as plain objects: reservations, charging profiles and
local lists, driven without sockets; their state machines checked as data and, for
reservations, through random interleavings (Hypothesis stateful testing)."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from libv4e.csms._auth import IdTag
from libv4e.csms._books import HISTORY_LIMIT, InvalidTransition
from libv4e.csms._locallists import LocalListBook
from libv4e.csms._profiles import PROFILE_TRANSITIONS, ProfileBook, ProfileStatus, limit_at
from libv4e.csms._reservations import (
    ACTIVE,
    RESERVATION_TRANSITIONS,
    ReservationBook,
    ReservationConflictError,
    ReservationStatus,
)
from libv4e.csms._sqlite import SqliteStore
from libv4e.protocol._validation import schema_for
from libv4e_apps.csms.models import COMMANDS, ChargingProfileModel, SendLocalListBody

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


# -- reservations ---------------------------------------------------------------------------


def test_reservation_machine_has_final_states_only_where_the_spec_ends_a_reservation():
    sources = {s for s, _ in RESERVATION_TRANSITIONS}
    final = set(ReservationStatus) - sources
    assert final == {
        ReservationStatus.USED,
        ReservationStatus.CANCELLED,
        ReservationStatus.EXPIRED,
        ReservationStatus.FAULTED,
        ReservationStatus.OCCUPIED,
        ReservationStatus.REJECTED,
        ReservationStatus.UNAVAILABLE,
    }
    assert final.isdisjoint(ACTIVE)


def test_reservation_ids_are_allocated_uniquely_and_past_explicit_ones():
    book = ReservationBook()
    a = book.request("CP1", 1, "T", at(60), T0)
    b = book.request("CP2", 1, "T", at(60), T0, reservation_id=100)
    c = book.request("CP1", 1, "T", at(60), T0)
    assert (a.reservation_id, b.reservation_id, c.reservation_id) == (1, 100, 101)


def test_an_active_reservation_id_cannot_move_to_another_charger():
    book = ReservationBook()
    book.request("CP1", 1, "T", at(60), T0, reservation_id=5)
    book.answered(5, "Accepted", T0)
    with pytest.raises(ReservationConflictError):
        book.request("CP2", 1, "T", at(60), T0, reservation_id=5)
    # on the same charger ReserveNow with the same id replaces it (OCPP 1.6, 5.13)
    again = book.request("CP1", 2, "U", at(90), at(1), reservation_id=5)
    assert (again.status, again.connector_id, again.id_tag) == ("Pending", 2, "U")
    book.answered(5, "Occupied", at(2))
    # once finished, the id may be used again anywhere
    fresh = book.request("CP2", 1, "T", at(60), at(3), reservation_id=5)
    assert (fresh.cp_id, fresh.status) == ("CP2", "Pending")


def test_reservation_used_cancelled_expired():
    book = ReservationBook()
    used = book.request("CP1", 1, "T", at(60), T0)
    book.answered(used.reservation_id, "Accepted", at(1))
    assert book.used("CP2", used.reservation_id, 7, at(2)) is None  # another charger's
    assert book.used("CP1", used.reservation_id, 7, at(2)) is used
    assert (used.status, used.transaction_id) == ("Used", 7)
    assert book.used("CP1", used.reservation_id, 8, at(3)) is None  # used once only

    cancelled = book.request("CP1", 2, "T", at(60), T0)
    book.answered(cancelled.reservation_id, "Accepted", at(1))
    book.cancel_answered("CP1", cancelled.reservation_id, "Rejected", at(2))
    assert cancelled.status == "Reserved" and cancelled.cancel_status == "Rejected"
    book.cancel_answered("CP1", cancelled.reservation_id, "Accepted", at(3))
    assert cancelled.status == "Cancelled"

    expiring = book.request("CP1", 3, "T", at(10), T0)
    book.unanswered(expiring.reservation_id, "timeout", at(1))
    assert expiring.status == "Unanswered"
    assert book.expire(at(9)) == []
    assert book.expire(at(10)) == [expiring]
    assert expiring.status == "Expired"
    assert [h.status for h in expiring.history] == ["Pending", "Unanswered", "Expired"]


def test_reservation_records_survive_a_store_round_trip(tmp_path):
    import trio

    async def main():
        store = SqliteStore(tmp_path / "r.db")
        await store.open()
        book = ReservationBook()
        record = book.request("CP1", 1, "T", at(60), T0, parent_id_tag="P")
        book.answered(record.reservation_id, "Accepted", at(1))
        await store.save_reservation(record)
        loaded = await store.load_reservations()
        assert loaded == [record]
        assert await store.reservation(record.reservation_id) == record
        assert await store.last_reservation_id() == record.reservation_id
        found = await store.reservations(cp_id="CP1", status="Reserved", limit=10, offset=0)
        assert found == [record]
        assert await store.reservations(cp_id="CP2", status=None, limit=10, offset=0) == []
        await store.close()

    trio.run(main)


class ReservationInterleavings(RuleBasedStateMachine):
    """Any order of requests, answers, starts, cancels and time keeps the book sound."""

    @initialize()
    def start(self):
        self.book = ReservationBook()
        self.now = T0
        self.seen_ids: set[int] = set()
        self.final: dict[int, str] = {}
        self.next_tx = 1

    def ids(self):
        return [r.reservation_id for r in self.book]

    @rule(
        cp=st.sampled_from(["CP1", "CP2"]),
        explicit=st.none() | st.integers(1, 6),
        life=st.integers(1, 100),
    )
    def request(self, cp, explicit, life):
        try:
            record = self.book.request(
                cp, 1, "T", self.now + dt.timedelta(seconds=life), self.now, reservation_id=explicit
            )
        except ReservationConflictError:
            return
        if explicit is None:
            assert record.reservation_id not in self.seen_ids
        self.seen_ids.add(record.reservation_id)
        self.final.pop(record.reservation_id, None)

    @rule(
        data=st.data(),
        answer=st.sampled_from(
            ["Accepted", "Faulted", "Occupied", "Rejected", "Unavailable", "no_answer"]
        ),
    )
    def answer(self, data, answer):
        pending = [r for r in self.book if r.status == "Pending"]
        if not pending:
            return
        record = data.draw(st.sampled_from(pending))
        if answer == "no_answer":
            self.book.unanswered(record.reservation_id, "timeout", self.now)
        else:
            self.book.answered(record.reservation_id, answer, self.now)

    @rule(data=st.data())
    def start_transaction(self, data):
        ids = self.ids()
        if not ids:
            return
        rid = data.draw(st.sampled_from(ids))
        record = self.book.get(rid)
        was_active = record.active
        result = self.book.used(record.cp_id, rid, self.next_tx, self.now)
        assert (result is not None) == was_active
        self.next_tx += 1

    @rule(data=st.data(), accepted=st.booleans())
    def cancel(self, data, accepted):
        ids = self.ids()
        if ids:
            rid = data.draw(st.sampled_from(ids))
            cp = self.book.get(rid).cp_id
            self.book.cancel_answered(cp, rid, "Accepted" if accepted else "Rejected", self.now)

    @rule(seconds=st.integers(1, 60))
    def time_passes(self, seconds):
        self.now += dt.timedelta(seconds=seconds)
        for record in self.book.expire(self.now):
            assert record.expiry_date <= self.now

    @invariant()
    def sound(self):
        for record in self.book:
            # every step of its history is a transition of the table
            steps = [h.status for h in record.history]
            for before, after in itertools.pairwise(steps):
                assert any(
                    (s, e) in RESERVATION_TRANSITIONS and RESERVATION_TRANSITIONS[s, e] == after
                    for s, e in RESERVATION_TRANSITIONS
                    if s == before
                ), (before, after)
            assert (record.status == "Used") == (record.transaction_id is not None)
            if record.status in ("Reserved", "Unanswered"):
                assert record.expiry_date > self.now  # nothing stale stays Reserved
            assert len(record.history) <= HISTORY_LIMIT
        # at most one active reservation per id, and ids are unique by construction
        assert len(self.ids()) == len(set(self.ids()))
        transactions = [r.transaction_id for r in self.book if r.transaction_id is not None]
        assert len(transactions) == len(set(transactions))


ReservationInterleavings.TestCase.settings = settings(max_examples=60, deadline=None)
TestReservationInterleavings = ReservationInterleavings.TestCase


# -- charging profiles ------------------------------------------------------------------------


def cp_profile(pid, purpose, limit, stack=0, **extra):
    return {
        "chargingProfileId": pid,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
        },
        **extra,
    }


def installed(book, cp_id, connector, profile, now=T0):
    record = book.sent(cp_id, connector, profile, now)
    book.answered(record.record_id, "Accepted", now)
    return record


def test_profile_machine_only_an_installed_profile_can_be_cleared_replaced_or_ended():
    for (status, event), _ in PROFILE_TRANSITIONS.items():
        if event in ("cleared", "replaced", "transaction_ended"):
            assert status == ProfileStatus.INSTALLED
    book = ProfileBook()
    rejected = book.sent("CP1", 1, cp_profile(1, "TxProfile", 1.0), T0)
    book.answered(rejected.record_id, "Rejected", T0)
    assert book.cleared([rejected], T0) == []
    with pytest.raises(InvalidTransition):
        rejected.apply(ProfileEvent_cleared(), T0)


def ProfileEvent_cleared():
    from libv4e.csms._profiles import ProfileEvent

    return ProfileEvent.CLEARED


def test_a_new_profile_replaces_same_id_or_same_purpose_and_stack_level_on_the_connector():
    book = ProfileBook()
    a = installed(book, "CP1", 1, cp_profile(1, "TxDefaultProfile", 1.0, stack=1))
    b = installed(book, "CP1", 2, cp_profile(2, "TxDefaultProfile", 1.0, stack=1))
    c = installed(book, "CP1", 1, cp_profile(3, "TxDefaultProfile", 1.0, stack=2))
    other = installed(book, "CP2", 1, cp_profile(1, "TxDefaultProfile", 1.0, stack=1))
    d = installed(book, "CP1", 1, cp_profile(4, "TxDefaultProfile", 2.0, stack=1))  # slot of a
    e = installed(book, "CP1", 0, cp_profile(3, "TxDefaultProfile", 2.0, stack=5))  # id of c
    assert [r.status for r in (a, b, c, other, d, e)] == [
        "Replaced",
        "Installed",
        "Replaced",
        "Installed",
        "Installed",
        "Installed",
    ]


@pytest.mark.parametrize(
    ("criteria", "cleared"),
    [
        ({"profile_id": 2}, {2}),
        ({"profile_id": 2, "connector_id": 0}, {2}),  # with an id, other criteria are ignored
        ({"connector_id": 0}, {1}),
        ({"connector_id": 1}, {2, 3}),
        ({"purpose": "TxDefaultProfile"}, {2, 4}),
        ({"connector_id": 1, "stack_level": 3}, {3}),
        ({}, {1, 2, 3, 4}),
        ({"profile_id": 9}, set()),
    ],
)
def test_clear_charging_profile_matching(criteria, cleared):
    book = ProfileBook()
    installed(book, "CP1", 0, cp_profile(1, "ChargePointMaxProfile", 1.0))
    installed(book, "CP1", 1, cp_profile(2, "TxDefaultProfile", 1.0, stack=1))
    installed(book, "CP1", 1, cp_profile(3, "TxProfile", 1.0, stack=3, transactionId=1))
    installed(book, "CP1", 2, cp_profile(4, "TxDefaultProfile", 1.0, stack=1))
    installed(book, "CP2", 1, cp_profile(2, "TxDefaultProfile", 1.0, stack=1))
    args = {"profile_id": None, "connector_id": None, "purpose": None, "stack_level": None}
    args.update(criteria)
    matched = book.matching("CP1", *args.values())
    assert {r.charging_profile_id for r in matched} == cleared
    book.cleared(matched, T0)
    assert [r.charging_profile_id for r in book.installed("CP2")] == [2]


def test_tx_profiles_end_with_their_transaction():
    book = ProfileBook()
    bound = installed(book, "CP1", 1, cp_profile(1, "TxProfile", 1.0, transactionId=5))
    unbound = installed(book, "CP1", 2, cp_profile(2, "TxProfile", 1.0))
    default = installed(book, "CP1", 1, cp_profile(3, "TxDefaultProfile", 1.0))
    assert book.end_transactions({("CP1", 1): 5}, T0) == []
    assert book.end_transactions({("CP1", 1): 5, ("CP1", 2): 6}, T0) == [unbound]
    assert unbound.transaction_id == 6
    anywhere = installed(book, "CP1", 0, cp_profile(4, "TxProfile", 1.0))  # no connector given
    assert book.end_transactions({("CP1", 1): 5, ("CP1", 2): 6, ("CP1", 3): 8}, T0) == [anywhere]
    assert (anywhere.connector_id, anywhere.transaction_id) == (3, 8)
    changed = book.end_transactions({}, at(1))
    assert {r.record_id for r in changed} == {
        bound.record_id,
        unbound.record_id,
        anywhere.record_id,
    }
    assert (bound.status, unbound.status, default.status) == ("Ended", "Ended", "Installed")


def test_believed_limit_follows_stack_levels_purposes_and_validity():
    book = ProfileBook()
    installed(book, "CP1", 0, cp_profile(1, "ChargePointMaxProfile", 11000.0))
    installed(book, "CP1", 1, cp_profile(2, "TxDefaultProfile", 7000.0, stack=1))
    installed(book, "CP1", 1, cp_profile(3, "TxDefaultProfile", 9000.0, stack=2))
    assert limit_at(book.installed("CP1"), T0)[:2] == (9000.0, "W")
    installed(
        book,
        "CP1",
        1,
        cp_profile(
            4,
            "TxProfile",
            16000.0,
            chargingSchedule={
                "chargingRateUnit": "W",
                "startSchedule": "2024-05-01T12:00:00Z",
                "duration": 600,
                "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 16000.0},
                    {"startPeriod": 300, "limit": 3000.0},
                ],
            },
        ),
    )
    profiles = book.installed("CP1")
    assert limit_at(profiles, at(10))[:2] == (11000.0, "W")  # the charger-wide maximum wins
    assert limit_at(profiles, at(400))[:2] == (3000.0, "W")
    assert limit_at(profiles, at(700))[:2] == (9000.0, "W")  # the TxProfile's schedule ended
    assert limit_at([], T0) is None


# -- local lists ------------------------------------------------------------------------------


def test_local_list_full_then_differential():
    book = LocalListBook()
    assert book.next_version("CP1", 0) == 1
    full = book.sending("CP1", 1, "Full", [IdTag("A"), IdTag("B", "Blocked")], [], T0)
    assert book.next_version("CP1", 0) == 2  # never reuse a version sent
    state = book.answered("CP1", full, "Accepted", at(1))
    assert (state.list_version, state.complete, sorted(state.entries)) == (1, True, ["A", "B"])
    diff = book.sending("CP1", 2, "Differential", [IdTag("C")], ["B", "Z"], at(2))
    book.answered("CP1", diff, "Accepted", at(3))
    assert sorted(state.entries) == ["A", "C"] and state.list_version == 2
    stale = book.sending("CP1", 2, "Differential", [IdTag("D")], [], at(4))
    book.answered("CP1", stale, "VersionMismatch", at(5))
    assert sorted(state.entries) == ["A", "C"] and state.list_version == 2
    lost = book.sending("CP1", 3, "Full", [], [], at(6))
    book.answered("CP1", lost, "no_answer", at(7), "timeout")
    assert lost.status == "Unanswered" and state.list_version == 2
    with pytest.raises(InvalidTransition):
        book.answered("CP1", lost, "Accepted", at(8))  # answered once
    with pytest.raises(InvalidTransition):
        book.sending("CP1", 4, "Full", [], ["A"], at(8))  # Full cannot remove
    assert book.next_version("CP1", 10) == 10
    book.reported("CP1", 40, at(9))
    assert book.next_version("CP1", 10) == 41
    assert [u.status for u in state.updates] == [
        "Accepted",
        "Accepted",
        "VersionMismatch",
        "Unanswered",
    ]


# -- the REST surface covers every parameter of every operator command ------------------------

OPERATOR_ACTIONS = {
    # Core
    "ChangeAvailability": "change_availability",
    "ChangeConfiguration": "change_configuration",
    "ClearCache": "clear_cache",
    "DataTransfer": "data_transfer",
    "GetConfiguration": "get_configuration",
    "RemoteStartTransaction": "remote_start",
    "RemoteStopTransaction": "remote_stop",
    "Reset": "reset",
    "UnlockConnector": "unlock_connector",
    # Firmware Management
    "GetDiagnostics": "get_diagnostics",
    "UpdateFirmware": "update_firmware",
    # Local Auth List Management
    "GetLocalListVersion": "get_local_list_version",
    "SendLocalList": "send_local_list",
    # Reservation
    "ReserveNow": "reserve_now",
    "CancelReservation": "cancel_reservation",
    # Smart Charging
    "SetChargingProfile": "set_charging_profile",
    "ClearChargingProfile": "clear_charging_profile",
    "GetCompositeSchedule": "get_composite_schedule",
    # Remote Trigger
    "TriggerMessage": "trigger_message",
}
RENAMED = {("GetConfiguration", "key"): "keys"}


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


@pytest.mark.parametrize("action", sorted(OPERATOR_ACTIONS))
def test_every_operator_command_takes_every_field_of_its_ocpp_schema(action):
    route = OPERATOR_ACTIONS[action]
    model = SendLocalListBody if route == "send_local_list" else COMMANDS[route]
    schema = schema_for("call", action)
    fields = set(model.model_fields)
    for prop in schema.get("properties", {}):
        assert RENAMED.get((action, prop), _snake(prop)) in fields, (action, prop)
    profile = schema.get("properties", {}).get("csChargingProfiles") or schema.get(
        "properties", {}
    ).get("chargingProfile")
    if profile is not None:  # the nested ChargingProfile, field by field
        aliases = {f.alias or n for n, f in ChargingProfileModel.model_fields.items()}
        assert set(profile["properties"]) <= aliases
        schedule = ChargingProfileModel.model_fields["charging_schedule"].annotation
        inner = {f.alias or n for n, f in schedule.model_fields.items()}
        assert set(profile["properties"]["chargingSchedule"]["properties"]) <= inner


# -- firmware and diagnostics ------------------------------------------------------------------


def test_firmware_progress_follows_the_reports_of_the_request_outstanding():
    from libv4e.csms._firmware import FirmwareBook

    book = FirmwareBook()
    book.reported("CP1", "firmware", "Idle", T0)  # e.g. a TriggerMessage: no request
    state = book.requested("CP1", "UpdateFirmware", "https://fw/1.bin", {"retries": 2}, at(1))
    for i, status in enumerate(["Downloading", "Downloaded", "Installing", "Installed"]):
        book.reported("CP1", "firmware", status, at(2 + i))
    assert state.update is not None
    assert (state.update.status, state.update.done) == ("Installed", True)
    book.reported("CP1", "firmware", "Idle", at(9))  # after the end: the charger's status only
    assert (state.firmware_status, state.update.status) == ("Idle", "Installed")
    diag = book.requested("CP1", "GetDiagnostics", "ftp://up/", {}, at(10)).diagnostics
    assert diag is not None
    book.unanswered(diag, "timeout", at(11))
    book.reported("CP1", "diagnostics", "Uploading", at(12))
    assert (diag.status, diag.done) == ("Unanswered", True)
    assert [h.status for h in diag.history] == ["Requested", "Unanswered"]
    assert state.diagnostics_status == "Uploading"


async def test_operate_returns_a_typed_outcome_also_when_the_exchange_fails():
    """``operate`` has no out-parameter: the Outcome carries the answer or the error and
    the records touched; ``answer()`` gives the one or raises the other."""
    from ocpp.v16 import call as calls

    from libv4e import ChargerNotConnectedError
    from libv4e.csms import CentralSystem, CsmsConfig, Outcome, SqliteStore

    store = SqliteStore(":memory:")
    await store.open()
    csms = CentralSystem(store, CsmsConfig())
    await csms.load()
    outcome = await csms.operate("NOBODY", calls.ReserveNow(1, "2030-01-01T00:00:00Z", "TAG", 7))
    assert isinstance(outcome, Outcome)
    assert outcome.result is None and isinstance(outcome.error, ChargerNotConnectedError)
    with pytest.raises(ChargerNotConnectedError):
        outcome.answer()
    assert Outcome("answer", {"reservation": {}}).answer() == "answer"
