"""A 2.0.1 charger's TransactionEvents booked by the central system: one change and one
store write per event, retries recognised across a restart of the CSMS, the meter values
an event carries stored with it, the id token answered with idTokenInfo.

These drive the booking the 2.0.1 handlers call (:func:`answer_transaction_event`)
against a real SQLite store, without a socket: the wire is tested with the handlers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ocpp.v201 import call, datatypes

from libv4e.csms import CentralSystem, SqliteStore
from libv4e.csms._auth import IdTag, UnknownTagPolicy
from libv4e.csms._sessions201 import answer_transaction_event
from libv4e.csms._txbook import FLAG_SEQUENCE_GAP

T0 = dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.UTC)


class Counting(SqliteStore):
    def __init__(self, path: Any) -> None:
        super().__init__(path)
        self.writes = 0

    async def write_transactions(self, new, changed, **rows):
        self.writes += 1
        return await super().write_transactions(new, changed, **rows)


async def central(path) -> CentralSystem:
    store = Counting(path)
    await store.open()
    csms = CentralSystem(store, clock=lambda: T0 + dt.timedelta(minutes=5))
    await csms.load()
    return csms


def event(
    kind: str, seq: int, minute: int, *, wh: float | None = None, **kw
) -> call.TransactionEvent:
    return call.TransactionEvent(
        event_type=kind,
        timestamp=(T0 + dt.timedelta(minutes=minute)).isoformat(),
        trigger_reason=kw.pop("trigger_reason", "Authorized"),
        seq_no=seq,
        transaction_info=datatypes.TransactionType(
            transaction_id=kw.pop("tid", "tx-1"), stopped_reason=kw.pop("reason", None)
        ),
        meter_value=None
        if wh is None
        else [
            datatypes.MeterValueType(
                timestamp=(T0 + dt.timedelta(minutes=minute)).isoformat(),
                sampled_value=[
                    datatypes.SampledValueType(
                        value=wh,
                        measurand="Energy.Active.Import.Register",
                        unit_of_measure=datatypes.UnitOfMeasureType(unit="Wh"),
                    )
                ],
            )
        ],
        **kw,
    )


async def book(csms: CentralSystem, cp: str, msg: call.TransactionEvent):
    return await answer_transaction_event(csms._handler_parts, cp, msg, lambda result: None)


async def test_a_session_is_one_row_one_write_per_event_and_resent_events_write_nothing(tmp_path):
    csms = await central(tmp_path / "v4e.db")
    await csms.upsert_tag(IdTag("CARD1"))
    started = event(
        "Started",
        0,
        0,
        wh=1000,
        evse=datatypes.EVSEType(id=2, connector_id=1),
        id_token=datatypes.IdTokenType(id_token="CARD1", type="ISO14443"),
    )
    result, _, _ = await book(csms, "CS1", started)
    assert result.id_token_info.status == "Accepted"
    tx = csms.transactions.of_charger("CS1", "tx-1")
    assert tx is not None and tx.connector_id == 2 and tx.id_tag == "CARD1" and tx.active
    assert csms.registry.get("CS1").connectors[2].transaction_id == tx.transaction_id
    assert csms.store.writes == 1

    await book(csms, "CS1", started)  # the answer was lost: sent again
    assert csms.store.writes == 1
    await book(csms, "CS1", event("Updated", 1, 2, wh=1600, trigger_reason="MeterValuePeriodic"))
    await book(csms, "CS1", event("Updated", 1, 2, wh=1600, trigger_reason="MeterValuePeriodic"))
    assert csms.store.writes == 2
    values = await csms.store.meter_values(tx.transaction_id)
    assert [v["sampledValue"][0]["value"] for v in values] == [1000, 1600]

    await book(csms, "CS1", event("Ended", 3, 4, wh=2500, reason="EVDisconnected"))
    done = await csms.store.transaction(tx.transaction_id)
    assert done is not None and not done.active
    assert (done.meter_start, done.meter_stop, done.energy_wh) == (1000, 2500, 1500)
    assert done.stop_reason == "EVDisconnected" and FLAG_SEQUENCE_GAP in done.flags
    assert csms.registry.get("CS1").connectors[2].transaction_id is None
    assert csms.store.writes == 3
    rows = await csms.store.transactions(cp_id="CS1", active=None, limit=10, offset=0)
    assert [r.transaction_id for r in rows] == [tx.transaction_id]
    await csms.store.close()


async def test_after_a_restart_a_resent_event_is_recognised_from_the_store(tmp_path):
    path = tmp_path / "v4e.db"
    csms = await central(path)
    await book(csms, "CS1", event("Started", 0, 0, wh=0, evse=datatypes.EVSEType(id=1)))
    await book(csms, "CS1", event("Updated", 1, 1, wh=300))
    first = csms.transactions.of_charger("CS1", "tx-1")
    await csms.store.close()

    again = await central(path)  # a new process on the same database
    await book(again, "CS1", event("Updated", 1, 1, wh=300))  # resent after the restart
    assert again.store.writes == 0
    await book(again, "CS1", event("Ended", 2, 2, wh=450, reason="Local"))
    rows = await again.store.transactions(cp_id="CS1", active=None, limit=10, offset=0)
    assert len(rows) == 1 and rows[0].transaction_id == first.transaction_id
    assert rows[0].meter_stop == 450 and not rows[0].active
    await again.store.close()


async def test_an_ended_session_resent_after_it_left_the_book_is_still_a_retry(tmp_path):
    csms = await central(tmp_path / "v4e.db")
    csms.transactions.keep_finished = 0  # finished sessions leave memory at once
    await book(csms, "CS1", event("Started", 0, 0, wh=0, evse=datatypes.EVSEType(id=1)))
    await book(csms, "CS1", event("Ended", 1, 1, wh=90))
    assert csms.transactions.of_charger("CS1", "tx-1") is None
    writes = csms.store.writes
    await book(csms, "CS1", event("Ended", 1, 1, wh=90))
    assert csms.store.writes == writes
    assert len(await csms.store.transactions(cp_id="CS1", active=None, limit=9, offset=0)) == 1
    await csms.store.close()


async def test_an_unknown_token_is_answered_invalid_and_the_session_still_recorded(tmp_path):
    csms = await central(tmp_path / "v4e.db")
    csms.auth.unknown = UnknownTagPolicy.REJECT
    result, _, _ = await book(
        csms,
        "CS1",
        event(
            "Started",
            0,
            0,
            wh=5,
            evse=datatypes.EVSEType(id=1),
            id_token=datatypes.IdTokenType(id_token="STRANGER", type="ISO14443"),
        ),
    )
    tx = csms.transactions.of_charger("CS1", "tx-1")
    assert tx is not None and tx.id_tag == "STRANGER"
    assert result.id_token_info.status == tx.id_tag_status == "Invalid"
    await csms.store.close()


async def test_a_no_authorization_token_is_accepted_as_authorize_answers_it(tmp_path):
    # a free-vend station starts its sessions with idToken type NoAuthorization (its
    # idToken empty): Invalid would stop the charging (StopTxOnInvalidId)
    csms = await central(tmp_path / "v4e.db")
    csms.auth.unknown = UnknownTagPolicy.REJECT
    result, _, _ = await book(
        csms,
        "CS1",
        event(
            "Started",
            0,
            0,
            wh=5,
            evse=datatypes.EVSEType(id=1),
            id_token=datatypes.IdTokenType(id_token="", type="NoAuthorization"),
        ),
    )
    tx = csms.transactions.of_charger("CS1", "tx-1")
    assert tx is not None and tx.id_tag_status == "Accepted"
    assert result.id_token_info.status == "Accepted"
    await csms.store.close()


def ended_with_samples(seq: int, tid: str, begin: float, end: float) -> call.TransactionEvent:
    """An Ended event carrying the session's TxEndedMeasurands: its register sampled at
    the start (context Transaction.Begin) and at the end (Transaction.End)."""

    def sample(minute: int, wh: float, context: str) -> datatypes.MeterValueType:
        return datatypes.MeterValueType(
            timestamp=(T0 + dt.timedelta(minutes=minute)).isoformat(),
            sampled_value=[
                datatypes.SampledValueType(
                    value=wh, context=context, measurand="Energy.Active.Import.Register"
                )
            ],
        )

    msg = event("Ended", seq, 30, tid=tid, evse=datatypes.EVSEType(id=1))
    msg.meter_value = [sample(0, begin, "Transaction.Begin"), sample(30, end, "Transaction.End")]
    return msg


async def test_an_ended_event_s_transaction_begin_register_is_the_session_s_start(tmp_path):
    csms = await central(tmp_path / "v4e.db")
    # Started without a register (TxStartedMeasurands empty), then the Ended's samples
    await book(csms, "CS1", event("Started", 0, 0, evse=datatypes.EVSEType(id=1)))
    await book(csms, "CS1", ended_with_samples(1, "tx-1", 10_000, 12_500))
    # a session heard of only by its Ended event (its Started lost)
    await book(csms, "CS1", ended_with_samples(7, "tx-2", 50_000, 50_750))
    done = {
        tx.charger_transaction_id: tx
        for tx in await csms.store.transactions(cp_id="CS1", active=None, limit=9, offset=0)
    }
    assert (done["tx-1"].meter_start, done["tx-1"].meter_stop) == (10_000, 12_500)
    assert (done["tx-2"].meter_start, done["tx-2"].meter_stop) == (50_000, 50_750)
    assert done["tx-1"].energy_wh == 2500 and done["tx-2"].energy_wh == 750
    await csms.store.close()
