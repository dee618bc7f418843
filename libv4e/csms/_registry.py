"""What a central system knows about its chargers: plain state, no I/O.

:class:`Registry` is updated from the charger-initiated OCPP messages and answers the
questions an API or a diagnosis asks (is it online, what does each connector say, what is
it charging). Online/offline is derived from the last message time and the heartbeat
interval, so a silent charger whose socket is still open is shown offline.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Iterable, Iterator
from typing import Any

from ocpp.v16 import call, datatypes

from libv4e._errors import UnknownChargerError
from libv4e.csms._devicemodel import DeviceModel
from libv4e.protocol._time import iso as iso
from libv4e.protocol._time import parse_time as parse_time

DEFAULT_HEARTBEAT_INTERVAL = 30


@dataclasses.dataclass(slots=True)
class MeterReading:
    """The latest measurements of a connector (None where not sent)."""

    at: dt.datetime | None = None
    energy_wh: float | None = None
    power_w: float | None = None
    current_a: float | None = None
    voltage_v: float | None = None
    soc_percent: float | None = None
    power_offered_w: float | None = None
    current_offered_a: float | None = None

    @property
    def offered_w(self) -> float | None:
        """Power offered: Power.Offered, else Current.Offered on three phases."""
        if self.power_offered_w is not None:
            return self.power_offered_w
        if self.current_offered_a is not None:
            return self.current_offered_a * (self.voltage_v or 230.0) * 3
        return None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = dataclasses.asdict(self)
        out["at"] = _iso(self.at)
        return out


@dataclasses.dataclass(slots=True)
class ConnectorState:
    """The last StatusNotification of one connector, and what runs on it."""

    connector_id: int
    status: str = "Unknown"
    error_code: str = "NoError"
    info: str | None = None
    vendor_error_code: str | None = None
    timestamp: dt.datetime | None = None
    transaction_id: int | None = None
    meter: MeterReading = dataclasses.field(default_factory=MeterReading)
    reported: str | None = None
    """OCPP 2.0.1: the EVSE's ``connectorStatus`` as its connectors last reported it
    (see :data:`EVSE_PRECEDENCE`; ``status`` is in 1.6 words)."""
    plugs: dict[int, str] = dataclasses.field(default_factory=dict)
    """OCPP 2.0.1: the ``connectorStatus`` last reported for each connector of this EVSE
    (its ``connectorId`` → status). Empty for a 1.6 connector."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "connector_id": self.connector_id,
            "status": self.status,
            "error_code": self.error_code,
            "info": self.info,
            "vendor_error_code": self.vendor_error_code,
            "timestamp": _iso(self.timestamp),
            "transaction_id": self.transaction_id,
            "meter": self.meter.as_dict(),
            "plugs": {str(k): v for k, v in sorted(self.plugs.items())},
        }


EVSE_PRECEDENCE = ("Occupied", "Reserved", "Faulted", "Available", "Unavailable")
"""An OCPP 2.0.1 EVSE with several connectors is as its most telling connector: in use
(an EVSE charges through one connector at a time), reserved, faulted (a fault is shown,
not hidden by a free neighbour), free, else unavailable."""


def evse_status(plugs: dict[int, str]) -> str:
    """The status of an EVSE whose connectors last reported ``plugs``."""
    for status in EVSE_PRECEDENCE:
        if status in plugs.values():
            return status
    return next(iter(plugs.values()), "Unknown")


