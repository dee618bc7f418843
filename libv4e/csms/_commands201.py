"""The operator's commands for an OCPP 2.0.1 charger: each 1.6 command the REST API,
the MCP tools and the operator books speak, as the 2.0.1 call that does the same, and
its answer read back as the 1.6 answer — so everything above the wire stays
version-blind. Sans-IO: nothing here sends.

=============================  =========================================================
1.6 command                    2.0.1 call
=============================  =========================================================
RemoteStartTransaction         RequestStartTransaction (idToken type Central, evseId =
                               connectorId, a fresh remoteStartId)
RemoteStopTransaction          RequestStopTransaction (the charger's own transaction id)
Reset Hard / Soft              Reset Immediate (both stop the sessions and restart now;
                               OnIdle would wait for them to end)
ChangeAvailability             ChangeAvailability (operationalStatus; connector 0: the
                               whole station, else evse {id: connectorId})
UnlockConnector                UnlockConnector (evseId = connectorId; connectorId: the
                               one with a cable in, else 1)
ChangeConfiguration            SetVariables, for the keys in :data:`VARIABLES`
GetConfiguration               GetVariables, for the keys in :data:`VARIABLES`
TriggerMessage                 TriggerMessage (DiagnosticsStatusNotification →
                               LogStatusNotification)
ClearCache, DataTransfer       the same message
ReserveNow, CancelReservation  ReserveNow (id, evseId; idToken type Central), Cancel…
SendLocalList                  SendLocalList (idTokens type Central, versionNumber; a
                               parent id tag as the groupIdToken)
GetLocalListVersion            GetLocalListVersion
SetChargingProfile             SetChargingProfile (one schedule; ChargePointMaxProfile →
ClearChargingProfile           ChargingStationMaxProfile; the session's own id)
GetCompositeSchedule           GetCompositeSchedule (evseId = connectorId); the
                               CompositeSchedule read back as the connector's schedule
UpdateFirmware                 UpdateFirmware (unsigned firmware, a fresh requestId)
GetDiagnostics                 GetLog (DiagnosticsLog)
=============================  =========================================================

The security extension (the 1.6 whitepaper's commands; the security records above the
wire stay the same):

=============================  =========================================================
1.6 command                    2.0.1 call
=============================  =========================================================
InstallCertificate             InstallCertificate (CentralSystemRootCertificate →
                               CSMSRootCertificate, ManufacturerRootCertificate the same)
GetInstalledCertificateIds     GetInstalledCertificateIds (a one-type list, renamed as
                               above); the answer's chains of that type → the 1.6 flat
                               certificateHashData list (child hashes dropped)
DeleteCertificate              DeleteCertificate (the same hash data)
SignedUpdateFirmware           UpdateFirmware (firmware.signingCertificate / signature /
                               installDateTime, the same requestId)
GetLog                         GetLog (the same logType, requestId, retries, log)
ExtendedTriggerMessage         TriggerMessage (SignChargePointCertificate →
                               SignChargingStationCertificate, the others by name;
                               connectorId → evse)
CertificateSigned              CertificateSigned (certificateType
                               ChargingStationCertificate)
ChangeConfiguration            SetVariables SecurityCtrlr.BasicAuthPassword (write-only:
AuthorizationKey               GetConfiguration lists it without a value, as 1.6 does)
=============================  =========================================================

The answers' statuses have the same names in both versions (UpdateFirmware's Accepted,
Rejected, AcceptedCanceled, InvalidCertificate, RevokedCertificate are 1.6's
UpdateFirmwareStatus word for word) and are read back as they are.

A command without a 2.0.1 counterpart here raises :class:`UnsupportedCommandError`
(the REST API answers 409 naming it). Calls of ``ocpp.v201.call`` go to a 2.0.1 charger
as they are (the 2.0.1-native commands).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16 import datatypes as data16
from ocpp.v201 import call as call201
from ocpp.v201 import datatypes as data201

from libv4e._errors import UnsupportedCommandError
from libv4e.protocol._fields import field as _get
from libv4e.protocol._fields import text as _text
from libv4e.protocol._variables201 import KEY_OF, VARIABLES, WRITE_ONLY

__all__ = ["Translated", "heartbeat_interval_set", "translate", "with_mutability"]


_SET_STATUS = {  # SetVariableStatus → 1.6 ConfigurationStatus
    "Accepted": "Accepted",
    "RebootRequired": "RebootRequired",
    "Rejected": "Rejected",
    "UnknownComponent": "NotSupported",
    "UnknownVariable": "NotSupported",
    "NotSupportedAttributeType": "NotSupported",
}
_UNLOCK_STATUS = {  # UnlockStatus → 1.6 UnlockStatus
    "Unlocked": "Unlocked",
    "UnlockFailed": "UnlockFailed",
    "OngoingAuthorizedTransaction": "UnlockFailed",
    "UnknownConnector": "NotSupported",
}
_TRIGGERS = {  # 1.6 MessageTrigger → 2.0.1 MessageTrigger
    "BootNotification": "BootNotification",
    "Heartbeat": "Heartbeat",
    "MeterValues": "MeterValues",
    "StatusNotification": "StatusNotification",
    "FirmwareStatusNotification": "FirmwareStatusNotification",
    "DiagnosticsStatusNotification": "LogStatusNotification",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Translated:
    """A 1.6 command as its 2.0.1 call, and how to read the call's answer back."""

    call: Any
    read: Callable[[Any], Any]
    """The 2.0.1 answer (the package's dataclass) → the 1.6 answer."""


