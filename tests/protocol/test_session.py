"""The sans-IO session: two sessions joined in memory, no sockets, no trio."""

from __future__ import annotations

import ast
import json
import pathlib

import pytest
from ocpp.v16 import call, call_result, enums

import libv4e
from libv4e import (
    CallErrorReceived,
    CallReceived,
    CallRejected,
    CallResultReceived,
    FrameDropped,
    LateAnswerReceived,
    LocalProtocolError,
    OcppSession,
    Role,
)
from libv4e.protocol import ValidationPolicy
from libv4e.protocol._session import ABANDONED_REMEMBERED

BOOT = call.BootNotification(charge_point_model="M1", charge_point_vendor="V")
BOOT_OK = call_result.BootNotification("2024-05-01T12:00:00+00:00", 30, "Accepted")


def pair():
    return OcppSession(Role.CENTRAL_SYSTEM), OcppSession(Role.CHARGE_POINT)


def error_of(event):
    assert isinstance(event, CallRejected), event
    frame = json.loads(event.reply.text)
    assert frame[0] == 4
    return frame[1], frame[2]


def test_protocol_layer_imports_no_trio_or_sockets():
    pkg = pathlib.Path(libv4e.__file__).parent
    files = [*sorted((pkg / "protocol").glob("*.py")), pkg / "_errors.py"]
    assert len(files) >= 5
    for path in files:
        name = path.name
        tree = ast.parse(path.read_text())
        imported = {
            (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        }
        assert not {
            m
            for m in imported
            if m.split(".")[0] in {"trio", "socket", "asyncio", "trio_websocket"}
        }, name


def test_boot_round_trip_between_two_sessions():
    csms, cp = pair()
    out = cp.send_call(BOOT)
    assert cp.pending_call is not None and cp.pending_call.action == "BootNotification"
    event = csms.receive(out.text)
    assert isinstance(event, CallReceived)
    assert event.payload == BOOT
    reply = csms.send_result(event.unique_id, BOOT_OK)
    answer = cp.receive(reply.text)
    assert isinstance(answer, CallResultReceived)
    assert answer.payload.status == enums.RegistrationStatus.accepted
    assert answer.payload.interval == 30
    assert cp.pending_call is None


def test_second_call_while_one_is_outstanding_is_refused_locally():
    _, cp = pair()
    cp.send_call(call.Heartbeat())
    with pytest.raises(LocalProtocolError, match="outstanding"):
        cp.send_call(call.Heartbeat())


def test_both_directions_may_each_have_one_call_outstanding():
    csms, cp = pair()
    cp_call = cp.send_call(call.Heartbeat())
    csms_call = csms.send_call(call.Reset(enums.ResetType.soft))
    assert isinstance(csms.receive(cp_call.text), CallReceived)
    assert isinstance(cp.receive(csms_call.text), CallReceived)


def test_role_decides_which_actions_may_be_sent():
    csms, cp = pair()
    with pytest.raises(LocalProtocolError, match="may not send Reset"):
        cp.send_call(call.Reset(enums.ResetType.hard))
    with pytest.raises(LocalProtocolError, match="may not send BootNotification"):
        csms.send_call(BOOT)
    cp.send_call(call.DataTransfer("v4e"))
    csms.send_call(call.DataTransfer("v4e"))


def test_call_the_peer_role_may_not_send_gets_not_supported():
    csms, _ = pair()
    uid, code = error_of(csms.receive('[2,"a1","Reset",{"type":"Hard"}]'))
    assert (uid, code) == ("a1", "NotSupported")


def test_unknown_action_gets_not_implemented():
    csms, _ = pair()
    assert error_of(csms.receive('[2,"a2","MakeCoffee",{}]')) == ("a2", "NotImplemented")


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"chargePointVendor": "V"}, "OccurenceConstraintViolation"),
        ({"chargePointVendor": "V", "chargePointModel": 5}, "TypeConstraintViolation"),
        ({"chargePointVendor": "V", "chargePointModel": "M", "x": 1}, "FormationViolation"),
        ({"chargePointVendor": "V" * 21, "chargePointModel": "M"}, "PropertyConstraintViolation"),
        ([1, 2], "FormationViolation"),
    ],
)
def test_schema_violations_get_the_matching_error_code(payload, code):
    csms, _ = pair()
    frame = json.dumps([2, "b1", "BootNotification", payload])
    assert error_of(csms.receive(frame)) == ("b1", code)