@dataclasses.dataclass(slots=True)
class ChargePointState:
    """Everything the CSMS knows about one charge point."""

    cp_id: str
    vendor: str | None = None
    model: str | None = None
    serial_number: str | None = None
    firmware_version: str | None = None
    boot_status: str | None = None
    booted_at: dt.datetime | None = None
    connected: bool = False
    connected_since: dt.datetime | None = None
    disconnected_at: dt.datetime | None = None
    last_seen: dt.datetime | None = None
    last_heartbeat: dt.datetime | None = None
    heartbeat_interval: int = DEFAULT_HEARTBEAT_INTERVAL
    unresponsive_since: dt.datetime | None = None
    """Set when a TriggerMessage probe got no message back; cleared by any message."""
    connectors: dict[int, ConnectorState] = dataclasses.field(default_factory=dict)
    ocpp_version: str | None = None
    """The OCPP version of its last connection (``"1.6"``, ``"2.0.1"``)."""
    boot_reason: str | None = None
    """OCPP 2.0.1's BootNotification reason (``PowerUp``, ``RemoteReset``…); None in 1.6."""

    def connector(self, connector_id: int) -> ConnectorState:
        """The state of ``connector_id``, created on first use."""
        state = self.connectors.get(connector_id)
        if state is None:
            state = self.connectors[connector_id] = ConnectorState(connector_id)
        return state

    def silence(self, now: dt.datetime) -> float | None:
        """Seconds since the charger last sent anything (None if never)."""
        return None if self.last_seen is None else (now - self.last_seen).total_seconds()

    def is_online(self, now: dt.datetime, tolerance: float) -> bool:
        """Connected and heard from within ``heartbeat_interval × tolerance`` seconds."""
        silence = self.silence(now)
        if not self.connected or silence is None or self.unresponsive_since is not None:
            return False
        return silence <= self.heartbeat_interval * tolerance

    def as_dict(self, now: dt.datetime, tolerance: float) -> dict[str, Any]:
        """A JSON-ready dict (connector 0 first, then the connectors in order)."""
        online = self.is_online(now, tolerance)
        return {
            "cp_id": self.cp_id,
            "connection": "online" if online else "offline",
            "online": online,
            "connected": self.connected,
            "connected_since": _iso(self.connected_since),
            "disconnected_at": _iso(self.disconnected_at),
            "last_seen": _iso(self.last_seen),
            "last_heartbeat": _iso(self.last_heartbeat),
            "heartbeat_interval": self.heartbeat_interval,
            "unresponsive_since": _iso(self.unresponsive_since),
            "ocpp_version": self.ocpp_version,
            "boot": {
                "status": self.boot_status,
                "at": _iso(self.booted_at),
                "reason": self.boot_reason,
                "vendor": self.vendor,
                "model": self.model,
                "serial_number": self.serial_number,
                "firmware_version": self.firmware_version,
            },
            "connectors": [c.as_dict() for _, c in sorted(self.connectors.items())],
        }


@dataclasses.dataclass(slots=True)
class Transaction:
    """A charging session as the CSMS recorded it."""

    transaction_id: int
    cp_id: str
    connector_id: int
    id_tag: str
    meter_start: int
    started_at: dt.datetime
    reservation_id: int | None = None
    meter_stop: int | None = None
    stopped_at: dt.datetime | None = None
    stop_reason: str | None = None
    stop_id_tag: str | None = None
    last_meter_wh: float | None = None
    """The last energy register (Wh) acknowledged in MeterValues; never decreases."""
    id_tag_status: str = "Accepted"
    flags: list[str] = dataclasses.field(default_factory=list)
    """What the CSMS noticed but did not trust (see ``libv4e.csms._txbook``'s FLAG_* names)."""
    reconciled: str | None = None
    """Why the CSMS closed this session itself (no StopTransaction came), if it did."""
    start_received_at: dt.datetime | None = None
    """When the CSMS received the StartTransaction, on its own clock: the charger's
    timestamps may claim more time than passed, the CSMS's clock bounds it."""
    charger_transaction_id: str | None = None
    """OCPP 2.0.1: the charger's own id of the session (``transactionId``, a string);
    ``transaction_id`` stays the CSMS's billing number. None for a 1.6 session."""
    seq_no: int | None = None
    """OCPP 2.0.1: the highest ``seqNo`` received for this session."""
    id_token_type: str | None = None
    """OCPP 2.0.1: the ``type`` of the first ``idToken`` the session's events carried
    (Central, eMAID, ISO14443, ISO15693, KeyCode, Local, MacAddress, NoAuthorization),
    never changed once set. None for a 1.6 session, or while no event carried one."""
    started_by: str | None = None
    """OCPP 2.0.1: the Started event's ``triggerReason`` (Authorized, CablePluggedIn,
    RemoteStart…). None for a 1.6 session, or one whose Started never arrived."""
    ended_by: str | None = None
    """OCPP 2.0.1: the Ended event's ``triggerReason`` (StopAuthorized, RemoteStop,
    EVCommunicationLost…); ``stop_reason`` is its ``stoppedReason``. None for 1.6."""

    @property
    def active(self) -> bool:
        """True until StopTransaction arrives."""
        return self.stopped_at is None

    @property
    def energy_wh(self) -> float:
        """Energy delivered so far (or in total, once stopped)."""
        end = self.meter_stop if self.meter_stop is not None else self.last_meter_wh
        return max(0.0, float(end) - self.meter_start) if end is not None else 0.0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "transaction_id": self.transaction_id,
            "cp_id": self.cp_id,
            "connector_id": self.connector_id,
            "id_tag": self.id_tag,
            "id_tag_status": self.id_tag_status,
            "active": self.active,
            "meter_start": self.meter_start,
            "meter_stop": self.meter_stop,
            "energy_wh": self.energy_wh,
            "started_at": _iso(self.started_at),
            "stopped_at": _iso(self.stopped_at),
            "stop_reason": self.stop_reason,
            "stop_id_tag": self.stop_id_tag,
            "reservation_id": self.reservation_id,
            "last_meter_wh": self.last_meter_wh,
            "flags": list(self.flags),
            "reconciled": self.reconciled,
            "charger_transaction_id": self.charger_transaction_id,
            "id_token_type": self.id_token_type,
            "started_by": self.started_by,
            "ended_by": self.ended_by,
        }