def translate(
    command: Any,
    *,
    charger_transaction_id: Callable[[int], str | None],
    next_request_id: Callable[[], int],
    plugged: Callable[[int], int | None] = lambda evse_id: None,
) -> Translated:
    """``command`` (an ``ocpp.v16.call`` object) for a 2.0.1 charger.

    ``charger_transaction_id``: the charger's own id of a session the CSMS numbers
    (None: not one of this charger's 2.0.1 sessions); ``next_request_id``: a fresh id
    for a RequestStartTransaction's remoteStartId or a requestId; ``plugged``: the
    connector of an EVSE that has a cable in (the one connector it last reported
    Occupied), if one does — an unlock goes to it, else to connector 1. Raises
    :class:`UnsupportedCommandError`."""
    if type(command).__module__.startswith("ocpp.v201"):
        return Translated(command, lambda answer: answer)
    action = type(command).__name__
    if isinstance(command, call16.RemoteStartTransaction):
        profile = command.charging_profile
        request = call201.RequestStartTransaction(
            id_token=data201.IdTokenType(id_token=command.id_tag, type="Central"),
            remote_start_id=next_request_id(),
            evse_id=command.connector_id or None,
            charging_profile=None if profile is None else _profile(profile, None),
        )
        return Translated(request, lambda a: result16.RemoteStartTransaction(_status(a)))
    if isinstance(command, call16.RemoteStopTransaction):
        charger_id = charger_transaction_id(command.transaction_id)
        if charger_id is None:  # not a session of this charger: it cannot be stopped
            return Translated(None, lambda _: result16.RemoteStopTransaction("Rejected"))
        return Translated(
            call201.RequestStopTransaction(transaction_id=charger_id),
            lambda a: result16.RemoteStopTransaction(_status(a)),
        )
    if isinstance(command, call16.Reset):
        # both 1.6 resets stop the sessions running and restart now (Soft gracefully):
        # that is 2.0.1's Immediate; OnIdle would wait for every session to end
        return Translated(call201.Reset(type="Immediate"), lambda a: result16.Reset(_accepted(a)))
    if isinstance(command, call16.ChangeAvailability):
        evse = None if not command.connector_id else data201.EVSEType(id=command.connector_id)
        return Translated(
            call201.ChangeAvailability(operational_status=_text(command.type), evse=evse),
            lambda a: result16.ChangeAvailability(_status(a)),
        )
    if isinstance(command, call16.UnlockConnector):
        return Translated(
            call201.UnlockConnector(
                evse_id=command.connector_id, connector_id=plugged(command.connector_id) or 1
            ),
            lambda a: result16.UnlockConnector(_UNLOCK_STATUS.get(_status(a), "UnlockFailed")),
        )
    if isinstance(command, call16.ChangeConfiguration):
        where = VARIABLES.get(command.key) or WRITE_ONLY.get(command.key)
        if where is None:
            raise UnsupportedCommandError(
                action, "2.0.1", f"for key {command.key!r} (use SetVariables)"
            )
        request = call201.SetVariables(
            set_variable_data=[
                data201.SetVariableDataType(
                    attribute_value=command.value,
                    component=data201.ComponentType(name=where[0]),
                    variable=data201.VariableType(name=where[1]),
                )
            ]
        )
        return Translated(request, _configuration_status)
    if isinstance(command, call16.GetConfiguration):
        keys = command.key or list(VARIABLES)
        known = [k for k in keys if k in VARIABLES or k in WRITE_ONLY]
        unknown = [k for k in keys if k not in known]
        if not known:
            return Translated(
                None, lambda _: result16.GetConfiguration(configuration_key=[], unknown_key=unknown)
            )
        request = call201.GetVariables(
            get_variable_data=[
                data201.GetVariableDataType(
                    component=data201.ComponentType(name=(VARIABLES | WRITE_ONLY)[k][0]),
                    variable=data201.VariableType(name=(VARIABLES | WRITE_ONLY)[k][1]),
                )
                for k in known
            ]
        )
        return Translated(request, lambda a: _configuration(a, unknown))
    if isinstance(command, call16.TriggerMessage | call16.ExtendedTriggerMessage):
        extended = isinstance(command, call16.ExtendedTriggerMessage)
        table, answer = (
            (_EXTENDED_TRIGGERS, result16.ExtendedTriggerMessage)
            if extended
            else (_TRIGGERS, result16.TriggerMessage)
        )
        requested = table.get(str(_text(command.requested_message)))
        if requested is None:
            raise UnsupportedCommandError(action, "2.0.1", f"for {command.requested_message}")
        evse = None if not command.connector_id else data201.EVSEType(id=command.connector_id)
        return Translated(
            call201.TriggerMessage(requested_message=requested, evse=evse),
            lambda a: answer(_status(a)),
        )
    if isinstance(command, call16.ClearCache):
        return Translated(call201.ClearCache(), lambda a: result16.ClearCache(_status(a)))
    if isinstance(command, call16.DataTransfer):
        return Translated(
            call201.DataTransfer(
                vendor_id=command.vendor_id, message_id=command.message_id, data=command.data
            ),
            lambda a: result16.DataTransfer(_status(a), data=_get(a, "data")),
        )
    if isinstance(command, call16.ReserveNow):
        parent = command.parent_id_tag
        return Translated(
            call201.ReserveNow(
                id=command.reservation_id,
                expiry_date_time=command.expiry_date,
                id_token=data201.IdTokenType(id_token=command.id_tag, type="Central"),
                evse_id=command.connector_id or None,
                group_id_token=_group(parent),
            ),
            lambda a: result16.ReserveNow(_status(a)),
        )
    if isinstance(command, call16.CancelReservation):
        return Translated(
            call201.CancelReservation(reservation_id=command.reservation_id),
            lambda a: result16.CancelReservation(_status(a)),
        )
    if isinstance(command, call16.SendLocalList):
        entries = []
        for entry in command.local_authorization_list or []:
            info = _get(entry, "id_tag_info")
            entries.append(
                data201.AuthorizationData(
                    id_token=data201.IdTokenType(id_token=_get(entry, "id_tag"), type="Central"),
                    id_token_info=None
                    if info is None
                    else data201.IdTokenInfoType(
                        status=_text(_get(info, "status")),
                        cache_expiry_date_time=_get(info, "expiry_date"),
                        group_id_token=_group(_get(info, "parent_id_tag")),
                    ),
                )
            )
        return Translated(
            call201.SendLocalList(
                version_number=command.list_version,
                update_type=_text(command.update_type),
                local_authorization_list=entries or None,
            ),
            lambda a: result16.SendLocalList(_status(a)),
        )
    if isinstance(command, call16.GetLocalListVersion):
        return Translated(
            call201.GetLocalListVersion(),
            lambda a: result16.GetLocalListVersion(_get(a, "version_number")),
        )
    if isinstance(command, call16.SetChargingProfile):
        profile = command.cs_charging_profiles
        tx_id = _get(profile, "transaction_id")
        charger_id = None if tx_id is None else charger_transaction_id(tx_id)
        if tx_id is not None and charger_id is None:
            return Translated(None, lambda _: result16.SetChargingProfile("Rejected"))
        return Translated(
            call201.SetChargingProfile(
                evse_id=command.connector_id, charging_profile=_profile(profile, charger_id)
            ),
            lambda a: result16.SetChargingProfile(_status(a)),
        )
    if isinstance(command, call16.ClearChargingProfile):
        purpose = _text(command.charging_profile_purpose)
        criteria = None
        if (  # stack level 0 is a criterion too (none at all clears every profile)
            command.connector_id is not None
            or purpose is not None
            or command.stack_level is not None
        ):
            criteria = data201.ClearChargingProfileType(
                evse_id=command.connector_id,
                charging_profile_purpose=_PURPOSES.get(purpose, purpose),
                stack_level=command.stack_level,
            )
        return Translated(
            call201.ClearChargingProfile(
                charging_profile_id=command.id, charging_profile_criteria=criteria
            ),
            lambda a: result16.ClearChargingProfile(_status(a)),
        )
    if isinstance(command, call16.GetCompositeSchedule):
        return Translated(
            call201.GetCompositeSchedule(
                duration=command.duration,
                evse_id=command.connector_id,
                charging_rate_unit=_text(command.charging_rate_unit),
            ),
            _composite_schedule,
        )
    if isinstance(command, call16.UpdateFirmware):
        return Translated(
            call201.UpdateFirmware(
                request_id=next_request_id(),
                firmware=data201.FirmwareType(
                    location=command.location, retrieve_date_time=command.retrieve_date
                ),
                retries=command.retries,
                retry_interval=command.retry_interval,
            ),
            lambda a: result16.UpdateFirmware(),
        )
    if isinstance(command, call16.GetDiagnostics):
        return Translated(
            call201.GetLog(
                log=data201.LogParametersType(
                    remote_location=command.location,
                    oldest_timestamp=command.start_time,
                    latest_timestamp=command.stop_time,
                ),
                log_type="DiagnosticsLog",
                request_id=next_request_id(),
                retries=command.retries,
                retry_interval=command.retry_interval,
            ),
            lambda a: result16.GetDiagnostics(file_name=_get(a, "filename")),
        )
    security = _security(command, action)
    if security is not None:
        return security
    raise UnsupportedCommandError(action, "2.0.1")


