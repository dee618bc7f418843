"""The sans-IO session in OCPP 2.0.1: the 2.0.1 catalogue and schemas, optional fields
truly optional, the bounds layer, and OCPP-J 2.0.1's CallError codes — one error
hierarchy, spelled per version in one place (``OcppVersion.wire_error``)."""

from __future__ import annotations

import json

import pytest
from ocpp.v201 import call, call_result, datatypes, enums

from libv4e import ErrorCode, LocalProtocolError, OcppError
from libv4e.protocol import (
    CallErrorReceived,
    CallReceived,
    CallRejected,
    CallResultReceived,
    OcppSession,
    OcppVersion,
    Role,
    negotiate,
)

V201 = OcppVersion.V201


def pair() -> tuple[OcppSession, OcppSession]:
    return (
        OcppSession(Role.CENTRAL_SYSTEM, version=V201),
        OcppSession(Role.CHARGE_POINT, version=V201),
    )


def test_a_2_0_1_call_and_result_round_trip_typed():
    csms, station = pair()
    out = station.send_call(
        call.BootNotification(
            datatypes.ChargingStationType(model="M", vendor_name="V", serial_number="S1"),
            enums.BootReasonEnumType.power_up,
        )
    )
    assert json.loads(out.text)[3] == {
        "chargingStation": {"model": "M", "vendorName": "V", "serialNumber": "S1"},
        "reason": "PowerUp",
    }  # optional fields left out, not sent as null
    event = csms.receive(out.text)
    assert isinstance(event, CallReceived)
    assert isinstance(event.payload, call.BootNotification)
    assert event.payload.charging_station.serial_number == "S1"
    assert event.payload.charging_station.firmware_version is None
    answer = csms.send_result(
        event.unique_id,
        call_result.BootNotification("2024-01-01T00:00:00Z", 300, "Accepted"),
    )
    result = station.receive(answer.text)
    assert isinstance(result, CallResultReceived)
    assert result.payload.interval == 300 and result.payload.status_info is None


def test_optional_nested_fields_are_optional():
    csms, _ = pair()
    event = csms.receive('[2,"1","Authorize",{"idToken":{"idToken":"AA","type":"ISO14443"}}]')
    assert isinstance(event, CallReceived)
    assert event.payload.id_token.additional_info is None
    assert event.payload.certificate is None


@pytest.mark.parametrize(
    ("frame", "v201", "v16"),
    [
        ('[2,"1","Heartbeat",{"x":1}]', "FormatViolation", "FormationViolation"),
        ('[9,"1","Heartbeat",{}]', "MessageTypeNotSupported", "FormationViolation"),
        ('[2,"1","Heartbeat",{} ,2]', "RpcFrameworkError", "FormationViolation"),
        ('[2,"1","Heartbeat",{', "RpcFrameworkError", "FormationViolation"),
        ('[2,"1","Heartbeat"]', "ProtocolError", "ProtocolError"),
        ('[2,"1","Heartbeat",[]]', "FormatViolation", "FormationViolation"),
        ('[2,"1","Teleport",{}]', "NotImplemented", "NotImplemented"),
    ],
)
def test_the_same_fault_gets_each_versions_code(frame, v201, v16):
    for version, code in ((V201, v201), (OcppVersion.V16, v16)):
        event = OcppSession(Role.CENTRAL_SYSTEM, version=version).receive(frame)
        assert isinstance(event, CallRejected)
        assert event.error.code == code
        assert json.loads(event.reply.text)[2] == code


def test_schema_faults_get_2_0_1_codes():
    csms, _ = pair()
    missing = csms.receive('[2,"1","BootNotification",{"reason":"PowerUp"}]')
    assert isinstance(missing, CallRejected)
    assert missing.error.code == "OccurrenceConstraintViolation"
    wrong_type = csms.receive('[2,"2","Heartbeat",{"customData":{"vendorId":3}}]')
    assert isinstance(wrong_type, CallRejected)
    assert wrong_type.error.code == ErrorCode.TYPE_CONSTRAINT_VIOLATION


def test_the_bounds_layer_applies_to_2_0_1():
    csms, _ = pair()
    event = csms.receive(
        '[2,"1","StatusNotification",{"timestamp":"2024-01-01T00:00:00Z",'
        '"connectorStatus":"Available","evseId":1,"connectorId":4294967296}]'
    )
    assert isinstance(event, CallRejected)
    assert event.error.code == ErrorCode.PROPERTY_CONSTRAINT_VIOLATION


