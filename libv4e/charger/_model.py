"""A charge point as plain state machines (no I/O, no clock): connectors, configuration,
local authorization, transactions and the energy meter.

The Trio runtime (``_charger.py``) feeds it time and commands and sends what it returns.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import TypeAlias

from ocpp.v16 import call, datatypes, enums

from libv4e._errors import InvalidTransition as InvalidTransition

ChargePointStatus: TypeAlias = enums.ChargePointStatus


class ConnectorEvent(enum.StrEnum):
    """What can happen to a connector."""

    PLUG_IN = "plug_in"
    START = "start"  # a transaction starts (authorized, cable in)
    SUSPEND_EV = "suspend_ev"
    SUSPEND_EVSE = "suspend_evse"
    RESUME = "resume"
    STOP = "stop"  # the transaction ends, cable still in
    UNPLUG = "unplug"
    RESERVE = "reserve"
    RESERVATION_END = "reservation_end"
    INOPERATIVE = "inoperative"
    OPERATIVE = "operative"
    FAULT = "fault"
    FAULT_CLEARED = "fault_cleared"


# The OCPP 1.6 connector status machine (section 4.9): (from, event) → to.
CONNECTOR_TRANSITIONS: dict[tuple[ChargePointStatus, ConnectorEvent], ChargePointStatus] = {
    (ChargePointStatus.available, ConnectorEvent.PLUG_IN): ChargePointStatus.preparing,
    (ChargePointStatus.available, ConnectorEvent.START): ChargePointStatus.charging,
    (ChargePointStatus.available, ConnectorEvent.RESERVE): ChargePointStatus.reserved,
    (ChargePointStatus.available, ConnectorEvent.INOPERATIVE): ChargePointStatus.unavailable,
    (ChargePointStatus.preparing, ConnectorEvent.START): ChargePointStatus.charging,
    (ChargePointStatus.preparing, ConnectorEvent.UNPLUG): ChargePointStatus.available,
    (ChargePointStatus.preparing, ConnectorEvent.INOPERATIVE): ChargePointStatus.unavailable,
    (ChargePointStatus.charging, ConnectorEvent.SUSPEND_EV): ChargePointStatus.suspended_ev,
    (ChargePointStatus.charging, ConnectorEvent.SUSPEND_EVSE): ChargePointStatus.suspended_evse,
    (ChargePointStatus.charging, ConnectorEvent.STOP): ChargePointStatus.finishing,
    (ChargePointStatus.charging, ConnectorEvent.UNPLUG): ChargePointStatus.available,
    (ChargePointStatus.suspended_ev, ConnectorEvent.RESUME): ChargePointStatus.charging,
    (ChargePointStatus.suspended_ev, ConnectorEvent.SUSPEND_EVSE): ChargePointStatus.suspended_evse,
    (ChargePointStatus.suspended_ev, ConnectorEvent.STOP): ChargePointStatus.finishing,
    (ChargePointStatus.suspended_ev, ConnectorEvent.UNPLUG): ChargePointStatus.available,
    (ChargePointStatus.suspended_evse, ConnectorEvent.RESUME): ChargePointStatus.charging,
    (ChargePointStatus.suspended_evse, ConnectorEvent.SUSPEND_EV): ChargePointStatus.suspended_ev,
    (ChargePointStatus.suspended_evse, ConnectorEvent.STOP): ChargePointStatus.finishing,
    (ChargePointStatus.suspended_evse, ConnectorEvent.UNPLUG): ChargePointStatus.available,
    (ChargePointStatus.finishing, ConnectorEvent.UNPLUG): ChargePointStatus.available,
    (ChargePointStatus.finishing, ConnectorEvent.PLUG_IN): ChargePointStatus.preparing,
    (ChargePointStatus.finishing, ConnectorEvent.START): ChargePointStatus.charging,
    (ChargePointStatus.reserved, ConnectorEvent.RESERVATION_END): ChargePointStatus.available,
    (ChargePointStatus.reserved, ConnectorEvent.PLUG_IN): ChargePointStatus.preparing,
    (ChargePointStatus.reserved, ConnectorEvent.START): ChargePointStatus.charging,
    (ChargePointStatus.reserved, ConnectorEvent.INOPERATIVE): ChargePointStatus.unavailable,
    (ChargePointStatus.unavailable, ConnectorEvent.OPERATIVE): ChargePointStatus.available,
    (ChargePointStatus.faulted, ConnectorEvent.FAULT_CLEARED): ChargePointStatus.available,
}
for _s in ChargePointStatus:
    if _s is not ChargePointStatus.faulted:
        CONNECTOR_TRANSITIONS[_s, ConnectorEvent.FAULT] = ChargePointStatus.faulted

IN_SESSION = frozenset(
    {ChargePointStatus.charging, ChargePointStatus.suspended_ev, ChargePointStatus.suspended_evse}
)


@dataclasses.dataclass(slots=True)
class Connector:
    """One connector (0 is the charge point as a whole)."""

    connector_id: int
    status: ChargePointStatus = ChargePointStatus.available
    error_code: enums.ChargePointErrorCode = enums.ChargePointErrorCode.no_error
    info: str | None = None
    plugged: bool = False
    locked: bool = False
    inoperative: bool = False  # ChangeAvailability Inoperative (persists across reboot)
    pending_availability: bool | None = None  # Scheduled: True = Inoperative after the session
    reservation_id: int | None = None
    reservation_tag: str | None = None
    reservation_expiry: float | None = None

    def can(self, event: ConnectorEvent) -> bool:
        """Whether ``event`` is allowed now."""
        return (self.status, event) in CONNECTOR_TRANSITIONS

    def apply(self, event: ConnectorEvent) -> ChargePointStatus:
        """Take ``event``; returns the new status (InvalidTransition if not allowed)."""
        new = CONNECTOR_TRANSITIONS.get((self.status, event))
        if new is None:
            raise InvalidTransition(f"connector {self.connector_id}: {event} in {self.status}")
        self.status = new
        return new

    def set_error(self, code: enums.ChargePointErrorCode, info: str | None = None) -> None:
        """Set the error code (and info) reported with the next StatusNotification."""
        self.error_code, self.info = code, info

    def notification(self, timestamp: str) -> call.StatusNotification:
        """The StatusNotification describing this connector now."""
        return call.StatusNotification(
            connector_id=self.connector_id,
            error_code=self.error_code,
            status=self.status,
            timestamp=timestamp,
            info=self.info,
        )


# -- configuration -------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class ConfigKey:
    """A configuration key: its value and how it may change."""

    value: str
    readonly: bool = False
    reboot_required: bool = False
    check: Callable[[str], bool] | None = None


def _int_at_least(low: int) -> Callable[[str], bool]:
    def check(v: str) -> bool:
        try:
            return int(v) >= low
        except ValueError:
            return False

    return check


def _bool(v: str) -> bool:
    return v.lower() in ("true", "false")


def _csl(allowed: frozenset[str]) -> Callable[[str], bool]:
    return lambda v: all(x.strip() in allowed for x in v.split(",") if x.strip())


MEASURANDS = frozenset(m.value for m in enums.Measurand)
DEFAULT_SAMPLED = (
    "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Voltage,SoC,"
    "Power.Offered,Current.Offered"
)


def default_configuration(connectors: int, heartbeat_interval: int) -> dict[str, ConfigKey]:
    """The OCPP 1.6 Core (and Local Auth List, Reservation, Smart Charging) keys."""
    pos, nonneg = _int_at_least(1), _int_at_least(0)
    return {
        "AllowOfflineTxForUnknownId": ConfigKey("false", check=_bool),
        "AuthorizationCacheEnabled": ConfigKey("true", check=_bool),
        "AuthorizeRemoteTxRequests": ConfigKey("true", check=_bool),
        "ClockAlignedDataInterval": ConfigKey("0", check=nonneg),
        "ConnectionTimeOut": ConfigKey("60", check=pos),
        "ConnectorPhaseRotation": ConfigKey("NotApplicable"),
        "GetConfigurationMaxKeys": ConfigKey("50", readonly=True),
        "HeartbeatInterval": ConfigKey(str(heartbeat_interval), check=nonneg),
        "LocalAuthorizeOffline": ConfigKey("true", check=_bool),
        "LocalPreAuthorize": ConfigKey("false", check=_bool),
        "MeterValuesAlignedData": ConfigKey(
            "Energy.Active.Import.Register", check=_csl(MEASURANDS)
        ),
        "MeterValuesSampledData": ConfigKey(DEFAULT_SAMPLED, check=_csl(MEASURANDS)),
        "MeterValueSampleInterval": ConfigKey("10", check=nonneg),
        "NumberOfConnectors": ConfigKey(str(connectors), readonly=True),
        "ResetRetries": ConfigKey("3", check=nonneg),
        "StopTransactionOnEVSideDisconnect": ConfigKey("true", check=_bool),
        "StopTransactionOnInvalidId": ConfigKey("true", check=_bool),
        "StopTxnAlignedData": ConfigKey("", check=_csl(MEASURANDS)),
        "StopTxnSampledData": ConfigKey("Energy.Active.Import.Register", check=_csl(MEASURANDS)),
        "SupportedFeatureProfiles": ConfigKey(
            "Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,"
            "RemoteTrigger",
            readonly=True,
        ),
        "TransactionMessageAttempts": ConfigKey("3", check=pos),
        "TransactionMessageRetryInterval": ConfigKey("5", check=nonneg),
        "UnlockConnectorOnEVSideDisconnect": ConfigKey("true", check=_bool),
        "WebSocketPingInterval": ConfigKey("0", check=nonneg, reboot_required=True),
        "LocalAuthListEnabled": ConfigKey("true", check=_bool),
        "LocalAuthListMaxLength": ConfigKey("1000", readonly=True),
        "SendLocalListMaxLength": ConfigKey("100", readonly=True),
        "ReserveConnectorZeroSupported": ConfigKey("false", readonly=True),
        "ChargeProfileMaxStackLevel": ConfigKey("10", readonly=True),
        "ChargingScheduleAllowedChargingRateUnit": ConfigKey("Current,Power", readonly=True),
        "ChargingScheduleMaxPeriods": ConfigKey("24", readonly=True),
        "MaxChargingProfilesInstalled": ConfigKey("10", readonly=True),
        "SupportedFeatureProfilesMaxLength": ConfigKey("6", readonly=True),
    }


class _CopyOnWriteKeys(MutableMapping[str, ConfigKey]):
    """Configuration keys shared by every charger built alike until one reads a key (it
    may change it): that charger then gets its own copy of that key. A fleet of 10,000
    keeps one set of ~35 defaults instead of 10,000."""

    __slots__ = ("_defaults", "_own")

    def __init__(self, defaults: Mapping[str, ConfigKey]) -> None:
        self._defaults = defaults
        self._own: dict[str, ConfigKey] | None = None

    def __getitem__(self, key: str) -> ConfigKey:
        own = self._own
        if own is not None and key in own:
            return own[key]
        entry = dataclasses.replace(self._defaults[key])
        if own is None:
            own = self._own = {}
        own[key] = entry
        return entry

    def value(self, key: str) -> str:
        """A key's value, without taking a copy of it."""
        own = self._own
        if own is not None and key in own:
            return own[key].value
        return self._defaults[key].value

    def __setitem__(self, key: str, value: ConfigKey) -> None:
        if self._own is None:
            self._own = {}
        self._own[key] = value

    def __delitem__(self, key: str) -> None:  # pragma: no cover - keys are never removed
        raise TypeError("configuration keys cannot be removed")

    def __contains__(self, key: object) -> bool:
        return key in self._defaults or (self._own is not None and key in self._own)

    def __iter__(self) -> Iterator[str]:
        yield from self._defaults
        if self._own is not None:
            yield from (k for k in self._own if k not in self._defaults)

    def __len__(self) -> int:
        return len(set(self._defaults) | set(self._own or ()))


