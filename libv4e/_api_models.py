"""Request bodies of the REST API (pydantic models, validated by quart-schema).

Each command model knows how to become its ``ocpp.v16.call`` payload. Field names are
snake_case as in the seed's curls.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from ocpp.v16 import call, datatypes, enums
from pydantic import BaseModel, ConfigDict, Field

from ._convert import from_json_payload
from ._registry import iso

IdTagStr = Field(min_length=1, max_length=20, description="An OCPP id tag (1 to 20 characters).")


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


class RemoteStartBody(Command):
    """OCPP RemoteStartTransaction."""

    id_tag: str = IdTagStr
    connector_id: int | None = Field(None, gt=0)
    charging_profile: dict[str, Any] | None = Field(
        None, description="An OCPP ChargingProfile object (camelCase), TxProfile purpose."
    )

    def to_ocpp(self) -> call.RemoteStartTransaction:
        profile = None
        if self.charging_profile is not None:
            profile = from_json_payload(datatypes.ChargingProfile, self.charging_profile)
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


class SendLocalListBody(_Body):
    """Add or update one card in the CSMS's list and push it with SendLocalList."""

    id_tag: str = IdTagStr
    status: AuthStatus = "Accepted"
    expiry_date: dt.datetime | None = None
    parent_id_tag: str | None = Field(None, max_length=20)


class IdTagBody(SendLocalListBody):
    """An entry of the CSMS's authorization list."""


class GetConfigurationBody(Command):
    """OCPP GetConfiguration (all keys when ``keys`` is omitted)."""

    keys: list[str] | None = None

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
    """OCPP ReserveNow."""

    connector_id: int = Field(ge=0)
    expiry_date: dt.datetime
    id_tag: str = IdTagStr
    reservation_id: int
    parent_id_tag: str | None = Field(None, max_length=20)

    def to_ocpp(self) -> call.ReserveNow:
        expiry = (
            self.expiry_date if self.expiry_date.tzinfo else self.expiry_date.replace(tzinfo=dt.UTC)
        )
        return call.ReserveNow(
            self.connector_id, iso(expiry), self.id_tag, self.reservation_id, self.parent_id_tag
        )


class CancelReservationBody(Command):
    """OCPP CancelReservation."""

    reservation_id: int

    def to_ocpp(self) -> call.CancelReservation:
        return call.CancelReservation(self.reservation_id)


class SetChargingProfileBody(Command):
    """OCPP SetChargingProfile; ``cs_charging_profiles`` is an OCPP ChargingProfile object
    in its camelCase JSON form."""

    connector_id: int = Field(ge=0)
    cs_charging_profiles: dict[str, Any]

    def to_ocpp(self) -> call.SetChargingProfile:
        profile = from_json_payload(datatypes.ChargingProfile, self.cs_charging_profiles)
        return call.SetChargingProfile(self.connector_id, profile)


class ClearChargingProfileBody(Command):
    """OCPP ClearChargingProfile (all criteria optional)."""

    id: int | None = None
    connector_id: int | None = Field(None, ge=0)
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
    """OCPP GetCompositeSchedule."""

    connector_id: int = Field(ge=0)
    duration: int = Field(gt=0, description="Seconds.")
    charging_rate_unit: Literal["A", "W"] | None = None

    def to_ocpp(self) -> call.GetCompositeSchedule:
        unit = self.charging_rate_unit
        return call.GetCompositeSchedule(
            self.connector_id, self.duration, enums.ChargingRateUnitType(unit) if unit else None
        )


class GetDiagnosticsBody(Command):
    """OCPP GetDiagnostics."""

    location: str = Field(min_length=1)
    retries: int | None = None
    retry_interval: int | None = None
    start_time: dt.datetime | None = None
    stop_time: dt.datetime | None = None

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

    location: str = Field(min_length=1)
    retrieve_date: dt.datetime
    retries: int | None = None
    retry_interval: int | None = None

    def to_ocpp(self) -> call.UpdateFirmware:
        return call.UpdateFirmware(
            self.location, iso(_aware(self.retrieve_date)), self.retries, self.retry_interval
        )


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _opt_iso(value: dt.datetime | None) -> str | None:
    return None if value is None else iso(_aware(value))


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