_PURPOSES = {"ChargePointMaxProfile": "ChargingStationMaxProfile"}
"""1.6 profile purposes renamed in 2.0.1 (the others keep their names)."""


def _profile(profile: Any, charger_transaction_id: str | None) -> data201.ChargingProfileType:
    """A 1.6 ChargingProfile (dataclass or dict) as 2.0.1's: one schedule, numbered like
    the profile; ``transactionId`` the charger's own id of the session."""
    schedule = _get(profile, "charging_schedule")
    periods = [
        data201.ChargingSchedulePeriodType(
            start_period=_get(p, "start_period"),
            limit=_get(p, "limit"),
            number_phases=_get(p, "number_phases"),
        )
        for p in _get(schedule, "charging_schedule_period") or []
    ]
    profile_id = _get(profile, "charging_profile_id")
    purpose = _text(_get(profile, "charging_profile_purpose"))
    return data201.ChargingProfileType(
        id=profile_id,
        stack_level=_get(profile, "stack_level"),
        charging_profile_purpose=_PURPOSES.get(purpose, purpose),
        charging_profile_kind=_text(_get(profile, "charging_profile_kind")),
        charging_schedule=[
            data201.ChargingScheduleType(
                id=profile_id,
                charging_rate_unit=_text(_get(schedule, "charging_rate_unit")),
                charging_schedule_period=periods,
                start_schedule=_get(schedule, "start_schedule"),
                duration=_get(schedule, "duration"),
                min_charging_rate=_get(schedule, "min_charging_rate"),
            )
        ],
        valid_from=_get(profile, "valid_from"),
        valid_to=_get(profile, "valid_to"),
        transaction_id=charger_transaction_id,
        recurrency_kind=_text(_get(profile, "recurrency_kind")),
    )