@functools.cache
def _shared_defaults(connectors: int, heartbeat_interval: int) -> Mapping[str, ConfigKey]:
    return types.MappingProxyType(default_configuration(connectors, heartbeat_interval))


class Configuration:
    """The charger's configuration keys, answering GetConfiguration / ChangeConfiguration."""

    def __init__(self, keys: MutableMapping[str, ConfigKey]) -> None:
        self.keys = keys

    @classmethod
    def shared(cls, connectors: int, heartbeat_interval: int) -> Configuration:
        """The default keys, shared with every charger alike until changed (memory)."""
        return cls(_CopyOnWriteKeys(_shared_defaults(connectors, heartbeat_interval)))

    def __getitem__(self, key: str) -> str:
        keys = self.keys
        if isinstance(keys, _CopyOnWriteKeys):
            return keys.value(key)
        return keys[key].value

    def int(self, key: str) -> int:
        """A key's value as an integer."""
        return int(self[key])

    def flag(self, key: str) -> bool:
        """A key's value as a boolean."""
        return self[key].lower() == "true"

    def get(self, keys: list[str] | None) -> tuple[list[datatypes.KeyValue], list[str]]:
        """GetConfiguration: known keys (all when ``keys`` is empty) and unknown ones."""
        wanted = keys or list(self.keys)
        entries = [self._peek(k) for k in wanted if k in self.keys]
        known = [datatypes.KeyValue(k, e.readonly, e.value) for k, e in entries]
        return known, [k for k in wanted if k not in self.keys]

    def _peek(self, key: str) -> tuple[str, ConfigKey]:
        keys = self.keys
        if isinstance(keys, _CopyOnWriteKeys) and not (keys._own and key in keys._own):
            return key, keys._defaults[key]
        return key, keys[key]

    def change(self, key: str, value: str) -> enums.ConfigurationStatus:
        """ChangeConfiguration: NotSupported (unknown key), Rejected (read-only or a bad
        value), RebootRequired, or Accepted (the value applies at once)."""
        entry = self.keys.get(key)
        if entry is None:
            return enums.ConfigurationStatus.not_supported
        if entry.readonly or (entry.check is not None and not entry.check(value)):
            return enums.ConfigurationStatus.rejected
        entry.value = value
        if entry.reboot_required:
            return enums.ConfigurationStatus.reboot_required
        return enums.ConfigurationStatus.accepted


