"""The simulated charger's identity (:class:`ChargerConfig`) and what it holds
(:class:`ChargerState`): connectors, configuration, local list, meters, sessions,
profiles, faults. Plain objects, no I/O but the state file.

The charger is composed of parts, each an object with its collaborators passed to its
constructor (see :class:`~libv4e.charger.Charger`):

* ``_outbox``: :class:`Outbox` (the ordered queue of outgoing calls) and
  :class:`StatusBoard` (connector state changes, reported with StatusNotification);
* ``_metering``: :class:`Metering` (heartbeats, meter samples, smart charging);
* ``_sessions``: :class:`Sessions` (authorize, start, stop, unplug);
* ``_runtime``: :class:`Link` (the present connection) and :class:`Runtime` (connect,
  boot, reconnect, reboot, restore after a restart);
* ``_handlers``: :class:`CommandHandlers` (the answers to the CSMS's commands).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import ssl
from collections.abc import Callable
from typing import Any

import trio
from ocpp.v16 import call, datatypes

from libv4e.charger._model import (
    ChargingSession,
    Configuration,
    Connector,
    LocalAuthorization,
    Meter,
)
from libv4e.charger._persistence import save, snapshot
from libv4e.charger._security import ChargerSecurityState
from libv4e.protocol._time import iso
from libv4e.protocol._time import utcnow as _utcnow
from libv4e.scenarios._faults import FaultState


@dataclasses.dataclass(frozen=True)
class ChargerConfig:
    """A simulated charger's identity and behaviour."""

    cp_id: str = "EVSE001"
    connectors: int = 1
    max_power_kw: float = 22.0
    vendor: str = "Voice4EVs"
    model: str = "SimCharger-22"
    serial_number: str | None = None
    firmware_version: str = "libv4e-sim-1.0"
    heartbeat_interval: int | None = None
    """Heartbeat seconds until the CSMS's BootNotification answer sets one (30 if None)."""
    auto_charge_tag: str | None = None
    """Plug in and charge with this id tag once booted."""
    basic_auth_password: str | None = None
    ssl_context: ssl.SSLContext | None = None
    security_profile: int = 1
    """The charger's SecurityProfile at first start (ChangeConfiguration moves it up)."""
    reboot_delay: float = 1.0
    unplug_delay: float | None = 3.0
    """Seconds after a session ends before the driver unplugs (Finishing → Available);
    None: never on its own (the driver unplugs with ``charger.driver.unplug``)."""
    virtual_car: bool = True
    """A car is always at hand: a remote start on a connector without a cable plugs one in
    (the demo, ``v4e sim``). False: cables are the driver's (``charger.driver``, evaluation
    sandboxes): a remote start waits ``ConnectionTimeOut`` seconds for one, as a real
    charger does, and starts nothing if none comes."""
    call_timeout: float = 15.0
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    ev_max_power_kw: float | None = None
    meter_start_wh: float = 0.0
    state_path: str | None = None
    """A JSON file where the charger keeps what a real one keeps in flash (configuration,
    local list, availability, energy, running sessions). After a restart, sessions that
    were running are stopped with reason PowerLoss, with the last energy register it had
    reported and that sample's time."""
    ocpp_version: str = "1.6"
    """The OCPP version it speaks: ``1.6`` or ``2.0.1`` (the same charger model either
    way; see ``_station201``)."""
    persist_min_interval: float = 1.0
    """Meter progress is saved with every MeterValues sample sent during a session (so
    at most once per MeterValueSampleInterval), and never more often than this (s)."""


@dataclasses.dataclass(slots=True)
class OutboxItem:
    """One call waiting in the outbox (see ``_outbox``)."""

    build: Callable[[], Any]
    session: ChargingSession | None = None  # transaction-related: kept while offline
    on_result: Callable[[Any], None] | None = None
    attempts: int = 0


class ChargerState:
    """What one simulated charge point holds (no behaviour): the parts of the charger
    read and change it, each through the methods of the model objects it holds."""

    def __init__(
        self, config: ChargerConfig, *, clock: Callable[[], dt.datetime] | None = None
    ) -> None:
        self.config = config
        self.cp_id = config.cp_id
        self.clock = clock or _utcnow
        n = config.connectors
        self.connectors = {i: Connector(i) for i in range(n + 1)}
        self.configuration = Configuration.shared(n, config.heartbeat_interval or 30)
        self.auth = LocalAuthorization()
        self.meters = {i: Meter(energy_wh=config.meter_start_wh) for i in range(1, n + 1)}
        self.sessions: dict[int, ChargingSession] = {}
        self.profiles: dict[int, list[datatypes.ChargingProfile]] = {i: [] for i in range(n + 1)}
        self.faults = FaultState()
        self.firmware_version = config.firmware_version
        self.security = ChargerSecurityState(config.cp_id, config.security_profile)
        """Security extension: profile, AuthorizationKey, certificates, security log."""
        self.booted = False
        self.registration: str | None = None
        self.boot_count = 0
        self.connected_event = trio.Event()
        self.starting: set[int] = set()
        """Connectors promised to an accepted RemoteStartTransaction whose session has not
        begun yet: a second request for them is Rejected."""
        self.session_started: dict[int, float] = {}
        """Per connector in session: when it began (trio time; charging profiles count
        from it)."""
        self.local_ids = iter(range(1, 2**31))
        """Ids of sessions on this charger (before the CSMS gives a transaction id)."""
        self.energy_at: dict[int, str] = {}
        """Per connector: the time of the energy register last saved to ``state_path``."""
        self.stats: collections.Counter[str] = collections.Counter()
        """tx_messages_queued / _delivered / _dropped, messages_delivered."""

    def boot_notification(self) -> call.BootNotification:
        """What this charger says about itself at boot (and when asked to repeat it)."""
        return call.BootNotification(
            charge_point_model=self.config.model,
            charge_point_vendor=self.config.vendor,
            charge_point_serial_number=self.config.serial_number or f"SN-{self.cp_id}",
            firmware_version=self.firmware_version,
            meter_type="SimMeter",
        )

    def now(self) -> str:
        """The charger's clock as an OCPP timestamp."""
        return iso(self.clock())

    def persist(self) -> None:
        """Save the persistent state (if ``config.state_path`` is set)."""
        if self.config.state_path:
            save(self.config.state_path, snapshot(self))