def _group(parent_id_tag: str | None) -> data201.IdTokenType | None:
    """A 1.6 parent id tag as 2.0.1's ``groupIdToken``."""
    if parent_id_tag is None:
        return None
    return data201.IdTokenType(id_token=parent_id_tag, type="Central")


def _composite_schedule(answer: Any) -> Any:
    """2.0.1's CompositeSchedule (the EVSE, its start, its periods) as 1.6's answer: the
    connector, ``scheduleStart`` and a ChargingSchedule starting then."""
    schedule = _get(answer, "schedule")
    if _status(answer) != "Accepted" or schedule is None:
        return result16.GetCompositeSchedule("Rejected")
    start = _get(schedule, "schedule_start")
    return result16.GetCompositeSchedule(
        "Accepted",
        connector_id=_get(schedule, "evse_id"),
        schedule_start=start,
        charging_schedule=data16.ChargingSchedule(
            charging_rate_unit=_text(_get(schedule, "charging_rate_unit")),
            charging_schedule_period=[
                data16.ChargingSchedulePeriod(
                    start_period=_get(p, "start_period"),
                    limit=_get(p, "limit"),
                    number_phases=_get(p, "number_phases"),
                )
                for p in _get(schedule, "charging_schedule_period") or []
            ],
            duration=_get(schedule, "duration"),
            start_schedule=start,
        ),
    )