_MEASURANDS = {
    "Energy.Active.Import.Register": ("energy_wh", {"Wh": 1.0, "kWh": 1000.0}),
    "Power.Active.Import": ("power_w", {"W": 1.0, "kW": 1000.0}),
    "Power.Offered": ("power_offered_w", {"W": 1.0, "kW": 1000.0}),
    "Current.Import": ("current_a", {"A": 1.0}),
    "Current.Offered": ("current_offered_a", {"A": 1.0}),
    "Voltage": ("voltage_v", {"V": 1.0}),
    "SoC": ("soc_percent", {"Percent": 1.0}),
}
_DEFAULT_UNIT = {
    "Energy.Active.Import.Register": "Wh",
    "Power.Active.Import": "W",
    "Power.Offered": "W",
    "Current.Import": "A",
    "Current.Offered": "A",
    "Voltage": "V",
    "SoC": "Percent",
}


def read_meter_values(meter_values: Iterable[datatypes.MeterValue], into: MeterReading) -> None:
    """Fold OCPP meter values into ``into`` (the latest of each measurand wins).

    Phase-specific samples of power and current are summed per timestamp; values in kW or
    kWh are converted. Samples that are not numbers or in unknown units are ignored.
    """
    for mv in meter_values:
        at = parse_time(mv.timestamp)
        totals: dict[str, float] = {}
        for sv in mv.sampled_value:
            measurand = str(sv.measurand or "Energy.Active.Import.Register")
            known = _MEASURANDS.get(measurand)
            if known is None or (sv.format is not None and str(sv.format) != "Raw"):
                continue
            attr, units = known
            factor = units.get(str(sv.unit or _DEFAULT_UNIT[measurand]))
            try:
                value = float(sv.value) * factor if factor is not None else None
            except (ValueError, OverflowError):
                value = None
            if value is None or not math.isfinite(value):
                continue  # NaN, inf and unknown units are not readings
            summed = (
                sv.phase is not None
                and attr in ("power_w", "current_a")
                and ("-N" in str(sv.phase) or str(sv.phase) in ("L1", "L2", "L3"))
            )
            totals[attr] = totals.get(attr, 0.0) + value if summed else value
        for attr, value in totals.items():
            setattr(into, attr, value)
        if totals and (into.at is None or at is None or at >= into.at):
            into.at = at


def energy_register_wh(meter_values: Iterable[datatypes.MeterValue]) -> float | None:
    """The last energy register reading (Wh) in ``meter_values``, if any."""
    reading = MeterReading()
    read_meter_values(meter_values, reading)
    return reading.energy_wh


@dataclasses.dataclass(frozen=True, slots=True)
class BootInfo:
    """What a BootNotification says about the charger, in either version."""

    vendor: str | None
    model: str | None
    serial_number: str | None = None
    firmware_version: str | None = None
    reason: str | None = None


SESSION_STATUSES = frozenset({"Charging", "SuspendedEV", "SuspendedEVSE"})
"""The 1.6 statuses of a connector whose session runs."""


