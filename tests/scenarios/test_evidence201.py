"""A 2.0.1 station's log read in the 1.6 terms the diagnosis is written in: each
record keeps its id, time and direction; a 1.6 log passes unchanged."""

from __future__ import annotations

import datetime as dt

from libv4e.csms._as16 import as_16_records
from libv4e.csms._handlers201 import version_blind_status
from libv4e.protocol import MessageType
from libv4e.transport import Direction, MessageRecord

T0 = dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.UTC)
IN, OUT = Direction.IN, Direction.OUT
CALL, RESULT = MessageType.CALL, MessageType.CALLRESULT


def rec(direction, kind, uid, action, payload, second=0):
    return MessageRecord(
        "CS1", direction, kind, uid, action, payload, T0 + dt.timedelta(seconds=second)
    )


def register(wh):
    return [{"timestamp": "t", "sampledValue": [{"value": wh, "unitOfMeasure": {"unit": "Wh"}}]}]


def test_a_session_reads_as_start_meter_values_and_stop_with_the_csms_number():
    log = [
        rec(OUT, CALL, "r1", "RequestStartTransaction", {"idToken": {"idToken": "T", "type": "Central"}, "remoteStartId": 1, "evseId": 1}),
        rec(IN, RESULT, "r1", "RequestStartTransaction", {"status": "Accepted"}),
        rec(IN, CALL, "e1", "TransactionEvent", {"eventType": "Started", "timestamp": "t0", "triggerReason": "Authorized", "seqNo": 0, "transactionInfo": {"transactionId": "X"}, "evse": {"id": 1}, "idToken": {"idToken": "T", "type": "Central"}, "meterValue": register(1000)}, 1),
        rec(OUT, RESULT, "e1", "TransactionEvent", {"idTokenInfo": {"status": "Accepted"}}, 1),
        rec(IN, CALL, "s1", "StatusNotification", {"timestamp": "t", "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1}, 2),
        rec(IN, CALL, "e2", "TransactionEvent", {"eventType": "Updated", "timestamp": "t1", "triggerReason": "MeterValuePeriodic", "seqNo": 1, "transactionInfo": {"transactionId": "X"}, "meterValue": register(1500)}, 3),
        rec(IN, CALL, "e3", "TransactionEvent", {"eventType": "Ended", "timestamp": "t2", "triggerReason": "StopAuthorized", "seqNo": 2, "transactionInfo": {"transactionId": "X", "stoppedReason": "Local"}, "meterValue": register(2000)}, 4),
        rec(IN, CALL, "s2", "StatusNotification", {"timestamp": "t", "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1}, 5),
        rec(IN, CALL, "s3", "StatusNotification", {"timestamp": "t", "connectorStatus": "Occupied", "evseId": 2, "connectorId": 1}, 6),
    ]  # fmt: skip
    out = as_16_records(log, {"X": 42}.get)
    assert [(r.unique_id, r.at, r.direction) for r in out] == [
        (r.unique_id, r.at, r.direction) for r in log
    ]
    assert [r.action for r in out] == [
        "RemoteStartTransaction",
        "RemoteStartTransaction",  # an answer follows its call
        "StartTransaction",
        "StartTransaction",
        "StatusNotification",
        "MeterValues",
        "StopTransaction",
        "StatusNotification",
        "StatusNotification",
    ]
    assert out[0].payload == {"idTag": "T", "connectorId": 1}
    assert out[2].payload == {"connectorId": 1, "idTag": "T", "meterStart": 1000, "timestamp": "t0"}
    assert out[3].payload == {"idTagInfo": {"status": "Accepted"}}
    assert out[4].payload["status"] == "Charging"
    assert out[5].payload["transactionId"] == 42
    assert out[5].payload["meterValue"][0]["sampledValue"][0]["value"] == "1500.0"
    assert out[6].payload == {
        "transactionId": 42,
        "meterStop": 2000,
        "timestamp": "t2",
        "reason": "Local",
    }
    assert out[7].payload["status"] == "Finishing"  # the cable still in after the session
    assert out[8].payload["status"] == "Preparing"


def test_a_problem_event_reads_as_the_faulted_status_it_stands_for():
    event = {
        "generatedAt": "t",
        "seqNo": 0,
        "eventData": [
            {
                "eventId": 1,
                "timestamp": "t",
                "trigger": "Delta",
                "actualValue": "true",
                "eventNotificationType": "HardWiredNotification",
                "component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}},
                "variable": {"name": "Problem"},
                "techCode": "ConnectorLockFailure",
                "techInfo": "lock stuck",
            }
        ],
    }
    (out,) = as_16_records([rec(IN, CALL, "n1", "NotifyEvent", event)], lambda _: None)
    assert (out.action, out.payload["status"], out.payload["errorCode"]) == (
        "StatusNotification",
        "Faulted",
        "ConnectorLockFailure",
    )
    assert out.payload["connectorId"] == 1 and out.payload["info"] == "lock stuck"
    other = {**event, "eventData": [{**event["eventData"][0], "variable": {"name": "Power"}}]}
    (kept,) = as_16_records([rec(IN, CALL, "n2", "NotifyEvent", other)], lambda _: None)
    assert kept.action == "NotifyEvent"


def test_a_16_log_passes_unchanged():
    log = [
        rec(IN, CALL, "a", "StatusNotification", {"connectorId": 1, "status": "Charging", "errorCode": "NoError"}),
        rec(IN, CALL, "b", "StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "t"}),
    ]  # fmt: skip
    assert as_16_records(log, lambda _: None) == log


def test_occupied_reads_as_the_16_status_of_the_moment():
    assert version_blind_status("Occupied", in_session=True, was="Preparing") == "Charging"
    assert version_blind_status("Occupied", in_session=False, was="Charging") == "Finishing"
    assert version_blind_status("Occupied", in_session=False, was="Available") == "Preparing"
    assert version_blind_status("Faulted", in_session=True, was="Charging") == "Faulted"


def test_an_authorize_answer_reads_as_the_16_id_tag_info():
    # an Authorize keeps its action: its answer is read in 1.6 terms all the same, or an
    # Accepted card would read as refused (no idTagInfo) and send the agent to a fix
    log = [
        rec(IN, CALL, "a1", "Authorize", {"idToken": {"idToken": "T", "type": "ISO14443"}}),
        rec(OUT, RESULT, "a1", "Authorize", {"idTokenInfo": {"status": "Accepted"}}),
        rec(IN, CALL, "a2", "Authorize", {"idToken": {"idToken": "U", "type": "ISO14443"}}, 1),
        rec(OUT, RESULT, "a2", "Authorize", {"idTokenInfo": {"status": "Blocked"}}, 1),
    ]
    out = as_16_records(log, {}.get)
    assert [r.payload for r in out] == [
        {"idTag": "T"},
        {"idTagInfo": {"status": "Accepted"}},
        {"idTag": "U"},
        {"idTagInfo": {"status": "Blocked"}},
    ]


def test_a_meter_value_reads_as_the_16_one_the_books_read():
    """The log's 2.0.1 meter values in 1.6 terms (written dict to dict, for speed) are
    what ``as_16_meter_values`` — the registry's reading — makes of them."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from libv4e.csms._as16 import _meter_value
    from libv4e.csms._sessions201 import as_16_meter_values
    from libv4e.protocol import to_json_payload

    text = st.sampled_from(["Sample.Periodic", "Transaction.Begin", "L1", "Outlet", "EV"])
    unit = st.fixed_dictionaries(
        {},
        optional={
            "unit": st.sampled_from(["Wh", "kWh", "W", "A"]),
            "multiplier": st.one_of(st.integers(-5, 11), st.just(True), st.floats(-2, 2)),
        },
    )
    sampled = st.fixed_dictionaries(
        {
            "value": st.one_of(
                st.integers(-(10**6), 10**9), st.floats(allow_nan=False), st.booleans()
            )
        },
        optional={
            "context": text,
            "measurand": st.sampled_from(["Energy.Active.Import.Register", "Power.Active.Import"]),
            "phase": text,
            "location": text,
            "unitOfMeasure": unit,
        },
    )
    meter_value = st.fixed_dictionaries(
        {
            "timestamp": st.just("2025-03-01T08:00:00Z"),
            "sampledValue": st.lists(sampled, max_size=4),
        }
    )

    @settings(max_examples=300, deadline=None)
    @given(meter_value)
    def check(mv):
        assert _meter_value(mv) == to_json_payload(as_16_meter_values([mv])[0])

    check()