def _configuration_status(answer: Any) -> Any:
    results = _get(answer, "set_variable_result") or []
    status = _text(_get(results[0], "attribute_status")) if results else "Rejected"
    return result16.ChangeConfiguration(_SET_STATUS.get(str(status), "Rejected"))


def _configuration(answer: Any, unknown: list[str]) -> Any:
    keys = []
    missing = list(unknown)
    for result in _get(answer, "get_variable_result") or []:
        where = (
            _get(_get(result, "component"), "name"),
            _get(_get(result, "variable"), "name"),
        )
        key = KEY_OF.get(where)
        if key is None:
            continue
        if key in WRITE_ONLY:  # it exists (Rejected: write-only); its value is never read
            if _text(_get(result, "attribute_status")) in ("Accepted", "Rejected"):
                keys.append(data16.KeyValue(key=key, readonly=False))
            else:
                missing.append(key)
        elif _text(_get(result, "attribute_status")) == "Accepted":
            value = _get(result, "attribute_value")
            keys.append(data16.KeyValue(key=key, readonly=False, value=value))
        else:
            missing.append(key)
    return result16.GetConfiguration(configuration_key=keys, unknown_key=missing)


def heartbeat_interval_set(command: Any, answer: Any) -> int | None:
    """The heartbeat interval a charger now keeps after ``command`` was answered
    ``answer`` (either version): a ChangeConfiguration of HeartbeatInterval, or a 2.0.1
    SetVariables of OCPPCommCtrlr.HeartbeatInterval, Accepted with a whole number of
    seconds; None for anything else (RebootRequired: not yet)."""
    value: Any = None
    if isinstance(command, call16.ChangeConfiguration):
        if command.key.casefold() == "heartbeatinterval" and _status(answer) == "Accepted":
            value = command.value
    elif isinstance(command, call201.SetVariables):
        accepted = {
            (_get(_get(r, "component"), "name"), _get(_get(r, "variable"), "name"))
            for r in _get(answer, "set_variable_result") or []
            if _text(_get(r, "attribute_status")) == "Accepted"
        }
        for item in command.set_variable_data:
            where = (_get(item.component, "name"), _get(item.variable, "name"))
            kind = _text(item.attribute_type) or "Actual"
            if where == ("OCPPCommCtrlr", "HeartbeatInterval") and kind == "Actual":
                if where in accepted and _get(item.component, "evse") is None:
                    value = item.attribute_value
    try:
        seconds = int(str(value).strip()) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 < seconds <= 86_400 else None


def with_mutability(answer: Any, mutability: Callable[[str, str], str | None]) -> Any:
    """A GetConfiguration answer read back from GetVariables (which does not say whether
    a variable may be written) with ``readonly`` from the station's device model:
    ``mutability(component, variable)`` — ReadOnly, ReadWrite, WriteOnly or None (not
    reported: left writable, as the key table's variables are by the specification)."""
    if not isinstance(answer, result16.GetConfiguration):
        return answer
    for entry in answer.configuration_key or []:
        where = VARIABLES.get(_get(entry, "key"))
        if where is not None and mutability(*where) == "ReadOnly":
            entry.readonly = True
    return answer


def _status(answer: Any) -> str:
    return str(_text(_get(answer, "status")))


def _accepted(answer: Any) -> str:
    """Reset: Accepted, or Scheduled (it resets when idle: accepted), else Rejected."""
    return "Accepted" if _status(answer) in ("Accepted", "Scheduled") else "Rejected"


# -- the security extension (the 1.6 whitepaper's commands, in 2.0.1) --------------------------

_CERTIFICATE_USE = {  # 1.6 CertificateUse → 2.0.1 InstallCertificateUse / GetCertificateIdUse
    "CentralSystemRootCertificate": "CSMSRootCertificate",
    "ManufacturerRootCertificate": "ManufacturerRootCertificate",
}
_EXTENDED_TRIGGERS = {  # 1.6 ExtendedTriggerMessage's MessageTrigger → 2.0.1 MessageTrigger
    "BootNotification": "BootNotification",
    "FirmwareStatusNotification": "FirmwareStatusNotification",
    "Heartbeat": "Heartbeat",
    "LogStatusNotification": "LogStatusNotification",
    "MeterValues": "MeterValues",
    "SignChargePointCertificate": "SignChargingStationCertificate",
    "StatusNotification": "StatusNotification",
}