def test_2_0_1_ids_are_never_negative_and_1_6_takes_what_it_took():
    csms, _ = pair()
    report = '{"requestId":-1,"generatedAt":"2024-01-01T00:00:00Z","seqNo":0}'
    event = csms.receive(f'[2,"1","NotifyReport",{report}]')
    assert isinstance(event, CallRejected)
    assert event.error.code == ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    old = OcppSession(Role.CENTRAL_SYSTEM)  # 1.6's security extension: as before
    event = old.receive('[2,"1","LogStatusNotification",{"status":"Idle","requestId":-1}]')
    assert isinstance(event, CallReceived)


def test_an_evse_object_s_id_is_never_negative():
    # a TransactionEvent names its EVSE as {"id": n} (the schema has no minimum; the
    # spec: > 0): a negative one would be a connector the bound never refuses
    csms, _ = pair()
    tx = (
        '{"eventType":"Started","timestamp":"2024-01-01T00:00:00Z","triggerReason":'
        '"Authorized","seqNo":0,"transactionInfo":{"transactionId":"t1"},"evse":{"id":-7}}'
    )
    event = csms.receive(f'[2,"1","TransactionEvent",{tx}]')
    assert isinstance(event, CallRejected)
    assert event.error.code == ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    assert "evse.id" in str(event.error)
    notify = (
        '{"generatedAt":"2024-01-01T00:00:00Z","seqNo":0,"eventData":[{"eventId":1,'
        '"timestamp":"2024-01-01T00:00:00Z","trigger":"Alerting","actualValue":"1",'
        '"eventNotificationType":"PreconfiguredMonitor","component":{"name":"EVSE",'
        '"evse":{"id":-1}},"variable":{"name":"Problem"}}]}'
    )
    event = csms.receive(f'[2,"2","NotifyEvent",{notify}]')
    assert isinstance(event, CallRejected)
    ok = tx.replace('"id":-7', '"id":0')
    assert isinstance(csms.receive(f'[2,"3","TransactionEvent",{ok}]'), CallReceived)


def test_a_handler_error_is_spelled_for_the_links_version():
    for version, code in ((V201, "FormatViolation"), (OcppVersion.V16, "FormationViolation")):
        session = OcppSession(Role.CENTRAL_SYSTEM, version=version)
        event = session.receive('[2,"1","Heartbeat",{}]')
        assert isinstance(event, CallReceived)
        # either spelling raised anywhere goes out in the version's own
        raised = ErrorCode.FORMATION_VIOLATION if version is V201 else ErrorCode.FORMAT_VIOLATION
        out = session.send_failure("1", OcppError(raised))
        assert json.loads(out.text)[2] == code


def test_2_0_1_role_rules_and_catalogue():
    csms, station = pair()
    with pytest.raises(LocalProtocolError):
        station.send_call(call.GetBaseReport(1, "FullInventory"))  # the CSMS's to send
    from ocpp.v16 import call as call16

    with pytest.raises(
        LocalProtocolError, match=r"an OCPP 1\.6 message; this link speaks OCPP 2\.0\.1"
    ):
        station.send_call(call16.Heartbeat())
    out = csms.send_call(call.GetBaseReport(1, "FullInventory"))
    assert isinstance(station.receive(out.text), CallReceived)


def test_an_invalid_2_0_1_answer_is_reported_with_a_2_0_1_code():
    csms, _ = pair()
    out = csms.send_call(call.GetBaseReport(1, "FullInventory"))
    event = csms.receive(json.dumps([3, out.unique_id, {"status": "Maybe"}]))
    assert isinstance(event, CallErrorReceived) and event.local
    assert event.code == "PropertyConstraintViolation"


def test_negotiation_follows_the_servers_preference():
    assert negotiate(["ocpp1.6", "ocpp2.0.1"]) is V201
    assert negotiate(["ocpp1.6"]) is OcppVersion.V16
    assert negotiate(["ocpp1.6", "ocpp2.0.1"], [OcppVersion.V16, V201]) is OcppVersion.V16
    assert negotiate(["ocpp2.0"]) is None
    assert OcppVersion.parse("2.0.1") is V201 and OcppVersion.parse("ocpp1.6") is OcppVersion.V16
    with pytest.raises(ValueError):
        OcppVersion.parse("2.1")
