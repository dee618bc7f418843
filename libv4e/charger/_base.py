"""The simulated charger's identity (:class:`ChargerConfig`) and the state every part of
its runtime shares (:class:`ChargerBase`): connectors, configuration, local list, meters,
sessions, profiles, faults, and the public view of them.

The runtime is layered, each layer a module adding one concern to the one below:
``_base`` (state) → ``_outbox`` (ordered outgoing queue, status reports) → ``_metering``
(heartbeat and meter loops, smart charging) → ``_sessions`` (authorize, start, stop) →
``_runtime`` (connect, boot, reconnect, reboot, restore after a restart) → ``_handlers``
(the CSMS's commands) → :class:`~libv4e.charger.Charger`. One object per charger, no
extra tasks or objects per layer.
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
    IN_SESSION,
    ChargePointStatus,
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
from libv4e.transport._connection import OcppConnection


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


class ChargerBase:
    """The state of one simulated charge point and its public view (no behaviour)."""

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
        self._conn: OcppConnection | None = None
        self._conn_scope: trio.CancelScope | None = None
        # a list, not a deque: it is nearly always empty, and an empty deque is 600 bytes
        self._outbox: list[OutboxItem] = []
        self._outbox_changed = trio.Event()
        self._outbox_drained: trio.Event | None = None  # made by drain() (memory)
        self._settings_changed = trio.Event()
        self._reboot: str | None = None
        self._nursery: trio.Nursery | None = None
        self._meter_marks: dict[int, float] = {}
        self._session_started: dict[int, float] = {}
        self._starting: set[int] = set()
        """Connectors promised to an accepted RemoteStartTransaction whose session has not
        begun yet: a second request for them is Rejected."""
        self._local_ids = iter(range(1, 2**31))
        self.connected_event = trio.Event()
        self.boot_count = 0
        self._restored = False
        self.energy_at: dict[int, str] = {}
        """Per connector: the time of the energy register last saved to ``state_path``."""
        self._persisted_at: dict[int, float] = {}  # per connector, trio time
        self.stats: collections.Counter[str] = collections.Counter()
        """tx_messages_queued / _delivered / _dropped, messages_delivered."""

    # -- public view -------------------------------------------------------------------------

    @property
    def online(self) -> bool:
        """Connected and booted (Accepted)."""
        return self._conn is not None and not self._conn.closed and self.booted

    @property
    def queued(self) -> int:
        """Messages waiting to be sent (transaction messages survive disconnects)."""
        return len(self._outbox)

    def summary(self) -> str:
        """A one-word state for fleet summaries: offline, charging, faulted or idle."""
        if not self.online:
            return "offline"
        statuses = {c.status for i, c in self.connectors.items() if i}
        if ChargePointStatus.faulted in statuses:
            return "faulted"
        if statuses & IN_SESSION:
            return "charging"
        return "idle"

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