def _security(command: Any, action: str) -> Translated | None:
    """A security-extension command (the whitepaper's, and ChangeConfiguration's keys
    in :data:`WRITE_ONLY` go through SetVariables above) as its 2.0.1 call; None for
    any other command. The statuses carry the same names in both versions (InstallCertificate
    Accepted/Rejected/Failed, DeleteCertificate Accepted/Failed/NotFound, UpdateFirmware
    Accepted/Rejected/AcceptedCanceled/InvalidCertificate/RevokedCertificate, GetLog
    Accepted/Rejected/AcceptedCanceled, TriggerMessage Accepted/Rejected/NotImplemented):
    each is read back as it is."""
    if isinstance(command, call16.InstallCertificate):
        use = str(_text(command.certificate_type))
        return Translated(
            call201.InstallCertificate(
                certificate_type=_CERTIFICATE_USE.get(use, use), certificate=command.certificate
            ),
            lambda a: result16.InstallCertificate(_status(a)),
        )
    if isinstance(command, call16.GetInstalledCertificateIds):
        use = str(_text(command.certificate_type))
        wanted = _CERTIFICATE_USE.get(use, use)
        return Translated(
            call201.GetInstalledCertificateIds(certificate_type=[wanted]),
            lambda a: _installed_ids(a, wanted),
        )
    if isinstance(command, call16.DeleteCertificate):
        return Translated(
            call201.DeleteCertificate(
                certificate_hash_data=_hash_data(command.certificate_hash_data, 201)
            ),
            lambda a: result16.DeleteCertificate(_status(a)),
        )
    if isinstance(command, call16.SignedUpdateFirmware):
        firmware = command.firmware
        return Translated(
            call201.UpdateFirmware(
                request_id=command.request_id,
                firmware=data201.FirmwareType(
                    location=_get(firmware, "location"),
                    retrieve_date_time=_get(firmware, "retrieve_date_time"),
                    install_date_time=_get(firmware, "install_date_time"),
                    signing_certificate=_get(firmware, "signing_certificate"),
                    signature=_get(firmware, "signature"),
                ),
                retries=command.retries,
                retry_interval=command.retry_interval,
            ),
            lambda a: result16.SignedUpdateFirmware(_status(a)),
        )
    if isinstance(command, call16.GetLog):
        parameters = command.log
        return Translated(
            call201.GetLog(
                log=data201.LogParametersType(
                    remote_location=_get(parameters, "remote_location"),
                    oldest_timestamp=_get(parameters, "oldest_timestamp"),
                    latest_timestamp=_get(parameters, "latest_timestamp"),
                ),
                log_type=_text(command.log_type),
                request_id=command.request_id,
                retries=command.retries,
                retry_interval=command.retry_interval,
            ),
            lambda a: result16.GetLog(_status(a), filename=_get(a, "filename")),
        )
    if isinstance(command, call16.CertificateSigned):
        return Translated(
            call201.CertificateSigned(
                certificate_chain=command.certificate_chain,
                certificate_type="ChargingStationCertificate",
            ),
            lambda a: result16.CertificateSigned(_status(a)),
        )
    return None


def _hash_data(hashed: Any, version: int) -> Any:
    """A CertificateHashData (dataclass or dict, either version's) as the other's."""
    kind = data201.CertificateHashDataType if version == 201 else data16.CertificateHashData
    return kind(
        hash_algorithm=_text(_get(hashed, "hash_algorithm")),
        issuer_name_hash=_get(hashed, "issuer_name_hash"),
        issuer_key_hash=_get(hashed, "issuer_key_hash"),
        serial_number=_get(hashed, "serial_number"),
    )


def _installed_ids(answer: Any, wanted: str) -> Any:
    """GetInstalledCertificateIds' chains of the type asked, as 1.6's flat hash list
    (child certificates have no 1.6 form); NotFound stays NotFound."""
    hashes = [
        _hash_data(_get(chain, "certificate_hash_data"), 16)
        for chain in _get(answer, "certificate_hash_data_chain") or []
        if _text(_get(chain, "certificate_type")) in (wanted, None)
    ]
    return result16.GetInstalledCertificateIds(
        _status(answer), certificate_hash_data=hashes or None
    )