def test_bad_enum_and_bad_timestamp_are_property_violations():
    csms, _ = pair()
    bad_enum = (
        '[2,"c1","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Open"}]'
    )
    assert error_of(csms.receive(bad_enum))[1] == "PropertyConstraintViolation"
    bad_time = (
        '[2,"c2","StatusNotification",{"connectorId":1,"errorCode":"NoError",'
        '"status":"Available","timestamp":"yesterday"}]'
    )
    assert error_of(csms.receive(bad_time))[1] == "PropertyConstraintViolation"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ('[2,"d1","Heartbeat"]', "ProtocolError"),
        ('[2,"d2","Heartbeat",{},"extra"]', "FormationViolation"),
        ('[2,"d3",7,{}]', "FormationViolation"),
        ('[9,"d4","Heartbeat",{}]', "FormationViolation"),
        ('[2,"d5","Heartbeat",{', "FormationViolation"),  # truncated JSON, id still readable
        ('[2,"' + "x" * 37 + '","Heartbeat",{}]', "FormationViolation"),
    ],
)
def test_malformed_frames_with_a_readable_id_are_answered(text, code):
    csms, _ = pair()
    assert error_of(csms.receive(text))[1] == code


@pytest.mark.parametrize("text", ["hello", "{}", "[]", "[2]", "[2, 5]", "null", '"x"', b"\x00\x01"])
def test_frames_without_readable_id_are_dropped_not_crashing(text):
    csms, _ = pair()
    event = csms.receive(text)
    assert isinstance(event, FrameDropped)
    assert not event.close


def test_repeated_garbage_asks_to_close():
    csms, _ = pair()
    events = [csms.receive("garbage") for _ in range(5)]
    assert [e.close for e in events] == [False] * 4 + [True]


def test_result_matching_no_call_is_dropped():
    _, cp = pair()
    event = cp.receive('[3,"nobody-asked",{}]')
    assert isinstance(event, FrameDropped)
    assert cp.statistics().frames_dropped == 1


def test_late_answer_after_abandon_is_reported_as_late_not_as_an_answer():
    csms, cp = pair()
    out = cp.send_call(call.Heartbeat())
    cp.abandon_call()
    event = csms.receive(out.text)
    reply = csms.send_result(event.unique_id, call_result.Heartbeat("2024-05-01T12:00:00Z"))
    late = cp.receive(reply.text)
    assert isinstance(late, LateAnswerReceived)
    assert (late.unique_id, late.action, late.message_type) == (out.unique_id, "Heartbeat", 3)
    assert late.raw == {"currentTime": "2024-05-01T12:00:00Z"}
    assert isinstance(cp.receive(reply.text), FrameDropped)  # a second copy is dropped
    cp.send_call(call.Heartbeat())  # and the next call may go


def test_late_call_error_after_abandon_is_reported_as_late():
    csms, cp = pair()
    out = cp.send_call(call.Heartbeat())
    cp.abandon_call()
    csms.receive(out.text)
    late = cp.receive(f'[4,"{out.unique_id}","InternalError","boom",{{}}]')
    assert isinstance(late, LateAnswerReceived)
    assert late.message_type == 4
    assert late.raw["errorCode"] == "InternalError"


def test_only_recent_abandoned_calls_are_remembered():
    _, cp = pair()
    first = cp.send_call(call.Heartbeat())
    cp.abandon_call()
    for _ in range(ABANDONED_REMEMBERED):
        cp.send_call(call.Heartbeat())
        cp.abandon_call()
    assert isinstance(cp.receive(f'[3,"{first.unique_id}",{{}}]'), FrameDropped)


def test_call_error_answer_is_matched_to_the_call():
    csms, cp = pair()
    out = cp.send_call(call.Heartbeat())
    event = csms.receive(out.text)
    reply = csms.send_error(event.unique_id, "InternalError", "boom")
    answer = cp.receive(reply.text)
    assert isinstance(answer, CallErrorReceived)
    assert (answer.action, answer.code, answer.description) == (
        "Heartbeat",
        "InternalError",
        "boom",
    )