class Registry:
    """The charge points a central system knows, by id."""

    def __init__(self, *, offline_tolerance: float = 2.0) -> None:
        self.offline_tolerance = offline_tolerance
        self._chargers: dict[str, ChargePointState] = {}
        self._device_models: dict[str, DeviceModel] = {}

    def __iter__(self) -> Iterator[ChargePointState]:
        return iter(sorted(self._chargers.values(), key=lambda c: c.cp_id))

    def __len__(self) -> int:
        return len(self._chargers)

    def __contains__(self, cp_id: object) -> bool:
        return cp_id in self._chargers

    def get(self, cp_id: str) -> ChargePointState | None:
        """The state of ``cp_id``, or None if it never connected."""
        return self._chargers.get(cp_id)

    def require(self, cp_id: str) -> ChargePointState:
        """The state of ``cp_id``; UnknownChargerError if it never connected."""
        state = self._chargers.get(cp_id)
        if state is None:
            raise UnknownChargerError(cp_id)
        return state

    def ensure(self, cp_id: str) -> ChargePointState:
        """The state of ``cp_id``, created if new."""
        state = self._chargers.get(cp_id)
        if state is None:
            state = self._chargers[cp_id] = ChargePointState(cp_id)
        return state

    def add(self, state: ChargePointState) -> None:
        """Add (or replace) a charge point's state, e.g. loaded from a store."""
        self._chargers[state.cp_id] = state

    def remove(self, cp_id: str) -> ChargePointState | None:
        """Forget ``cp_id``; returns its state if it was known."""
        self._device_models.pop(cp_id, None)
        return self._chargers.pop(cp_id, None)

    def device_model(self, cp_id: str) -> DeviceModel:
        """What a 2.0.1 charger reported of its device model and its recent events, as
        held in memory (bounded): the copy of the stored model that
        :class:`~libv4e.csms._devicemodels.DeviceModels` loads when the charger first
        reports after connecting here. An empty one, not kept, if none is held (a 1.6
        charger, or one that reported nothing since: read
        ``CentralSystem.device_models.read`` for the stored one)."""
        model = self._device_models.get(cp_id)
        return DeviceModel() if model is None else model

    def held_device_model(self, cp_id: str) -> DeviceModel | None:
        """The device model held in memory for ``cp_id``, if any."""
        return self._device_models.get(cp_id)

    def hold_device_model(self, cp_id: str, model: DeviceModel) -> None:
        """Hold ``model`` (loaded from the store) in memory for ``cp_id``."""
        self._device_models[cp_id] = model

    def drop_device_model(self, cp_id: str) -> None:
        """Hold no device model for ``cp_id`` (the store still has it)."""
        self._device_models.pop(cp_id, None)

    def is_online(self, cp_id: str, now: dt.datetime) -> bool:
        """Whether ``cp_id`` is connected and not silent for too long."""
        state = self._chargers.get(cp_id)
        return state is not None and state.is_online(now, self.offline_tolerance)

    def online_ids(self, now: dt.datetime) -> list[str]:
        """Ids of the charge points online now."""
        return [c.cp_id for c in self if c.is_online(now, self.offline_tolerance)]

    # -- updates from the wire --------------------------------------------------------------

    def connected(
        self, cp_id: str, now: dt.datetime, *, ocpp_version: str | None = None
    ) -> ChargePointState:
        """A websocket for ``cp_id`` was opened (speaking ``ocpp_version``, if given)."""
        state = self.ensure(cp_id)
        state.connected, state.connected_since, state.last_seen = True, now, now
        if ocpp_version is not None:
            state.ocpp_version = ocpp_version
        state.unresponsive_since = None
        return state

    def disconnected(self, cp_id: str, now: dt.datetime) -> None:
        """The websocket for ``cp_id`` closed."""
        state = self.ensure(cp_id)
        state.connected, state.disconnected_at = False, now

    def seen(self, cp_id: str, now: dt.datetime) -> None:
        """``cp_id`` sent something: any message proves it is alive."""
        state = self.ensure(cp_id)
        state.last_seen, state.unresponsive_since = now, None

    def record_boot(
        self, cp_id: str, boot: BootInfo, status: str, interval: int, now: dt.datetime
    ) -> ChargePointState:
        """Record a BootNotification of either version (as :class:`BootInfo`) and the
        answer given."""
        state = self.ensure(cp_id)
        state.vendor, state.model = boot.vendor, boot.model
        state.serial_number = boot.serial_number
        state.firmware_version = boot.firmware_version
        state.boot_reason = boot.reason
        state.boot_status, state.booted_at = status, now
        state.heartbeat_interval = interval
        return state

    def plugged(self, cp_id: str, evse_id: int) -> int | None:
        """The connector of a 2.0.1 EVSE with a cable in: the one it last reported
        Occupied, if exactly one is; else None."""
        state = self._chargers.get(cp_id)
        held = None if state is None else state.connectors.get(evse_id)
        occupied = [] if held is None else [c for c, s in held.plugs.items() if s == "Occupied"]
        return occupied[0] if len(occupied) == 1 else None

    def heartbeat_every(self, cp_id: str, interval: int) -> bool:
        """The charger now heartbeats every ``interval`` seconds (a HeartbeatInterval it
        accepted); returns whether that changed what it is judged by."""
        state = self._chargers.get(cp_id)
        if state is None or interval <= 0 or state.heartbeat_interval == interval:
            return False
        state.heartbeat_interval = interval
        return True

    def heartbeat(self, cp_id: str, now: dt.datetime) -> None:
        """Record a Heartbeat."""
        state = self.ensure(cp_id)
        state.last_heartbeat = state.last_seen = now

    def status(self, cp_id: str, msg: call.StatusNotification, now: dt.datetime) -> ConnectorState:
        """Record a StatusNotification."""
        connector = self.ensure(cp_id).connector(msg.connector_id)
        connector.status, connector.error_code = str(msg.status), str(msg.error_code)
        connector.info, connector.vendor_error_code = msg.info, msg.vendor_error_code
        connector.timestamp = parse_time(msg.timestamp) or now
        return connector

    def connector_status(
        self,
        cp_id: str,
        connector_id: int,
        status: str,
        timestamp: dt.datetime,
        *,
        reported: str | None = None,
    ) -> ConnectorState:
        """Record a connector's status reported without 1.6's error fields (an OCPP 2.0.1
        StatusNotification, its EVSE mapped to the connector by the caller; ``reported``:
        the 2.0.1 status as sent, ``status`` in 1.6 words)."""
        connector = self.ensure(cp_id).connector(connector_id)
        if reported is not None:
            connector.reported = reported
        connector.status, connector.error_code = status, "NoError"
        connector.info = connector.vendor_error_code = None
        connector.timestamp = timestamp
        return connector

    def session_status(
        self, cp_id: str, connector_id: int, charging: str | None, *, running: bool
    ) -> bool:
        """An OCPP 2.0.1 session's state on its connector, in 1.6 words: while it runs,
        its ``charging`` state's status (Charging, SuspendedEV…, see ``CHARGING_STATES``
        given by the caller as ``charging``); once it ended, what the station last
        reported (Occupied: Finishing). Returns whether the status changed."""
        state = self._chargers.get(cp_id)
        connector = None if state is None else state.connectors.get(connector_id)
        if connector is None:
            return False
        if running:
            new = charging
        elif connector.status in SESSION_STATUSES:
            last = connector.reported
            new = "Finishing" if last in (None, "Occupied") else last
        else:
            new = None
        if new is None or new == connector.status:
            return False
        connector.status = new
        return True

    def connector_problem(
        self, cp_id: str, connector_id: int, code: str | None, info: str | None = None
    ) -> bool:
        """An OCPP 2.0.1 connector's Problem (NotifyEvent): its error code and info in
        1.6's fields (``code`` None: the problem is gone). Returns whether the connector
        is known."""
        state = self._chargers.get(cp_id)
        connector = None if state is None else state.connectors.get(connector_id)
        if connector is None:
            return False
        connector.error_code = "NoError" if code is None else code[:50]
        connector.info = None if code is None or info is None else info[:500]
        return True

    def meter_values(self, cp_id: str, msg: call.MeterValues) -> ConnectorState:
        """Record MeterValues as the connector's latest readings."""
        connector = self.ensure(cp_id).connector(msg.connector_id)
        read_meter_values(msg.meter_value, connector.meter)
        return connector


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else iso(value)