# -- authorization ---------------------------------------------------------------------------


class LocalAuthorization:
    """The local authorization list (with its version) and the authorization cache."""

    def __init__(self, max_length: int = 1000) -> None:
        self.version = 0
        self.entries: dict[str, datatypes.IdTagInfo] = {}
        self.cache: dict[str, datatypes.IdTagInfo] = {}
        self.max_length = max_length

    def send_local_list(self, req: call.SendLocalList, *, enabled: bool) -> enums.UpdateStatus:
        """Apply a SendLocalList request and return the status to answer."""
        if not enabled:
            return enums.UpdateStatus.not_supported
        entries = req.local_authorization_list or []
        if req.update_type == enums.UpdateType.full:
            if req.list_version <= 0 and entries:
                return enums.UpdateStatus.failed
            new = {e.id_tag: e.id_tag_info for e in entries if e.id_tag_info is not None}
            if len(new) > self.max_length:
                return enums.UpdateStatus.failed
            self.entries = new
        else:
            if req.list_version <= self.version:
                return enums.UpdateStatus.version_mismatch
            updated = dict(self.entries)
            for e in entries:
                if e.id_tag_info is None:
                    updated.pop(e.id_tag, None)
                else:
                    updated[e.id_tag] = e.id_tag_info
            if len(updated) > self.max_length:
                return enums.UpdateStatus.failed
            self.entries = updated
        self.version = req.list_version
        return enums.UpdateStatus.accepted

    def lookup(self, id_tag: str) -> datatypes.IdTagInfo | None:
        """The local list's entry for ``id_tag``, else the cache's."""
        return self.entries.get(id_tag) or self.cache.get(id_tag)

    def remember(self, id_tag: str, info: datatypes.IdTagInfo) -> None:
        """Cache the CSMS's answer for ``id_tag``."""
        self.cache[id_tag] = info