def test_invalid_result_fails_the_call_locally():
    _, cp = pair()
    out = cp.send_call(call.Heartbeat())
    uid = json.loads(out.text)[1]
    answer = cp.receive(json.dumps([3, uid, {"currentTime": 5}]))
    assert isinstance(answer, CallErrorReceived)
    assert answer.local and answer.code == "TypeConstraintViolation"


def test_handler_exception_becomes_internal_error_without_internals():
    csms, cp = pair()
    event = csms.receive(cp.send_call(call.Heartbeat()).text)
    reply = csms.send_failure(event.unique_id, RuntimeError("secret database password"))
    frame = json.loads(reply.text)
    assert frame[2] == "InternalError"
    assert "secret" not in reply.text


def test_handler_ocpp_error_keeps_its_code():
    csms, cp = pair()
    event = csms.receive(cp.send_call(call.Heartbeat()).text)
    reply = csms.send_failure(event.unique_id, libv4e.OcppError("SecurityError", "no"))
    assert json.loads(reply.text)[2:4] == ["SecurityError", "no"]


def test_outgoing_payload_is_validated_before_anything_is_sent():
    _, cp = pair()
    with pytest.raises(LocalProtocolError, match="invalid outgoing"):
        cp.send_call(call.BootNotification(charge_point_model="M" * 30, charge_point_vendor="V"))
    assert cp.pending_call is None


def test_wrong_result_type_for_the_call_is_refused():
    csms, cp = pair()
    event = csms.receive(cp.send_call(call.Heartbeat()).text)
    with pytest.raises(LocalProtocolError):
        csms.send_result(event.unique_id, BOOT_OK)
    csms.send_result(event.unique_id, call_result.Heartbeat("2024-05-01T12:00:00Z"))


def test_duplicate_unique_id_of_an_unanswered_call_is_refused():
    csms, _ = pair()
    assert isinstance(csms.receive('[2,"dup","Heartbeat",{}]'), CallReceived)
    assert error_of(csms.receive('[2,"dup","Heartbeat",{}]'))[1] == "FormationViolation"


FIELD_QUIRKS = (
    '[2,"l1","StatusNotification",{"connectorId":"1","errorCode":"noError",'
    '"status":"AVAILABLE","vendorFirmwareBuild":"x"}]'
)


def test_strict_session_refuses_field_quirks():
    csms, _ = pair()
    assert isinstance(csms.receive(FIELD_QUIRKS), CallRejected)


def test_lenient_session_repairs_and_reports_field_quirks():
    csms = OcppSession(Role.CENTRAL_SYSTEM, policy=ValidationPolicy.lenient(["StatusNotification"]))
    event = csms.receive(FIELD_QUIRKS)
    assert isinstance(event, CallReceived)
    assert event.payload == call.StatusNotification(1, "NoError", "Available")
    assert len(event.repairs) == 4
    # leniency is per action: other actions stay strict
    boot = '[2,"l2","BootNotification",{"chargePointVendor":"V","chargePointModel":"M","x":1}]'
    assert isinstance(csms.receive(boot), CallRejected)


def test_lenient_session_still_refuses_what_cannot_be_repaired():
    csms = OcppSession(Role.CENTRAL_SYSTEM, policy=ValidationPolicy.lenient())
    text = '[2,"l3","StatusNotification",{"connectorId":"one","errorCode":"NoError","status":"Available"}]'
    assert error_of(csms.receive(text))[1] == "TypeConstraintViolation"


def test_numbers_out_of_range_are_refused_even_with_validation_off():
    csms = OcppSession(Role.CENTRAL_SYSTEM, policy=ValidationPolicy(validate=False))
    frame = json.dumps(
        [2, "big", "StopTransaction", {"transactionId": 2**70, "meterStop": 1, "timestamp": "x"}]
    )
    event = csms.receive(frame)
    assert isinstance(event, CallRejected)
    assert event.error.code == "PropertyConstraintViolation"
