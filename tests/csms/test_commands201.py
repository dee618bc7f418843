"""The operator's 1.6 commands for a 2.0.1 charger (``csms/_commands201``): every call
produced is valid against the ``ocpp`` package's 2.0.1 schemas, and every 2.0.1 answer a
charger may give reads back as a valid 1.6 answer of the command asked."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from ocpp.charge_point import remove_nones, snake_to_camel_case
from ocpp.messages import Call, CallResult, _validate_payload
from ocpp.v16 import call as call16
from ocpp.v16 import datatypes as data16
from ocpp.v201 import call_result as result201
from ocpp.v201 import datatypes as data201

from libv4e.csms import UnsupportedCommandError, redact_payload
from libv4e.csms._commands201 import VARIABLES, translate


def payload(obj) -> dict:
    return snake_to_camel_case(remove_nones(dataclasses.asdict(obj)))


def valid_201_call(obj) -> None:
    _validate_payload(Call("1", type(obj).__name__, payload(obj)), "2.0.1")


def valid_16_result(action: str, obj) -> None:
    _validate_payload(CallResult("1", payload(obj), action), "1.6")


IDS = itertools.count(1)

HASH16 = data16.CertificateHashData(
    hash_algorithm="SHA256",
    issuer_name_hash="ab" * 32,
    issuer_key_hash="cd" * 32,
    serial_number="1f2e3d",
)
HASH201 = {
    "hash_algorithm": "SHA256",
    "issuer_name_hash": "ab" * 32,
    "issuer_key_hash": "cd" * 32,
    "serial_number": "1f2e3d",
}


def PROFILE(transaction_id, purpose):
    return data16.ChargingProfile(
        charging_profile_id=12,
        stack_level=1,
        charging_profile_purpose=purpose,
        charging_profile_kind="Relative" if purpose == "TxProfile" else "Absolute",
        charging_schedule=data16.ChargingSchedule(
            charging_rate_unit="W",
            charging_schedule_period=[data16.ChargingSchedulePeriod(start_period=0, limit=7400.0)],
            start_schedule=None if purpose == "TxProfile" else "2030-01-01T00:00:00Z",
        ),
        transaction_id=transaction_id,
    )


def read(command, *, sessions=None):
    sessions = sessions or {}
    return translate(
        command,
        charger_transaction_id=sessions.get,
        next_request_id=lambda: next(IDS),
    )


COMMANDS = [
    (call16.RemoteStartTransaction(id_tag="USER123", connector_id=1), result201.RequestStartTransaction, ["Accepted", "Rejected"]),
    (call16.RemoteStartTransaction(id_tag="USER123"), result201.RequestStartTransaction, ["Accepted"]),
    (call16.RemoteStopTransaction(transaction_id=7), result201.RequestStopTransaction, ["Accepted", "Rejected"]),
    (call16.Reset(type="Hard"), result201.Reset, ["Accepted", "Rejected", "Scheduled"]),
    (call16.Reset(type="Soft"), result201.Reset, ["Accepted", "Scheduled"]),
    (call16.ChangeAvailability(connector_id=0, type="Inoperative"), result201.ChangeAvailability, ["Accepted", "Rejected", "Scheduled"]),
    (call16.ChangeAvailability(connector_id=2, type="Operative"), result201.ChangeAvailability, ["Accepted"]),
    (call16.UnlockConnector(connector_id=1), result201.UnlockConnector, ["Unlocked", "UnlockFailed", "OngoingAuthorizedTransaction", "UnknownConnector"]),
    (call16.TriggerMessage(requested_message="StatusNotification", connector_id=1), result201.TriggerMessage, ["Accepted", "Rejected", "NotImplemented"]),
    (call16.TriggerMessage(requested_message="DiagnosticsStatusNotification"), result201.TriggerMessage, ["Accepted"]),
    (call16.ClearCache(), result201.ClearCache, ["Accepted", "Rejected"]),
    (call16.DataTransfer(vendor_id="v4e", message_id="m", data="x"), result201.DataTransfer, ["Accepted", "Rejected", "UnknownMessageId", "UnknownVendorId"]),
    (call16.RemoteStartTransaction(id_tag="USER123", connector_id=1, charging_profile=PROFILE(None, "TxProfile")), result201.RequestStartTransaction, ["Accepted"]),
    (call16.ReserveNow(connector_id=1, expiry_date="2030-01-01T00:00:00Z", id_tag="T", reservation_id=3, parent_id_tag="G"), result201.ReserveNow, ["Accepted", "Faulted", "Occupied", "Rejected", "Unavailable"]),
    (call16.ReserveNow(connector_id=0, expiry_date="2030-01-01T00:00:00Z", id_tag="T", reservation_id=4), result201.ReserveNow, ["Accepted"]),
    (call16.CancelReservation(reservation_id=3), result201.CancelReservation, ["Accepted", "Rejected"]),
    (call16.SendLocalList(list_version=5, update_type="Differential", local_authorization_list=[{"id_tag": "A", "id_tag_info": {"status": "Accepted", "expiry_date": "2030-01-01T00:00:00Z"}}, data16.AuthorizationData(id_tag="B")]), result201.SendLocalList, ["Accepted", "Failed", "VersionMismatch"]),
    (call16.SendLocalList(list_version=6, update_type="Full"), result201.SendLocalList, ["Accepted"]),
    (call16.SetChargingProfile(connector_id=1, cs_charging_profiles=PROFILE(7, "TxProfile")), result201.SetChargingProfile, ["Accepted", "Rejected"]),
    (call16.SetChargingProfile(connector_id=0, cs_charging_profiles=PROFILE(None, "ChargePointMaxProfile")), result201.SetChargingProfile, ["Accepted"]),
    (call16.ClearChargingProfile(id=9), result201.ClearChargingProfile, ["Accepted", "Unknown"]),
    (call16.ClearChargingProfile(connector_id=1, charging_profile_purpose="ChargePointMaxProfile", stack_level=2), result201.ClearChargingProfile, ["Accepted"]),
    (call16.UpdateFirmware(location="https://fw.example/v2.bin", retrieve_date="2030-01-01T00:00:00Z", retries=2), result201.UpdateFirmware, ["Accepted", "Rejected", "InvalidCertificate"]),
    (call16.GetDiagnostics(location="ftp://logs.example/", start_time="2030-01-01T00:00:00Z"), result201.GetLog, ["Accepted", "Rejected"]),
    (call16.GetCompositeSchedule(connector_id=1, duration=60, charging_rate_unit="A"), result201.GetCompositeSchedule, ["Accepted", "Rejected"]),
    # the security extension
    (call16.InstallCertificate(certificate_type="CentralSystemRootCertificate", certificate="-----BEGIN CERTIFICATE-----"), result201.InstallCertificate, ["Accepted", "Rejected", "Failed"]),
    (call16.InstallCertificate(certificate_type="ManufacturerRootCertificate", certificate="pem"), result201.InstallCertificate, ["Accepted"]),
    (call16.GetInstalledCertificateIds(certificate_type="CentralSystemRootCertificate"), result201.GetInstalledCertificateIds, ["Accepted", "NotFound"]),
    (call16.DeleteCertificate(certificate_hash_data=HASH16), result201.DeleteCertificate, ["Accepted", "Failed", "NotFound"]),
    (call16.SignedUpdateFirmware(request_id=41, firmware=data16.Firmware(location="https://fw.example/v3.bin", retrieve_date_time="2030-01-01T00:00:00Z", signing_certificate="pem", signature="c2ln", install_date_time="2030-01-02T00:00:00Z"), retries=2, retry_interval=30), result201.UpdateFirmware, ["Accepted", "Rejected", "AcceptedCanceled", "InvalidCertificate", "RevokedCertificate"]),
    (call16.GetLog(log=data16.LogParameters(remote_location="https://logs.example/up", oldest_timestamp="2030-01-01T00:00:00Z"), log_type="SecurityLog", request_id=42, retries=1), result201.GetLog, ["Accepted", "Rejected", "AcceptedCanceled"]),
    (call16.GetLog(log={"remote_location": "https://logs.example/up"}, log_type="DiagnosticsLog", request_id=43), result201.GetLog, ["Accepted"]),
    (call16.ExtendedTriggerMessage(requested_message="SignChargePointCertificate"), result201.TriggerMessage, ["Accepted", "Rejected", "NotImplemented"]),
    (call16.ExtendedTriggerMessage(requested_message="LogStatusNotification", connector_id=1), result201.TriggerMessage, ["Accepted"]),
    (call16.ExtendedTriggerMessage(requested_message="MeterValues", connector_id=2), result201.TriggerMessage, ["Accepted"]),
    (call16.CertificateSigned(certificate_chain="-----BEGIN CERTIFICATE-----"), result201.CertificateSigned, ["Accepted", "Rejected"]),
    (call16.ChangeConfiguration(key="AuthorizationKey", value="new-authorization-key-0123"), result201.SetVariables, []),
]  # fmt: skip


@pytest.mark.parametrize(("command", "answer", "statuses"), COMMANDS)
def test_each_command_is_a_valid_201_call_and_each_answer_a_valid_16_one(command, answer, statuses):
    translated = read(command, sessions={7: "tx-abc"})
    valid_201_call(translated.call)
    for status in statuses:
        back = translated.read(answer(status=status))
        valid_16_result(type(command).__name__, back)
        assert type(back).__name__ == type(command).__name__


def test_the_mapping_says_what_the_charger_is_asked():
    start = read(call16.RemoteStartTransaction(id_tag="USER123", connector_id=2)).call
    assert (start.id_token.id_token, start.id_token.type, start.evse_id) == (
        "USER123",
        "Central",
        2,
    )
    again = read(call16.RemoteStartTransaction(id_tag="USER123", connector_id=2)).call
    assert again.remote_start_id != start.remote_start_id
    stop = read(call16.RemoteStopTransaction(transaction_id=7), sessions={7: "tx-abc"}).call
    assert stop.transaction_id == "tx-abc"
    assert read(call16.Reset(type="Hard")).call.type == "Immediate"
    # a 1.6 Soft reset stops the sessions (gracefully) and restarts now: not OnIdle
    assert read(call16.Reset(type="Soft")).call.type == "Immediate"
    whole = read(call16.ChangeAvailability(connector_id=0, type="Inoperative")).call
    assert whole.evse is None and whole.operational_status == "Inoperative"
    unlock = read(call16.UnlockConnector(connector_id=3)).call
    assert (unlock.evse_id, unlock.connector_id) == (3, 1)
    answer = read(call16.UnlockConnector(connector_id=3)).read(
        result201.UnlockConnector(status="OngoingAuthorizedTransaction")
    )
    assert answer.status == "UnlockFailed"


def test_a_session_not_of_this_charger_is_rejected_without_a_call():
    translated = read(call16.RemoteStopTransaction(transaction_id=99), sessions={7: "tx-abc"})
    assert translated.call is None
    assert translated.read(None).status == "Rejected"
    profile = call16.SetChargingProfile(
        connector_id=1, cs_charging_profiles=PROFILE(99, "TxProfile")
    )
    assert read(profile, sessions={7: "tx-abc"}).call is None


def test_a_profile_for_a_session_names_the_chargers_own_id_and_the_renamed_purpose():
    set_tx = read(
        call16.SetChargingProfile(connector_id=1, cs_charging_profiles=PROFILE(7, "TxProfile")),
        sessions={7: "tx-abc"},
    ).call
    assert set_tx.charging_profile.transaction_id == "tx-abc" and set_tx.evse_id == 1
    assert set_tx.charging_profile.charging_schedule[0].charging_schedule_period[0].limit == 7400.0
    station = read(
        call16.SetChargingProfile(
            connector_id=0, cs_charging_profiles=PROFILE(None, "ChargePointMaxProfile")
        )
    ).call
    assert station.charging_profile.charging_profile_purpose == "ChargingStationMaxProfile"


def test_configuration_keys_become_device_model_variables_and_back():
    change = read(call16.ChangeConfiguration(key="HeartbeatInterval", value="120"))
    valid_201_call(change.call)
    data = change.call.set_variable_data[0]
    assert (data.component.name, data.variable.name, data.attribute_value) == (
        "OCPPCommCtrlr",
        "HeartbeatInterval",
        "120",
    )
    for status, expected in [
        ("Accepted", "Accepted"),
        ("RebootRequired", "RebootRequired"),
        ("Rejected", "Rejected"),
        ("UnknownVariable", "NotSupported"),
    ]:
        answer = {
            "set_variable_result": [
                {
                    "attribute_status": status,
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                }
            ]
        }
        back = change.read(answer)
        assert back.status == expected
        valid_16_result("ChangeConfiguration", back)

    get = read(call16.GetConfiguration(key=["HeartbeatInterval", "NoSuchKey", "CpoName"]))
    valid_201_call(get.call)
    assert len(get.call.get_variable_data) == 2
    back = get.read(
        {
            "get_variable_result": [
                {
                    "attribute_status": "Accepted",
                    "attribute_value": "120",
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                },
                {
                    "attribute_status": "UnknownVariable",
                    "component": {"name": "SecurityCtrlr"},
                    "variable": {"name": "OrganizationName"},
                },
            ]
        }
    )
    valid_16_result("GetConfiguration", back)
    assert back.configuration_key == [
        data16.KeyValue(key="HeartbeatInterval", readonly=False, value="120")
    ]
    assert back.unknown_key == ["NoSuchKey", "CpoName"]
    everything = read(call16.GetConfiguration())
    assert len(everything.call.get_variable_data) == len(VARIABLES)
    valid_201_call(everything.call)


def test_a_command_with_no_201_counterpart_names_itself():
    with pytest.raises(
        UnsupportedCommandError,
        match=r"ChangeConfiguration for key 'NoSuchKey' \(use SetVariables\) does not exist",
    ):
        read(call16.ChangeConfiguration(key="NoSuchKey", value="1"))


def test_a_composite_schedule_reads_back_as_the_connectors_schedule():
    asked = read(
        call16.GetCompositeSchedule(connector_id=2, duration=600, charging_rate_unit="W")
    ).call
    assert (asked.evse_id, asked.duration, asked.charging_rate_unit) == (2, 600, "W")
    translated = read(call16.GetCompositeSchedule(connector_id=0, duration=60))
    assert translated.call.evse_id == 0 and translated.call.charging_rate_unit is None
    periods = [
        data201.ChargingSchedulePeriodType(start_period=0, limit=11000.0),
        data201.ChargingSchedulePeriodType(start_period=120, limit=3700.0, number_phases=1),
    ]
    answer = result201.GetCompositeSchedule(
        status="Accepted",
        schedule=data201.CompositeScheduleType(
            evse_id=0,
            duration=60,
            schedule_start="2030-01-01T10:00:00Z",
            charging_rate_unit="W",
            charging_schedule_period=periods,
        ),
    )
    back = translated.read(answer)
    valid_16_result("GetCompositeSchedule", back)
    assert (back.status, back.connector_id, back.schedule_start) == (
        "Accepted",
        0,
        "2030-01-01T10:00:00Z",
    )
    schedule = back.charging_schedule
    assert (schedule.charging_rate_unit, schedule.duration) == ("W", 60)
    assert schedule.start_schedule == "2030-01-01T10:00:00Z"
    assert [
        (p.start_period, p.limit, p.number_phases) for p in schedule.charging_schedule_period
    ] == [
        (0, 11000.0, None),
        (120, 3700.0, 1),
    ]
    refused = translated.read(result201.GetCompositeSchedule(status="Rejected"))
    valid_16_result("GetCompositeSchedule", refused)
    assert (refused.status, refused.charging_schedule) == ("Rejected", None)


def test_a_201_call_goes_as_it_is():
    from ocpp.v201 import call as call201

    native = call201.GetBaseReport(request_id=1, report_base="FullInventory")
    translated = read(native)
    assert translated.call is native
    assert translated.read("answer") == "answer"


def test_clearing_stack_level_0_does_not_clear_every_profile():
    # 1.6: only stackLevel 0 given clears the profiles of stack level 0; a 2.0.1
    # ClearChargingProfile with neither an id nor criteria clears them all
    clear = read(call16.ClearChargingProfile(stack_level=0)).call
    valid_201_call(clear)
    criteria = clear.charging_profile_criteria
    assert clear.charging_profile_id is None and criteria is not None
    assert criteria.stack_level == 0


def test_the_security_extensions_commands_say_the_same_in_201():
    install = read(
        call16.InstallCertificate(certificate_type="CentralSystemRootCertificate", certificate="p")
    ).call
    assert (install.certificate_type, install.certificate) == ("CSMSRootCertificate", "p")
    get = read(call16.GetInstalledCertificateIds(certificate_type="ManufacturerRootCertificate"))
    assert get.call.certificate_type == ["ManufacturerRootCertificate"]
    other = {**HASH201, "serial_number": "99"}
    back = get.read(
        result201.GetInstalledCertificateIds(
            status="Accepted",
            certificate_hash_data_chain=[
                {
                    "certificate_type": "ManufacturerRootCertificate",
                    "certificate_hash_data": HASH201,
                    "child_certificate_hash_data": [other],
                },
                {"certificate_type": "V2GRootCertificate", "certificate_hash_data": other},
            ],
        )
    )
    valid_16_result("GetInstalledCertificateIds", back)
    assert (back.status, back.certificate_hash_data) == ("Accepted", [HASH16])
    missing = get.read(result201.GetInstalledCertificateIds(status="NotFound"))
    valid_16_result("GetInstalledCertificateIds", missing)
    assert (missing.status, missing.certificate_hash_data) == ("NotFound", None)
    delete = read(call16.DeleteCertificate(certificate_hash_data=HASH16)).call
    assert payload(delete)["certificateHashData"] == {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": "ab" * 32,
        "issuerKeyHash": "cd" * 32,
        "serialNumber": "1f2e3d",
    }
    signed = read(
        call16.SignedUpdateFirmware(
            request_id=41,
            firmware=data16.Firmware(
                location="https://fw.example/v3.bin",
                retrieve_date_time="2030-01-01T00:00:00Z",
                signing_certificate="pem",
                signature="c2ln",
                install_date_time="2030-01-02T00:00:00Z",
            ),
        )
    )
    assert type(signed.call).__name__ == "UpdateFirmware" and signed.call.request_id == 41
    assert payload(signed.call)["firmware"] == {
        "location": "https://fw.example/v3.bin",
        "retrieveDateTime": "2030-01-01T00:00:00Z",
        "installDateTime": "2030-01-02T00:00:00Z",
        "signingCertificate": "pem",
        "signature": "c2ln",
    }
    answer = signed.read(result201.UpdateFirmware(status="InvalidCertificate"))
    assert type(answer).__name__ == "SignedUpdateFirmware" and answer.status == "InvalidCertificate"
    get_log = read(
        call16.GetLog(
            log=data16.LogParameters(remote_location="https://logs.example/up"),
            log_type="SecurityLog",
            request_id=42,
            retries=3,
            retry_interval=10,
        )
    )
    assert (get_log.call.log_type, get_log.call.request_id, get_log.call.retries) == (
        "SecurityLog",
        42,
        3,
    )
    assert get_log.call.log.remote_location == "https://logs.example/up"
    got = get_log.read(result201.GetLog(status="Accepted", filename="security.log"))
    assert (type(got).__name__, got.status, got.filename) == ("GetLog", "Accepted", "security.log")
    trigger = read(
        call16.ExtendedTriggerMessage(
            requested_message="SignChargePointCertificate", connector_id=2
        )
    ).call
    assert (trigger.requested_message, trigger.evse) == (
        "SignChargingStationCertificate",
        data201.EVSEType(id=2),
    )
    chain = read(call16.CertificateSigned(certificate_chain="pem")).call
    assert (chain.certificate_chain, chain.certificate_type) == (
        "pem",
        "ChargingStationCertificate",
    )


def test_the_authorization_key_is_the_write_only_basic_auth_password():
    key = "new-authorization-key-0123"
    change = read(call16.ChangeConfiguration(key="AuthorizationKey", value=key))
    valid_201_call(change.call)
    (data,) = change.call.set_variable_data
    assert (data.component.name, data.variable.name, data.attribute_value) == (
        "SecurityCtrlr",
        "BasicAuthPassword",
        key,
    )
    # the message log keeps it hidden, as 1.6's ChangeConfiguration
    hidden = redact_payload("SetVariables", payload(change.call))
    assert hidden is not None and key not in str(hidden)
    assert hidden["setVariableData"][0]["attributeValue"] == "***"
    other = read(call16.ChangeConfiguration(key="HeartbeatInterval", value="60")).call
    assert redact_payload("SetVariables", payload(other)) is None
    # read: listed without a value, like a 1.6 charger lists it; never a value
    get = read(call16.GetConfiguration(key=["AuthorizationKey"]))
    valid_201_call(get.call)
    for status, value in (("Rejected", None), ("Accepted", key)):
        result = {
            "attribute_status": status,
            "component": {"name": "SecurityCtrlr"},
            "variable": {"name": "BasicAuthPassword"},
        }
        if value is not None:
            result["attribute_value"] = value
        back = get.read({"get_variable_result": [result]})
        valid_16_result("GetConfiguration", back)
        assert back.configuration_key == [data16.KeyValue(key="AuthorizationKey", readonly=False)]
    unknown = get.read(
        {
            "get_variable_result": [
                {
                    "attribute_status": "UnknownVariable",
                    "component": {"name": "SecurityCtrlr"},
                    "variable": {"name": "BasicAuthPassword"},
                }
            ]
        }
    )
    assert unknown.unknown_key == ["AuthorizationKey"]
    everything = read(call16.GetConfiguration()).call
    assert "BasicAuthPassword" not in str(payload(everything))