# -- transactions and metering -------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class ChargingSession:
    """A transaction as the charger sees it. ``transaction_id`` is None until the CSMS
    answers StartTransaction (it may have started while offline)."""

    connector_id: int
    id_tag: str
    meter_start: int
    started_at: str
    transaction_id: int | None = None
    local_id: int = 0
    stop_reason: str | None = None


@dataclasses.dataclass(slots=True)
class Meter:
    """An energy meter: the register grows with power × time."""

    energy_wh: float = 0.0
    power_w: float = 0.0
    voltage_v: float = 230.0
    phases: int = 3
    soc_percent: float = 20.0
    battery_wh: float = 60_000.0

    @property
    def current_a(self) -> float:
        """Current per phase at the present power."""
        return self.power_w / (self.voltage_v * self.phases) if self.power_w else 0.0

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass at the present power."""
        if seconds <= 0 or self.power_w <= 0:
            return
        added = self.power_w * seconds / 3600.0
        self.energy_wh += added
        self.soc_percent = min(100.0, self.soc_percent + 100.0 * added / self.battery_wh)

    def sample(
        self,
        timestamp: str,
        measurands: list[str],
        *,
        offered_w: float,
        context: enums.ReadingContext = enums.ReadingContext.sample_periodic,
    ) -> datatypes.MeterValue:
        """A MeterValue with the configured measurands."""
        values: dict[str, tuple[str, str]] = {
            "Energy.Active.Import.Register": (f"{self.energy_wh:.0f}", "Wh"),
            "Power.Active.Import": (f"{self.power_w:.0f}", "W"),
            "Current.Import": (f"{self.current_a:.1f}", "A"),
            "Voltage": (f"{self.voltage_v:.0f}", "V"),
            "SoC": (f"{self.soc_percent:.0f}", "Percent"),
            "Power.Offered": (f"{offered_w:.0f}", "W"),
            "Current.Offered": (f"{offered_w / (self.voltage_v * self.phases):.1f}", "A"),
        }
        sampled = []
        for m in measurands:
            if m in values:
                value, unit = values[m]
                sampled.append(
                    datatypes.SampledValue(
                        value=value,
                        context=context,
                        measurand=enums.Measurand(m),
                        unit=enums.UnitOfMeasure(unit),
                        **({"location": enums.Location.ev} if m == "SoC" else {}),
                    )
                )
        return datatypes.MeterValue(timestamp=timestamp, sampled_value=sampled)


# -- smart charging ---------------------------------------------------------------------------


def profile_limit_w(
    profiles: list[datatypes.ChargingProfile], elapsed: float, voltage: float, phases: int
) -> float | None:
    """The power limit (W) the highest-stack-level profiles set ``elapsed`` seconds into
    their schedule, or None without a profile. A limit in A is converted with ``voltage``
    and the schedule's number of phases (default ``phases``)."""
    limit: float | None = None
    by_purpose: dict[str, list[datatypes.ChargingProfile]] = {}
    for p in profiles:
        by_purpose.setdefault(str(p.charging_profile_purpose), []).append(p)
    for group in by_purpose.values():
        top = max(group, key=lambda p: p.stack_level)
        schedule = top.charging_schedule
        periods = sorted(schedule.charging_schedule_period, key=lambda x: x.start_period)
        current = None
        for period in periods:
            if period.start_period <= elapsed:
                current = period
        if current is None:
            continue
        value = float(current.limit)
        if str(schedule.charging_rate_unit) == "A":
            value *= voltage * (current.number_phases or phases)
        limit = value if limit is None else min(limit, value)
    return limit
