"""Request bodies of the REST API (pydantic models, validated by quart-schema).

Each command model knows how to become its ``ocpp.v16.call`` payload. Field names are
snake_case as in the seed's curls.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from ocpp.v16 import call, datatypes, enums
from ocpp.v201 import call as call201
from ocpp.v201 import datatypes as data201
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    model_validator,
)
from pydantic.alias_generators import to_camel

from libv4e.csms import MAX_ALIAS_CHARS, MAX_ALIAS_WORDS
from libv4e.protocol import from_json_payload, iso

IdTagStr = Field(min_length=1, max_length=20, description="An OCPP id tag (1 to 20 characters).")


def _utc(value: dt.datetime) -> dt.datetime:
    """An aware UTC datetime (UTC if no zone); one that UTC cannot hold is invalid."""
    aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    try:
        return aware.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("date-time out of range") from None


def _text_only(value: object) -> object:
    """A JSON date-time is an RFC 3339 string: a number (seconds since 1970?) is refused,
    not read as a 1970 date (pydantic's lax mode would take 5 as 1970-01-01T00:00:05)."""
    if isinstance(value, bool | int | float):
        raise ValueError("a date-time is an RFC 3339 string, e.g. 2026-12-04T12:00:00Z")
    return value


UtcDateTime = Annotated[dt.datetime, BeforeValidator(_text_only), AfterValidator(_utc)]
"""A date-time field of a request body: a zone is taken into account, none means UTC."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Command(_Body):
    """A command body that turns into an OCPP call."""

    def to_ocpp(self) -> Any:  # pragma: no cover - every subclass overrides
        raise NotImplementedError


class ResetBody(Command):
    """OCPP Reset."""

    type: Literal["Hard", "Soft"] = Field(description="Soft restarts software, Hard the unit.")

    def to_ocpp(self) -> call.Reset:
        return call.Reset(enums.ResetType(self.type))


class ChangeAvailabilityBody(Command):
    """OCPP ChangeAvailability."""

    type: Literal["Operative", "Inoperative"]
    connector_id: int = Field(0, ge=0, description="0 or omitted: the whole charge point.")

    def to_ocpp(self) -> call.ChangeAvailability:
        return call.ChangeAvailability(self.connector_id, enums.AvailabilityType(self.type))


class ChangeConfigurationBody(Command):
    """OCPP ChangeConfiguration."""

    key: str = Field(min_length=1, max_length=50)
    value: str = Field(max_length=500)

    def to_ocpp(self) -> call.ChangeConfiguration:
        return call.ChangeConfiguration(self.key, self.value)


class _OcppShaped(BaseModel):
    """An OCPP JSON object: camelCase as in the specification (snake_case accepted too)."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    def ocpp_json(self) -> dict[str, Any]:
        """The object as OCPP-J JSON (camelCase, no nulls, date-times in UTC)."""
        data: dict[str, Any] = _jsonable(self.model_dump(by_alias=True, exclude_none=True))
        return data


class ChargingSchedulePeriodModel(_OcppShaped):
    """One period of a charging schedule."""

    start_period: int = Field(
        ge=0, description="Seconds from the start of the schedule (the first is 0)."
    )
    limit: float = Field(ge=0, description="The limit in the schedule's chargingRateUnit.")
    number_phases: int | None = Field(None, ge=1, le=3, description="Phases (default 3).")


class ChargingScheduleModel(_OcppShaped):
    """OCPP ChargingSchedule."""

    charging_rate_unit: Literal["A", "W"] = Field(description="A (amperes) or W (watts).")
    charging_schedule_period: list[ChargingSchedulePeriodModel] = Field(
        min_length=1, max_length=100, description="Periods, ascending startPeriod."
    )
    duration: int | None = Field(None, ge=0, description="Seconds; omitted: no end.")
    start_schedule: UtcDateTime | None = Field(
        None, description="When the schedule starts (Absolute and Recurring)."
    )
    min_charging_rate: float | None = Field(None, ge=0)


class ChargingProfileModel(_OcppShaped):
    """OCPP ChargingProfile (csChargingProfiles), in its camelCase JSON form."""

    charging_profile_id: int = Field(description="The profile's id (unique on the charger).")
    stack_level: int = Field(ge=0, description="Higher levels take precedence.")
    charging_profile_purpose: Literal["ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"]
    charging_profile_kind: Literal["Absolute", "Recurring", "Relative"]
    charging_schedule: ChargingScheduleModel
    transaction_id: int | None = Field(None, description="TxProfile only: the transaction.")
    recurrency_kind: Literal["Daily", "Weekly"] | None = Field(
        None, description="Recurring profiles: how the schedule repeats."
    )
    valid_from: UtcDateTime | None = None
    valid_to: UtcDateTime | None = None

    @model_validator(mode="after")
    def _transaction_only_for_tx_profile(self) -> ChargingProfileModel:
        if self.transaction_id is not None and self.charging_profile_purpose != "TxProfile":
            raise ValueError("transactionId is only allowed in a TxProfile")
        if self.valid_from and self.valid_to and self.valid_from > self.valid_to:
            raise ValueError("valid_from must not be after valid_to")
        return self

    def to_ocpp(self) -> datatypes.ChargingProfile:
        """The ``ocpp.v16`` datatype."""
        return from_json_payload(datatypes.ChargingProfile, self.ocpp_json())


class RemoteStartBody(Command):
    """OCPP RemoteStartTransaction."""

    id_tag: str = IdTagStr
    connector_id: int | None = Field(None, gt=0, description="Omitted: the charger chooses.")
    charging_profile: ChargingProfileModel | None = Field(
        None,
        description="An OCPP ChargingProfile (camelCase) with purpose TxProfile, for this "
        "session; recorded under the charger's charging_profiles.",
    )

    def to_ocpp(self) -> call.RemoteStartTransaction:
        profile = None if self.charging_profile is None else self.charging_profile.to_ocpp()
        return call.RemoteStartTransaction(self.id_tag, self.connector_id, profile)


class RemoteStopBody(Command):
    """OCPP RemoteStopTransaction."""

    transaction_id: int

    def to_ocpp(self) -> call.RemoteStopTransaction:
        return call.RemoteStopTransaction(self.transaction_id)


class UnlockConnectorBody(Command):
    """OCPP UnlockConnector."""

    connector_id: int = Field(gt=0)

    def to_ocpp(self) -> call.UnlockConnector:
        return call.UnlockConnector(self.connector_id)


AuthStatus = Literal["Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"]


class IdTagBody(_Body):
    """An entry of the CSMS's authorization list."""

    id_tag: str = IdTagStr
    status: AuthStatus = "Accepted"
    expiry_date: UtcDateTime | None = None
    parent_id_tag: str | None = Field(None, max_length=20)


class IdTagInfoModel(_Body):
    """OCPP IdTagInfo of a local list entry."""

    status: AuthStatus
    expiry_date: UtcDateTime | None = None
    parent_id_tag: str | None = Field(None, max_length=20)


class AuthorizationEntry(_Body):
    """OCPP AuthorizationData: an id tag and its info (without info: remove the tag, in a
    Differential update)."""

    id_tag: str = IdTagStr
    id_tag_info: IdTagInfoModel | None = None


MAX_LOCAL_LIST_ENTRIES = 10_000


class SendLocalListBody(_Body):
    """OCPP SendLocalList, in one of two forms.

    One card (the seed's form): ``id_tag`` (+ ``status``, ``expiry_date``,
    ``parent_id_tag``) is added to or updated in the CSMS's list and pushed as a
    Differential update at the CSMS's list version.

    A whole update: ``update_type`` Full or Differential, ``list_version`` (omitted: one
    above anything this charger was sent, at least the CSMS's list version) and
    ``local_authorization_list`` (entries; in a Differential update an entry without
    ``id_tag_info`` removes the tag; a Full update without the list sends the CSMS's whole
    list). The answer is recorded under ``GET /chargers/{cp_id}/local_list``; a
    VersionMismatch answer comes with ``offer``, a Full update body to send next (sent at
    once with ``on_version_mismatch: send_full``).
    """

    id_tag: str | None = Field(
        None, min_length=1, max_length=20, description="One-card form: the card to push."
    )
    status: AuthStatus | None = Field(None, description="One-card form (default Accepted).")
    expiry_date: UtcDateTime | None = Field(None, description="One-card form.")
    parent_id_tag: str | None = Field(None, max_length=20, description="One-card form.")
    update_type: Literal["Full", "Differential"] | None = Field(
        None, description="Update form: Full replaces the charger's list."
    )
    list_version: int | None = Field(
        None, ge=0, le=2**31 - 1, description="Update form: the version after the update."
    )
    local_authorization_list: list[AuthorizationEntry] | None = Field(
        None, max_length=MAX_LOCAL_LIST_ENTRIES, description="Update form: the entries."
    )
    update_csms_list: bool = Field(
        True,
        description="Update form: also apply the entries to the CSMS's own list (upserts; "
        "removals in a Differential update).",
    )
    on_version_mismatch: Literal["offer", "send_full"] = Field(
        "offer",
        description="Update form: after VersionMismatch, only offer a Full update, or send it.",
    )

    @model_validator(mode="after")
    def _one_form(self) -> SendLocalListBody:
        if self.id_tag is not None:
            extra = [
                name
                for name in ("update_type", "list_version", "local_authorization_list")
                if getattr(self, name) is not None
            ]
            if extra:
                raise ValueError(f"id_tag cannot be combined with {', '.join(extra)}")
            return self
        if self.update_type is None:
            raise ValueError("give either id_tag (one card) or update_type (an update)")
        if self.status or self.expiry_date or self.parent_id_tag:
            raise ValueError("status, expiry_date and parent_id_tag need id_tag")
        entries = self.local_authorization_list or []
        tags = [e.id_tag for e in entries]
        if len(set(tags)) != len(tags):
            raise ValueError("an id tag appears twice in local_authorization_list")
        if self.update_type == "Full" and any(e.id_tag_info is None for e in entries):
            raise ValueError("every entry of a Full update needs id_tag_info")
        if self.update_type == "Differential" and self.local_authorization_list is None:
            raise ValueError("a Differential update needs local_authorization_list")
        return self


class GetConfigurationBody(Command):
    """OCPP GetConfiguration (all keys when ``keys`` is omitted)."""

    keys: list[Annotated[str, Field(min_length=1, max_length=50)]] | None = Field(
        None, max_length=500, description="Configuration keys to read; omitted: all."
    )

    def to_ocpp(self) -> call.GetConfiguration:
        return call.GetConfiguration(self.keys)


class EmptyBody(Command):
    """No fields."""


class ClearCacheBody(EmptyBody):
    """OCPP ClearCache."""

    def to_ocpp(self) -> call.ClearCache:
        return call.ClearCache()


class GetLocalListVersionBody(EmptyBody):
    """OCPP GetLocalListVersion."""

    def to_ocpp(self) -> call.GetLocalListVersion:
        return call.GetLocalListVersion()


class TriggerMessageBody(Command):
    """OCPP TriggerMessage."""

    requested_message: Literal[
        "BootNotification",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "StatusNotification",
    ]
    connector_id: int | None = Field(None, ge=0)

    def to_ocpp(self) -> call.TriggerMessage:
        return call.TriggerMessage(enums.MessageTrigger(self.requested_message), self.connector_id)


class DataTransferBody(Command):
    """OCPP DataTransfer (CSMS to charger)."""

    vendor_id: str = Field(min_length=1, max_length=255)
    message_id: str | None = Field(None, max_length=50)
    data: str | None = None

    def to_ocpp(self) -> call.DataTransfer:
        return call.DataTransfer(self.vendor_id, self.message_id, self.data)


class ReserveNowBody(Command):
    """OCPP ReserveNow; the reservation is recorded (GET /reservations) and its id is
    allocated by the CSMS when omitted."""

    connector_id: int = Field(ge=0, description="0: any connector (if the charger allows).")
    expiry_date: UtcDateTime = Field(description="When the reservation ends (UTC if no zone).")
    id_tag: str = IdTagStr
    reservation_id: int | None = Field(
        None, ge=0, le=2**31 - 1, description="Omitted: allocated by the CSMS (unique)."
    )
    parent_id_tag: str | None = Field(None, max_length=20)

    def to_ocpp(self, reservation_id: int | None = None) -> call.ReserveNow:
        """The call, with ``reservation_id`` when the body has none (0 if neither)."""
        rid = self.reservation_id if self.reservation_id is not None else reservation_id
        return call.ReserveNow(
            self.connector_id,
            iso(_aware(self.expiry_date)),
            self.id_tag,
            rid or 0,
            self.parent_id_tag,
        )


class CancelReservationBody(Command):
    """OCPP CancelReservation."""

    reservation_id: int

    def to_ocpp(self) -> call.CancelReservation:
        return call.CancelReservation(self.reservation_id)


class SetChargingProfileBody(Command):
    """OCPP SetChargingProfile; ``cs_charging_profiles`` is an OCPP ChargingProfile object
    in its camelCase JSON form. Recorded under GET /chargers/{cp_id}/charging_profiles."""

    connector_id: int = Field(ge=0, description="0: the whole charger.")
    cs_charging_profiles: ChargingProfileModel

    def to_ocpp(self) -> call.SetChargingProfile:
        return call.SetChargingProfile(self.connector_id, self.cs_charging_profiles.to_ocpp())


class ClearChargingProfileBody(Command):
    """OCPP ClearChargingProfile (all criteria optional; none: clear every profile). With
    ``id`` the other criteria are ignored. Matching records are marked Cleared when the
    charger answers Accepted."""

    id: int | None = Field(None, description="The chargingProfileId to clear.")
    connector_id: int | None = Field(None, ge=0, description="0: the charger-wide profiles.")
    charging_profile_purpose: (
        Literal["ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"] | None
    ) = None
    stack_level: int | None = Field(None, ge=0)

    def to_ocpp(self) -> call.ClearChargingProfile:
        purpose = self.charging_profile_purpose
        return call.ClearChargingProfile(
            self.id,
            self.connector_id,
            enums.ChargingProfilePurposeType(purpose) if purpose else None,
            self.stack_level,
        )


class GetCompositeScheduleBody(Command):
    """OCPP GetCompositeSchedule; the answer comes with ``csms_view``, what the CSMS
    believes is installed on that connector."""

    connector_id: int = Field(ge=0, description="0: the whole charger's expected usage.")
    duration: int = Field(gt=0, description="Seconds.")
    charging_rate_unit: Literal["A", "W"] | None = None

    def to_ocpp(self) -> call.GetCompositeSchedule:
        unit = self.charging_rate_unit
        return call.GetCompositeSchedule(
            self.connector_id, self.duration, enums.ChargingRateUnitType(unit) if unit else None
        )


class GetDiagnosticsBody(Command):
    """OCPP GetDiagnostics."""

    location: str = Field(min_length=1, description="URI to upload the diagnostics to.")
    retries: int | None = Field(None, ge=0)
    retry_interval: int | None = Field(None, ge=0, description="Seconds.")
    start_time: UtcDateTime | None = None
    stop_time: UtcDateTime | None = None

    @model_validator(mode="after")
    def _ordered(self) -> GetDiagnosticsBody:
        if self.start_time and self.stop_time and self.start_time > self.stop_time:
            raise ValueError("start_time must not be after stop_time")
        return self

    def to_ocpp(self) -> call.GetDiagnostics:
        return call.GetDiagnostics(
            self.location,
            self.retries,
            self.retry_interval,
            _opt_iso(self.start_time),
            _opt_iso(self.stop_time),
        )


class UpdateFirmwareBody(Command):
    """OCPP UpdateFirmware."""

    location: str = Field(min_length=1, description="URI of the firmware.")
    retrieve_date: UtcDateTime = Field(description="Download it after this time.")
    retries: int | None = Field(None, ge=0)
    retry_interval: int | None = Field(None, ge=0, description="Seconds.")

    def to_ocpp(self) -> call.UpdateFirmware:
        return call.UpdateFirmware(
            self.location, iso(_aware(self.retrieve_date)), self.retries, self.retry_interval
        )


# -- the security extension (OCPP 1.6 Security Whitepaper) ------------------------------

HashAlgorithm = Literal["SHA256", "SHA384", "SHA512"]


class CertificateHashDataBody(_Body):
    """OCPP CertificateHashData: identifies one installed certificate."""

    hash_algorithm: HashAlgorithm
    issuer_name_hash: str = Field(min_length=1, max_length=128)
    issuer_key_hash: str = Field(min_length=1, max_length=128)
    serial_number: str = Field(min_length=1, max_length=40)


class InstallCertificateBody(Command):
    """OCPP InstallCertificate (security extension): a root certificate for the charger."""

    certificate_type: Literal["CentralSystemRootCertificate", "ManufacturerRootCertificate"]
    certificate: str = Field(min_length=1, max_length=5500, description="PEM, one certificate.")

    @model_validator(mode="after")
    def _pem(self) -> InstallCertificateBody:
        from libv4e.protocol import load_pem_chain

        try:
            load_pem_chain(self.certificate)
        except ValueError as exc:
            raise ValueError(f"certificate: not a PEM certificate ({exc})") from None
        return self

    def to_ocpp(self) -> call.InstallCertificate:
        return call.InstallCertificate(
            certificate_type=enums.CertificateUse(self.certificate_type),
            certificate=self.certificate,
        )


class GetInstalledCertificateIdsBody(Command):
    """OCPP GetInstalledCertificateIds (security extension)."""

    certificate_type: Literal["CentralSystemRootCertificate", "ManufacturerRootCertificate"]

    def to_ocpp(self) -> call.GetInstalledCertificateIds:
        return call.GetInstalledCertificateIds(
            certificate_type=enums.CertificateUse(self.certificate_type)
        )


class DeleteCertificateBody(Command):
    """OCPP DeleteCertificate (security extension)."""

    certificate_hash_data: CertificateHashDataBody

    def to_ocpp(self) -> call.DeleteCertificate:
        h = self.certificate_hash_data
        return call.DeleteCertificate(
            certificate_hash_data=datatypes.CertificateHashData(
                hash_algorithm=enums.HashAlgorithm(h.hash_algorithm),
                issuer_name_hash=h.issuer_name_hash,
                issuer_key_hash=h.issuer_key_hash,
                serial_number=h.serial_number,
            )
        )


class ExtendedTriggerMessageBody(Command):
    """OCPP ExtendedTriggerMessage (security extension); ``SignChargePointCertificate``
    has the charger send a new CSR (SignCertificate)."""

    requested_message: Literal[
        "BootNotification",
        "LogStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "SignChargePointCertificate",
        "StatusNotification",
    ]
    connector_id: int | None = Field(None, ge=0)

    def to_ocpp(self) -> call.ExtendedTriggerMessage:
        return call.ExtendedTriggerMessage(
            requested_message=enums.MessageTrigger(self.requested_message),
            connector_id=self.connector_id,
        )


class WithRequestId(Command):
    request_id: int | None = Field(
        None, ge=0, le=2**31 - 1, description="Omitted: the CSMS picks the next one."
    )

    def with_request_id(self, request_id: int) -> Any:
        """This command's OCPP call with ``request_id`` (when the body gave none)."""
        return self.model_copy(update={"request_id": request_id}).to_ocpp()


class SignedUpdateFirmwareBody(WithRequestId):
    """OCPP SignedUpdateFirmware (security extension)."""

    location: str = Field(min_length=1, max_length=512, description="URI of the firmware.")
    retrieve_date_time: UtcDateTime
    signing_certificate: str = Field(min_length=1, max_length=5500, description="PEM.")
    signature: str = Field(min_length=1, max_length=800, description="Base64.")
    install_date_time: UtcDateTime | None = None
    retries: int | None = Field(None, ge=0)
    retry_interval: int | None = Field(None, ge=0, description="Seconds.")

    def to_ocpp(self) -> call.SignedUpdateFirmware:
        assert self.request_id is not None
        return call.SignedUpdateFirmware(
            request_id=self.request_id,
            firmware=datatypes.Firmware(
                location=self.location,
                retrieve_date_time=iso(_aware(self.retrieve_date_time)),
                signing_certificate=self.signing_certificate,
                signature=self.signature,
                install_date_time=_opt_iso(self.install_date_time),
            ),
            retries=self.retries,
            retry_interval=self.retry_interval,
        )


class GetLogBody(WithRequestId):
    """OCPP GetLog (security extension): upload a diagnostics or security log."""

    log_type: Literal["DiagnosticsLog", "SecurityLog"]
    remote_location: str = Field(min_length=1, max_length=512, description="Upload URI.")
    oldest_timestamp: UtcDateTime | None = None
    latest_timestamp: UtcDateTime | None = None
    retries: int | None = Field(None, ge=0)
    retry_interval: int | None = Field(None, ge=0, description="Seconds.")

    @model_validator(mode="after")
    def _order(self) -> GetLogBody:
        if (
            self.oldest_timestamp is not None
            and self.latest_timestamp is not None
            and self.oldest_timestamp > self.latest_timestamp
        ):
            raise ValueError("oldest_timestamp is after latest_timestamp")
        return self

    def to_ocpp(self) -> call.GetLog:
        assert self.request_id is not None
        return call.GetLog(
            log_type=enums.Log(self.log_type),
            request_id=self.request_id,
            log=datatypes.LogParameters(
                remote_location=self.remote_location,
                oldest_timestamp=_opt_iso(self.oldest_timestamp),
                latest_timestamp=_opt_iso(self.latest_timestamp),
            ),
            retries=self.retries,
            retry_interval=self.retry_interval,
        )


class SecurityProfileBody(_Body):
    """The security profile the CSMS requires of a charger."""

    profile: Literal[1, 2, 3] = Field(
        description="1: Basic auth over ws; 2: Basic auth over TLS; 3: TLS client certificate."
    )


class AuthorizationKeyBody(_Body):
    """A new AuthorizationKey (generated when omitted); it is never echoed."""

    key: str | None = Field(
        None,
        min_length=16,
        max_length=40,
        pattern=r"^[\x21-\x7e]+$",
        description="16 to 40 printable ASCII characters; omitted: 40 random hex digits.",
    )


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _opt_iso(value: dt.datetime | None) -> str | None:
    return None if value is None else iso(_aware(value))


def _jsonable(value: Any) -> Any:
    """Date-times as OCPP strings, recursively."""
    if isinstance(value, dt.datetime):
        return iso(_aware(value))
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


class VariableRef(_Body):
    """A device-model variable of an OCPP 2.0.1 station: component and variable names
    (``OCPPCommCtrlr`` / ``HeartbeatInterval``), optionally on one EVSE."""

    component: str = Field(min_length=1, max_length=50)
    variable: str = Field(min_length=1, max_length=50)
    evse_id: int | None = Field(None, ge=0, le=2**31 - 1)

    def component_type(self) -> data201.ComponentType:
        evse = None if self.evse_id is None else data201.EVSEType(id=self.evse_id)
        return data201.ComponentType(name=self.component, evse=evse)


class VariableValue(VariableRef):
    """A device-model variable and the value to set (as text)."""

    value: str = Field(max_length=1000)


class GetVariablesBody(Command):
    """OCPP 2.0.1 GetVariables (2.0.1 stations only; a 1.6 charger answers 409)."""

    variables: list[VariableRef] = Field(min_length=1, max_length=100)

    def to_ocpp(self) -> Any:
        return call201.GetVariables(
            get_variable_data=[
                data201.GetVariableDataType(
                    component=v.component_type(), variable=data201.VariableType(name=v.variable)
                )
                for v in self.variables
            ]
        )


class SetVariablesBody(Command):
    """OCPP 2.0.1 SetVariables (2.0.1 stations only; a 1.6 charger answers 409)."""

    variables: list[VariableValue] = Field(min_length=1, max_length=100)

    def to_ocpp(self) -> Any:
        return call201.SetVariables(
            set_variable_data=[
                data201.SetVariableDataType(
                    attribute_value=v.value,
                    component=v.component_type(),
                    variable=data201.VariableType(name=v.variable),
                )
                for v in self.variables
            ]
        )


class GetBaseReportBody(Command):
    """OCPP 2.0.1 GetBaseReport: the station then sends its device model in NotifyReport
    (see ``GET /chargers/{cp_id}/device_model``); 2.0.1 stations only."""

    report_base: Literal["ConfigurationInventory", "FullInventory", "SummaryInventory"] = (
        "FullInventory"
    )
    request_id: int = Field(1, ge=0, le=2**31 - 1)

    def to_ocpp(self) -> Any:
        return call201.GetBaseReport(request_id=self.request_id, report_base=self.report_base)


class Ocpp201Payload(RootModel[dict[str, Any]]):
    """An OCPP 2.0.1 request payload as it goes on the wire (camelCase JSON), checked
    against the action's JSON schema (the ``ocpp`` package's)."""


COMMANDS: dict[str, type[Command]] = {
    "reset": ResetBody,
    "change_availability": ChangeAvailabilityBody,
    "change_configuration": ChangeConfigurationBody,
    "remote_start": RemoteStartBody,
    "remote_stop": RemoteStopBody,
    "unlock_connector": UnlockConnectorBody,
    "get_configuration": GetConfigurationBody,
    "clear_cache": ClearCacheBody,
    "get_local_list_version": GetLocalListVersionBody,
    "trigger_message": TriggerMessageBody,
    "data_transfer": DataTransferBody,
    "reserve_now": ReserveNowBody,
    "cancel_reservation": CancelReservationBody,
    "set_charging_profile": SetChargingProfileBody,
    "clear_charging_profile": ClearChargingProfileBody,
    "get_composite_schedule": GetCompositeScheduleBody,
    "get_diagnostics": GetDiagnosticsBody,
    "update_firmware": UpdateFirmwareBody,
    "install_certificate": InstallCertificateBody,
    "get_installed_certificate_ids": GetInstalledCertificateIdsBody,
    "delete_certificate": DeleteCertificateBody,
    "extended_trigger_message": ExtendedTriggerMessageBody,
    "signed_update_firmware": SignedUpdateFirmwareBody,
    "get_log": GetLogBody,
    "get_variables": GetVariablesBody,
    "set_variables": SetVariablesBody,
    "get_base_report": GetBaseReportBody,
}
"""Route name → body model, for ``POST /commands/{name}/{cp_id}``."""


class TicketBody(_Body):
    """A support ticket."""

    cp_id: str = Field(min_length=1, max_length=48)
    summary: str = Field(min_length=1, max_length=2000)
    scenario: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class PasswordBody(_Body):
    """A charger's HTTP Basic password (OCPP Security Profile 1/2)."""

    password: str = Field(min_length=16, max_length=40)


_NAME_CHAR = r"[^\s\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]"
SPOKEN_NAME_PATTERN = rf"^ *{_NAME_CHAR}+( +{_NAME_CHAR}+){{0,{MAX_ALIAS_WORDS - 1}}} *$"
"""One to MAX_ALIAS_WORDS words split by spaces: no control, bidi or zero-width
characters (a name is read aloud and shown on the dashboard, never markup)."""


def _spoken(value: str) -> str:
    return " ".join(value.split())


SpokenName = Annotated[
    str,
    Field(min_length=1, max_length=MAX_ALIAS_CHARS, pattern=SPOKEN_NAME_PATTERN),
    AfterValidator(_spoken),
]


ConnectorKey = Annotated[str, Field(pattern=r"^([1-9]|[1-5][0-9]|6[0-4])$")]
"""A connector id (1–64) as a JSON object key."""


class SpokenNamesBody(_Body):
    """The site's spoken names for a charger and its connectors, said instead of ids in
    every ``say`` line (replaces the charger's names; null / empty: the default words,
    "the charger", "this plug")."""

    charger: SpokenName | None = Field(None, description='e.g. "bay 3".')
    connectors: dict[ConnectorKey, SpokenName] = Field(
        default_factory=dict,
        max_length=64,
        description='Connector id → name, e.g. {"1": "bay 3, left plug"}.',
        json_schema_extra={"additionalProperties": False},
    )
