"""A simulated OCPP 1.6 charge point on Trio: boots, heartbeats, charges, answers every
Core / Local Auth List / Reservation / Smart Charging / Firmware / Remote Trigger command,
reconnects with backoff, and keeps transaction messages while offline.

State lives in the sans-IO model (``_charger_model``); this module moves it in time and
over the wire. Start :meth:`Charger.run` in your nursery.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import functools
import logging
import math
import random
import ssl
from collections.abc import Callable
from typing import Any

import trio
from ocpp.v16 import call, call_result, datatypes, enums

from libv4e._errors import (
    CallTimeoutError,
    ConnectionLostError,
    LocalProtocolError,
    RemoteCallError,
)
from libv4e.charger import _persistence as _charger_state
from libv4e.charger._model import (
    IN_SESSION,
    ChargingSession,
    Configuration,
    Connector,
    ConnectorEvent,
    LocalAuthorization,
    Meter,
    profile_limit_w,
)
from libv4e.csms._registry import iso
from libv4e.protocol._time import utcnow as _utcnow
from libv4e.scenarios._faults import FAULT_VENDOR_ID, FaultState, handle_fault_transfer
from libv4e.transport._connection import OcppConnection, Reply
from libv4e.transport._handlers import BoundHandlers
from libv4e.transport._websocket import ConnectError, open_ocpp

log = logging.getLogger("libv4e.charger")


E = ConnectorEvent
S = enums.ChargePointStatus
SLOW_CHARGING_W = 1400.0


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
    reboot_delay: float = 1.0
    unplug_delay: float = 3.0
    """Seconds after a session ends before the driver unplugs (Finishing → Available)."""
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
class _Outgoing:
    build: Callable[[], Any]
    session: ChargingSession | None = None  # transaction-related: kept while offline
    on_result: Callable[[Any], None] | None = None
    attempts: int = 0


class Charger:
    """One simulated charge point. Everything it does runs inside :meth:`run`."""

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
        self.booted = False
        self.registration: str | None = None
        self._conn: OcppConnection | None = None
        self._conn_scope: trio.CancelScope | None = None
        # a list, not a deque: it is nearly always empty, and an empty deque is 600 bytes
        self._outbox: list[_Outgoing] = []
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
        if S.faulted in statuses:
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

    # -- running -----------------------------------------------------------------------------

    async def run(
        self, url: str, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect to ``url`` (the CSMS base URL) and behave like a charger until cancelled.

        Reconnects with exponential backoff when the connection fails or closes.
        Reports started at once; use :attr:`connected_event` to wait for the first boot.
        """
        self._restore()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._meter_loop)
            task_status.started()
            await self._connection_loop(url)

    # -- persistence ---------------------------------------------------------------------------

    def persist(self) -> None:
        """Save the persistent state (if ``config.state_path`` is set)."""
        if self.config.state_path:
            _charger_state.save(self.config.state_path, _charger_state.snapshot(self))

    def _restore(self) -> None:
        if not self.config.state_path or self._restored:
            return
        self._restored = True
        data = _charger_state.load(self.config.state_path)
        if data is None:
            return
        for key, value in data.get("configuration", {}).items():
            if key in self.configuration.keys and not self.configuration.keys[key].readonly:
                self.configuration.keys[key].value = str(value)
        self.auth.version = int(data.get("local_list", {}).get("version", 0))
        self.auth.entries = _charger_state.local_list_entries(data)
        for cid in data.get("inoperative", []):
            if cid in self.connectors:
                self.connectors[cid].inoperative = True
                self.connectors[cid].status = S.unavailable
        for cid, energy in data.get("energy_wh", {}).items():
            if int(cid) in self.meters:
                self.meters[int(cid)].energy_wh = float(energy)
        self.energy_at = {int(c): str(t) for c, t in data.get("energy_at", {}).items()}
        self.firmware_version = data.get("firmware_version", self.firmware_version)
        for saved in data.get("sessions", []):
            self._stop_interrupted(saved)
        self.persist()

    def _stop_interrupted(self, saved: dict[str, Any]) -> None:
        """A session that was running when the charger lost power: report its end."""
        session = ChargingSession(
            int(saved["connector_id"]),
            saved["id_tag"],
            int(saved["meter_start"]),
            saved["started_at"],
            saved.get("transaction_id"),
            local_id=next(self._local_ids),
        )
        meter_stop = round(self.meters[session.connector_id].energy_wh)
        if session.transaction_id is None:  # never acknowledged: start it first
            self._outbox.append(
                _Outgoing(
                    lambda: call.StartTransaction(
                        session.connector_id,
                        session.id_tag,
                        session.meter_start,
                        session.started_at,
                    ),
                    session=session,
                    on_result=lambda r: setattr(session, "transaction_id", r.transaction_id),
                )
            )
        # the end of the session is the last sample saved before the power went: its
        # register and its time (not the restart's), which the CSMS has acknowledged
        stopped_at = self.energy_at.get(session.connector_id) or self.now()
        self._outbox.append(
            _Outgoing(
                lambda: call.StopTransaction(
                    meter_stop,
                    stopped_at,
                    session.transaction_id or 0,
                    reason=enums.Reason.power_loss,
                    id_tag=session.id_tag,
                ),
                session=session,
            )
        )
        log.info(
            "%s: session on connector %s was interrupted; reporting PowerLoss",
            self.cp_id,
            session.connector_id,
        )

    async def _connection_loop(self, url: str) -> None:
        delay = self.config.reconnect_min
        while True:
            dead = self.faults.offline_dead()
            if dead:  # knock now and then; a sandbox clear lets it back in at once
                await self.faults.wait_until_reachable()
            password = self.config.basic_auth_password
            try:
                async with open_ocpp(
                    url,
                    self.cp_id,
                    handlers=BoundHandlers(self),
                    basic_auth=(self.cp_id, password) if password else None,
                    ssl_context=self.config.ssl_context,
                    connect_timeout=10,
                    on_close=self._connection_closed,
                ) as conn:
                    delay = self.config.reconnect_min
                    await self._connected(conn)
            except (ConnectError, ConnectionLostError) as exc:
                log.info("%s: connection failed: %s", self.cp_id, exc)
            except Exception:  # a bug must cost this connection, not the whole fleet
                log.exception("%s: connection crashed; reconnecting", self.cp_id)
            finally:
                self._conn = None
                self._conn_scope = None
                self.booted = False
                self._drop_volatile()
            if self._reboot is not None:
                log.info("%s: rebooting (%s)", self.cp_id, self._reboot)
                self._reboot = None
                await trio.sleep(self.config.reboot_delay)
                continue
            if dead:
                continue  # the knock interval is the wait
            await trio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.config.reconnect_max)

    async def _connected(self, conn: OcppConnection) -> None:
        self._conn = conn
        self._starting.clear()  # promises made on a previous connection are void
        async with trio.open_nursery() as nursery:
            # the reader cancels this when the connection closes (see _connection_closed)
            self._conn_scope = nursery.cancel_scope
            if conn.closed:
                return
            if not await self._boot(conn):
                return
            self.faults.back_online()
            self.connected_event.set()
            for connector in self.connectors.values():
                self._notify(connector)
            nursery.start_soon(self._flusher, conn)
            if self.config.auto_charge_tag and not self.sessions and self.boot_count == 1:
                nursery.start_soon(self.swipe, 1, self.config.auto_charge_tag)
            # heartbeats in this task (one task less per charger); the close ends it
            await self._heartbeat_loop()

    def _connection_closed(self) -> None:
        if self._conn_scope is not None:
            self._conn_scope.cancel()

    async def _boot(self, conn: OcppConnection) -> bool:
        boot = self.boot_notification()
        while True:
            try:
                result = await conn.call(boot, timeout=self.config.call_timeout)
            except (CallTimeoutError, RemoteCallError) as exc:
                log.warning("%s: BootNotification failed: %s", self.cp_id, exc)
                await trio.sleep(10)
                continue
            except ConnectionLostError:
                return False
            self.registration = str(result.status)
            if result.status == enums.RegistrationStatus.accepted:
                if result.interval > 0:
                    self.configuration.keys["HeartbeatInterval"].value = str(result.interval)
                self.booted = True
                self.boot_count += 1
                log.info("%s: booted, heartbeat every %ss", self.cp_id, result.interval)
                return True
            wait = result.interval if result.interval > 0 else 30
            log.info("%s: BootNotification %s, retry in %ss", self.cp_id, result.status, wait)
            await trio.sleep(wait)

    # -- outbox: one ordered queue of outgoing calls -------------------------------------------

    def _send(self, outgoing: _Outgoing) -> None:
        if outgoing.session is None and not self.online:
            return  # only transaction messages are kept while offline
        if outgoing.session is not None:
            self.stats["tx_messages_queued"] += 1
        self._outbox.append(outgoing)
        self._outbox_changed.set()

    def _drop_volatile(self) -> None:
        self._outbox = [o for o in self._outbox if o.session is not None]

    async def _flusher(self, conn: OcppConnection) -> None:
        while True:
            while not self._outbox or self.faults.silent():
                self._outbox_changed = trio.Event()
                await self._outbox_changed.wait()
            item = self._outbox[0]
            payload = item.build()
            try:
                result = await conn.call(payload, timeout=self.config.call_timeout)
            except ConnectionLostError:
                return
            except (CallTimeoutError, RemoteCallError, LocalProtocolError) as exc:
                item.attempts += 1
                attempts = self.configuration.int("TransactionMessageAttempts")
                if item.session is None or item.attempts >= attempts:
                    log.warning("%s: dropped %s: %s", self.cp_id, type(payload).__name__, exc)
                    self._outbox.pop(0)
                    if item.session is not None:
                        self.stats["tx_messages_dropped"] += 1
                else:
                    retry = self.configuration.int("TransactionMessageRetryInterval")
                    await trio.sleep(retry * item.attempts)
                continue
            self._outbox.pop(0)
            self.stats["messages_delivered"] += 1
            if item.session is not None:
                self.stats["tx_messages_delivered"] += 1
            if item.on_result is not None:
                item.on_result(result)
            if not self._outbox and self._outbox_drained is not None:
                self._outbox_drained.set()
                self._outbox_drained = None

    async def drain(self, timeout: float) -> bool:
        """Wait until the outbox is empty (True) or ``timeout`` passes (False)."""
        with trio.move_on_after(timeout):
            while self._outbox:
                if self._outbox_drained is None:
                    self._outbox_drained = trio.Event()
                await self._outbox_drained.wait()
            return True
        return False

    def report_status(self, connector: Connector) -> None:
        """Send a StatusNotification with the connector's present status and error code
        (use it after changing a connector yourself, e.g. in a custom fault)."""
        self._notify(connector)

    def _notify(self, connector: Connector) -> None:
        # the status is captured now: the queue may send it after further changes
        notification = connector.notification(self.now())
        self._send(_Outgoing(lambda: notification))

    def _move(self, connector: Connector, event: E) -> None:
        if connector.can(event):
            connector.apply(event)
            self._notify(connector)
            if connector.status is S.available and connector.pending_availability is not None:
                self._apply_scheduled_availability(connector)  # a Scheduled change is due

    # -- periodic work ---------------------------------------------------------------------------

    def _wake(self) -> None:
        self._settings_changed.set()
        self._settings_changed = trio.Event()

    async def _tick(self, key: str) -> bool:
        """Wait one interval of configuration ``key``; False if the settings changed first
        (or the interval is 0: off), so that a new interval takes effect at once."""
        interval = self.configuration.int(key)
        changed = self._settings_changed
        with trio.move_on_after(interval if interval > 0 else 3600):
            await changed.wait()
            return False
        return interval > 0

    async def _heartbeat_loop(self) -> None:
        while True:
            if await self._tick("HeartbeatInterval") and not self.faults.silent():
                self._send(_Outgoing(call.Heartbeat))

    async def _meter_loop(self) -> None:
        while True:
            if await self._tick("MeterValueSampleInterval"):
                self._expire_reservations()
                for connector_id in list(self.sessions):
                    self._send_meter_values(connector_id)

    def _update_meter(self, connector_id: int) -> Meter:
        meter = self.meters[connector_id]
        now = trio.current_time()
        last = self._meter_marks.get(connector_id, now)
        meter.advance(now - last)
        self._meter_marks[connector_id] = now
        session = self.sessions.get(connector_id)
        meter.power_w = self._power_for(connector_id) if session is not None else 0.0
        return meter

    def offered_w(self, connector_id: int) -> float:
        """The power the charger offers a connector: its maximum, lowered by profiles."""
        maximum = self.config.max_power_kw * 1000.0
        started = self._session_started.get(connector_id, trio.current_time())
        elapsed = trio.current_time() - started
        meter = self.meters[connector_id]
        limits = [maximum]
        for profiles in (self.profiles[0], self.profiles[connector_id]):
            limit = profile_limit_w(profiles, elapsed, meter.voltage_v, meter.phases)
            if limit is not None:
                limits.append(limit)
        return min(limits)

    def _power_for(self, connector_id: int) -> float:
        if self.connectors[connector_id].status is not S.charging:
            return 0.0
        power = self.offered_w(connector_id)
        if self.config.ev_max_power_kw is not None:
            power = min(power, self.config.ev_max_power_kw * 1000.0)
        if self.faults.slow_charging(connector_id):
            power = min(power, SLOW_CHARGING_W)
        return power

    def _measurands(self) -> list[str]:
        return [
            m.strip() for m in self.configuration["MeterValuesSampledData"].split(",") if m.strip()
        ]

    def _send_meter_values(
        self,
        connector_id: int,
        context: enums.ReadingContext = enums.ReadingContext.sample_periodic,
    ) -> None:
        meter = self._update_meter(connector_id)
        session = self.sessions.get(connector_id)
        value = meter.sample(
            self.now(), self._measurands(), offered_w=self.offered_w(connector_id), context=context
        )
        if session is None:
            self._send(_Outgoing(lambda: call.MeterValues(connector_id, [value])))
            return
        self.energy_at[connector_id] = value.timestamp
        now = trio.current_time()
        last = self._persisted_at.get(connector_id, -math.inf)
        if self.config.state_path and now - last >= self.config.persist_min_interval:
            self._persisted_at[connector_id] = now
            self.persist()
        self._send(
            _Outgoing(
                lambda: call.MeterValues(connector_id, [value], session.transaction_id),
                session=session,
            )
        )

    # -- sessions ----------------------------------------------------------------------------

    def free_connector(
        self, wanted: int | None, *, id_tag: str | None = None, claimed: int | None = None
    ) -> Connector | None:
        """The connector to use for a new session (``wanted``, or the first free one).

        A connector promised to an accepted RemoteStartTransaction is not free (except
        to that request: ``claimed``), nor is one waiting for a Scheduled Inoperative; a
        Reserved one is free only for its reservation's ``id_tag`` (when given)."""
        candidates = [wanted] if wanted else [i for i in self.connectors if i]
        for i in candidates:
            c = self.connectors.get(i)
            if (
                c is not None
                and i
                and i not in self.sessions
                and (i not in self._starting or i == claimed)
                and c.status in (S.available, S.preparing, S.reserved, S.finishing)
                and not c.inoperative
                and not c.pending_availability
                and not (
                    c.status is S.reserved
                    and id_tag is not None
                    and c.reservation_tag not in (None, id_tag)
                )
            ):
                return c
        return None

    async def authorize(self, id_tag: str, *, remote: bool) -> bool:
        """Decide whether ``id_tag`` may charge, the way a 1.6 charger does."""
        if remote and not self.configuration.flag("AuthorizeRemoteTxRequests"):
            return True
        local = (
            self.auth.lookup(id_tag) if self.configuration.flag("LocalAuthListEnabled") else None
        )
        stale = self.faults.auth_failure(id_tag)
        if local is not None and self.configuration.flag("LocalPreAuthorize") and not stale:
            if local.status == enums.AuthorizationStatus.accepted:
                return True
        if not self.online or self._conn is None:
            if local is not None and self.configuration.flag("LocalAuthorizeOffline"):
                return bool(local.status == enums.AuthorizationStatus.accepted)
            return self.configuration.flag("AllowOfflineTxForUnknownId")
        try:
            result = await self._conn.call(call.Authorize(id_tag), timeout=self.config.call_timeout)
        except (CallTimeoutError, RemoteCallError, ConnectionLostError):
            return local is not None and local.status == enums.AuthorizationStatus.accepted
        info = result.id_tag_info
        if self.configuration.flag("AuthorizationCacheEnabled"):
            self.auth.remember(id_tag, info)
        if stale is not None:
            # the fault: a corrupted local list that disagrees with the CSMS, and wins
            if info.status == enums.AuthorizationStatus.accepted:
                connector = self.connectors[stale]
                connector.set_error(
                    enums.ChargePointErrorCode.local_list_conflict,
                    f"idTag {id_tag} is Invalid in the local list",
                )
                self._notify(connector)
                connector.set_error(enums.ChargePointErrorCode.no_error)
            return False
        return bool(info.status == enums.AuthorizationStatus.accepted)

    async def swipe(self, connector_id: int, id_tag: str) -> bool:
        """A driver presents ``id_tag`` at ``connector_id`` and plugs in: charge if allowed."""
        return await self.begin_session(connector_id, id_tag, remote=False)

    async def begin_session(
        self, connector_id: int | None, id_tag: str, *, remote: bool, claimed: bool = False
    ) -> bool:
        """Authorize, plug in, StartTransaction, charge. Returns whether charging started.
        ``claimed``: the connector was promised to this session (RemoteStartTransaction)."""
        connector = self.free_connector(
            connector_id, id_tag=id_tag, claimed=connector_id if claimed else None
        )
        if connector is None:
            return False
        if self.faults.session_start_failure(connector.connector_id):
            log.info("%s: fault: start request for %s ignored", self.cp_id, id_tag)
            return False
        if not await self.authorize(id_tag, remote=remote):
            log.info("%s: %s not authorized", self.cp_id, id_tag)
            return False
        if connector.connector_id in self.sessions:
            return False
        cid = connector.connector_id
        # the reservation this session uses (taken before plugging in leaves Reserved)
        reservation = connector.reservation_id if connector.status is S.reserved else None
        if connector.status is not S.preparing:
            connector.plugged = True
            self._move(connector, E.PLUG_IN)
        connector.locked = True
        meter = self._update_meter(cid)
        session = ChargingSession(
            cid, id_tag, round(meter.energy_wh), self.now(), local_id=next(self._local_ids)
        )
        connector.reservation_id = None
        self.sessions[cid] = session
        self._session_started[cid] = trio.current_time()
        self.energy_at[cid] = session.started_at

        def started(result: call_result.StartTransaction) -> None:
            session.transaction_id = result.transaction_id
            self.persist()
            if (
                result.id_tag_info.status != enums.AuthorizationStatus.accepted
                and self.configuration.flag("StopTransactionOnInvalidId")
                and self.sessions.get(cid) is session
            ):
                self.end_session(cid, enums.Reason.de_authorized)

        self._send(
            _Outgoing(
                lambda: call.StartTransaction(
                    cid, id_tag, session.meter_start, session.started_at, reservation
                ),
                session=session,
                on_result=started,
            )
        )
        self._move(connector, E.START)
        self._update_meter(cid)
        self._send_meter_values(cid, enums.ReadingContext.transaction_begin)
        self.persist()
        return True

    def end_session(self, connector_id: int, reason: enums.Reason) -> ChargingSession | None:
        """Stop the transaction on ``connector_id`` with ``reason`` (StopTransaction)."""
        session = self.sessions.get(connector_id)
        if session is None:
            return None
        meter = self._update_meter(connector_id)
        end = meter.sample(
            self.now(),
            ["Energy.Active.Import.Register"],
            offered_w=self.offered_w(connector_id),
            context=enums.ReadingContext.transaction_end,
        )
        del self.sessions[connector_id]
        self._session_started.pop(connector_id, None)
        meter.power_w = 0.0
        stop = round(meter.energy_wh)
        session.stop_reason = str(reason)
        self._send(
            _Outgoing(
                lambda: call.StopTransaction(
                    stop,
                    end.timestamp,
                    session.transaction_id or 0,
                    reason=reason,
                    id_tag=session.id_tag,
                    transaction_data=[end],
                ),
                session=session,
            )
        )
        connector = self.connectors[connector_id]
        self.profiles[connector_id] = [
            p
            for p in self.profiles[connector_id]
            if p.charging_profile_purpose != enums.ChargingProfilePurposeType.tx_profile
        ]
        self._move(connector, E.STOP)
        if self.faults.stuck_connector(connector_id):
            connector.set_error(
                enums.ChargePointErrorCode.connector_lock_failure, "connector lock did not release"
            )
            self._move(connector, E.FAULT)
        elif reason in (enums.Reason.soft_reset, enums.Reason.hard_reset, enums.Reason.reboot):
            pass  # the cable stays in across a reboot; the connector reports after boot
        elif self._nursery is not None:
            self._nursery.start_soon(self._unplug_later, connector_id)
        self._apply_scheduled_availability(connector)
        self.persist()
        return session

    async def _unplug_later(self, connector_id: int) -> None:
        await trio.sleep(self.config.unplug_delay)
        connector = self.connectors[connector_id]
        if connector_id not in self.sessions and connector.status is S.finishing:
            self.unplug(connector_id)

    def unplug(self, connector_id: int) -> None:
        """The driver takes the cable out."""
        connector = self.connectors[connector_id]
        if connector_id in self.sessions:
            reason = enums.Reason.ev_disconnected
            if self.configuration.flag("StopTransactionOnEVSideDisconnect"):
                self.end_session(connector_id, reason)
        connector.plugged = connector.locked = False
        self._move(connector, E.UNPLUG)
        if connector.inoperative and connector.can(E.INOPERATIVE):
            self._move(connector, E.INOPERATIVE)

    def _apply_scheduled_availability(self, connector: Connector) -> None:
        if connector.pending_availability is None:
            return
        connector.inoperative = connector.pending_availability
        connector.pending_availability = None
        if connector.inoperative and connector.can(E.INOPERATIVE):
            self._move(connector, E.INOPERATIVE)

    def _expire_reservations(self) -> None:
        now = trio.current_time()
        for c in self.connectors.values():
            if (
                c.reservation_id is not None
                and c.reservation_expiry is not None
                and now >= c.reservation_expiry
            ):
                c.reservation_id = None
                self._move(c, E.RESERVATION_END)

    # -- reboot ------------------------------------------------------------------------------

    async def reboot(self, kind: enums.ResetType) -> None:
        """Stop transactions, close the connection, come back after ``reboot_delay``."""
        reason = (
            enums.Reason.hard_reset if kind == enums.ResetType.hard else enums.Reason.soft_reset
        )
        for cid in list(self.sessions):
            self.end_session(cid, reason)
        self.faults.reset(kind)
        await self.drain(5)
        self._reboot = str(kind)
        for c in self.connectors.values():
            if c.status is S.finishing:
                c.plugged = c.locked = False
                c.apply(E.UNPLUG)
        if self._conn is not None:
            await self._conn.aclose(1000, f"{kind} reset")

    # -- handlers for CSMS commands ------------------------------------------------------------

    async def on_reset(self, req: call.Reset) -> Reply:
        return Reply(
            call_result.Reset(enums.ResetStatus.accepted), after=lambda: self.reboot(req.type)
        )

    async def on_change_availability(self, req: call.ChangeAvailability) -> Any:
        inoperative = req.type == enums.AvailabilityType.inoperative
        targets = [c for i, c in self.connectors.items() if req.connector_id in (0, i)]
        if not targets or req.connector_id not in self.connectors:
            return call_result.ChangeAvailability(enums.AvailabilityStatus.rejected)
        scheduled = False
        for c in targets:
            busy = c.connector_id in self.sessions or c.connector_id in self._starting
            if busy or (
                # e.g. Finishing (cable still in) or Faulted: Unavailable once it is free
                inoperative
                and c.connector_id
                and c.status is not S.unavailable
                and not c.can(E.INOPERATIVE)
            ):
                c.pending_availability = inoperative
                scheduled = True
                continue
            c.pending_availability = None
            c.inoperative = inoperative
            if inoperative and c.can(E.INOPERATIVE):
                self._move(c, E.INOPERATIVE)
            elif inoperative and c.connector_id == 0 and c.status is S.available:
                c.status = S.unavailable
                self._notify(c)
            elif not inoperative and c.status is S.unavailable:
                self._move(c, E.OPERATIVE)
        self.persist()
        status = (
            enums.AvailabilityStatus.scheduled if scheduled else enums.AvailabilityStatus.accepted
        )
        return call_result.ChangeAvailability(status)

    async def on_change_configuration(self, req: call.ChangeConfiguration) -> Any:
        status = self.configuration.change(req.key, req.value)
        if status == enums.ConfigurationStatus.accepted:
            self._wake()  # intervals take effect at once
        self.persist()
        return call_result.ChangeConfiguration(status)

    async def on_get_configuration(self, req: call.GetConfiguration) -> Any:
        known, unknown = self.configuration.get(req.key)
        return call_result.GetConfiguration(known, unknown or None)

    async def on_remote_start_transaction(self, req: call.RemoteStartTransaction) -> Any:
        connector = self.free_connector(req.connector_id, id_tag=req.id_tag)
        if connector is None:
            return call_result.RemoteStartTransaction(enums.RemoteStartStopStatus.rejected)
        cid = connector.connector_id
        if req.charging_profile is not None:
            if (
                req.charging_profile.charging_profile_purpose
                != enums.ChargingProfilePurposeType.tx_profile
            ):
                return call_result.RemoteStartTransaction(enums.RemoteStartStopStatus.rejected)
            self.profiles[connector.connector_id].append(req.charging_profile)
        self._starting.add(cid)  # until the session begins (or fails to)

        async def start() -> None:
            try:
                await self.begin_session(cid, req.id_tag, remote=True, claimed=True)
            finally:
                self._starting.discard(cid)
                if cid not in self.sessions:  # it did not start: a Scheduled change is due
                    self._apply_scheduled_availability(connector)

        return Reply(
            call_result.RemoteStartTransaction(enums.RemoteStartStopStatus.accepted), after=start
        )

    async def on_remote_stop_transaction(self, req: call.RemoteStopTransaction) -> Any:
        for cid, session in self.sessions.items():
            if session.transaction_id == req.transaction_id:

                async def stop(cid: int = cid) -> None:
                    self.end_session(cid, enums.Reason.remote)

                return Reply(
                    call_result.RemoteStopTransaction(enums.RemoteStartStopStatus.accepted),
                    after=stop,
                )
        return call_result.RemoteStopTransaction(enums.RemoteStartStopStatus.rejected)

    async def on_unlock_connector(self, req: call.UnlockConnector) -> Any:
        connector = self.connectors.get(req.connector_id)
        if connector is None or req.connector_id == 0:
            return call_result.UnlockConnector(enums.UnlockStatus.not_supported)
        if req.connector_id in self.sessions:
            self.end_session(req.connector_id, enums.Reason.unlock_command)
        self.faults.unlocked(req.connector_id)

        async def released() -> None:
            if connector.status is S.faulted:
                connector.set_error(enums.ChargePointErrorCode.no_error)
                self._move(connector, E.FAULT_CLEARED)
            elif connector.status in (S.finishing, S.preparing):
                self.unplug(req.connector_id)
            connector.locked = False

        return Reply(call_result.UnlockConnector(enums.UnlockStatus.unlocked), after=released)

    async def on_clear_cache(self, req: call.ClearCache) -> Any:
        self.auth.cache.clear()
        return call_result.ClearCache(enums.ClearCacheStatus.accepted)

    async def on_get_local_list_version(self, req: call.GetLocalListVersion) -> Any:
        if not self.configuration.flag("LocalAuthListEnabled"):
            return call_result.GetLocalListVersion(-1)
        return call_result.GetLocalListVersion(self.auth.version)

    async def on_send_local_list(self, req: call.SendLocalList) -> Any:
        status = self.auth.send_local_list(
            req, enabled=self.configuration.flag("LocalAuthListEnabled")
        )
        if status == enums.UpdateStatus.accepted:
            for entry in req.local_authorization_list or []:
                info = entry.id_tag_info
                if info is not None and info.status == enums.AuthorizationStatus.accepted:
                    self.faults.card_repaired(entry.id_tag)
            self.persist()
        return call_result.SendLocalList(status)

    async def on_trigger_message(self, req: call.TriggerMessage) -> Any:
        what = req.requested_message
        cid = req.connector_id
        if cid is not None and cid not in self.connectors:
            return call_result.TriggerMessage(enums.TriggerMessageStatus.rejected)

        async def send() -> None:
            if self.faults.silent():
                return
            if what == enums.MessageTrigger.heartbeat:
                self._send(_Outgoing(call.Heartbeat))
            elif what == enums.MessageTrigger.status_notification:
                for c in self.connectors.values():
                    if cid is None or c.connector_id == cid:
                        self._notify(c)
            elif what == enums.MessageTrigger.meter_values:
                for i in self.meters:
                    if cid in (None, 0, i):
                        self._send_meter_values(i, enums.ReadingContext.trigger)
            elif what == enums.MessageTrigger.boot_notification:
                self._send(_Outgoing(self.boot_notification))
            elif what == enums.MessageTrigger.diagnostics_status_notification:
                self._send(
                    _Outgoing(
                        lambda: call.DiagnosticsStatusNotification(enums.DiagnosticsStatus.idle)
                    )
                )
            elif what == enums.MessageTrigger.firmware_status_notification:
                self._send(
                    _Outgoing(lambda: call.FirmwareStatusNotification(enums.FirmwareStatus.idle))
                )

        return Reply(call_result.TriggerMessage(enums.TriggerMessageStatus.accepted), after=send)

    async def on_data_transfer(self, req: call.DataTransfer) -> Any:
        if req.vendor_id == FAULT_VENDOR_ID:
            return await handle_fault_transfer(self, req)
        return call_result.DataTransfer(enums.DataTransferStatus.unknown_vendor_id)

    async def on_reserve_now(self, req: call.ReserveNow) -> Any:
        c = self.connectors.get(req.connector_id)
        if c is None or req.connector_id == 0:
            return call_result.ReserveNow(enums.ReservationStatus.rejected)
        if c.status is S.faulted:
            return call_result.ReserveNow(enums.ReservationStatus.faulted)
        if c.status is S.unavailable or c.inoperative:
            return call_result.ReserveNow(enums.ReservationStatus.unavailable)
        if (
            c.status is S.reserved and c.reservation_id == req.reservation_id
        ) or c.status is S.available:
            from libv4e.csms._registry import parse_time

            expiry = parse_time(req.expiry_date)
            seconds = (expiry - self.clock()).total_seconds() if expiry else 0
            c.reservation_id, c.reservation_tag = req.reservation_id, req.id_tag
            c.reservation_expiry = trio.current_time() + max(0.0, seconds)
            if c.status is S.available:
                self._move(c, E.RESERVE)
            return call_result.ReserveNow(enums.ReservationStatus.accepted)
        return call_result.ReserveNow(enums.ReservationStatus.occupied)

    async def on_cancel_reservation(self, req: call.CancelReservation) -> Any:
        for c in self.connectors.values():
            if c.reservation_id == req.reservation_id:
                c.reservation_id = None
                self._move(c, E.RESERVATION_END)
                return call_result.CancelReservation(enums.CancelReservationStatus.accepted)
        return call_result.CancelReservation(enums.CancelReservationStatus.rejected)

    async def on_set_charging_profile(self, req: call.SetChargingProfile) -> Any:
        profile = req.cs_charging_profiles
        cid = req.connector_id
        purpose = profile.charging_profile_purpose
        if cid not in self.profiles:
            return call_result.SetChargingProfile(enums.ChargingProfileStatus.rejected)
        if purpose == enums.ChargingProfilePurposeType.tx_profile and cid not in self.sessions:
            return call_result.SetChargingProfile(enums.ChargingProfileStatus.rejected)
        if purpose == enums.ChargingProfilePurposeType.charge_point_max_profile and cid != 0:
            return call_result.SetChargingProfile(enums.ChargingProfileStatus.rejected)
        kept = [
            p
            for p in self.profiles[cid]
            if p.charging_profile_id != profile.charging_profile_id
            and (p.charging_profile_purpose, p.stack_level) != (purpose, profile.stack_level)
        ]
        self.profiles[cid] = [*kept, profile]
        for i in self.sessions:
            self._update_meter(i)
        return call_result.SetChargingProfile(enums.ChargingProfileStatus.accepted)

    async def on_clear_charging_profile(self, req: call.ClearChargingProfile) -> Any:
        removed = False
        for cid, profiles in self.profiles.items():
            if req.connector_id not in (None, cid):
                continue
            keep = []
            for p in profiles:
                match = (
                    req.id in (None, p.charging_profile_id)
                    and req.charging_profile_purpose in (None, p.charging_profile_purpose)
                    and req.stack_level in (None, p.stack_level)
                )
                if match:
                    removed = True
                else:
                    keep.append(p)
            self.profiles[cid] = keep
        for i in self.sessions:
            self._update_meter(i)
        status = (
            enums.ClearChargingProfileStatus.accepted
            if removed
            else enums.ClearChargingProfileStatus.unknown
        )
        return call_result.ClearChargingProfile(status)

    async def on_get_composite_schedule(self, req: call.GetCompositeSchedule) -> Any:
        if req.connector_id not in self.connectors:
            return call_result.GetCompositeSchedule(enums.GetCompositeScheduleStatus.rejected)
        cid = req.connector_id or 1
        meter = self.meters[cid]
        limit_w = self.offered_w(cid)
        unit = req.charging_rate_unit or enums.ChargingRateUnitType.watts
        limit = (
            limit_w
            if unit == enums.ChargingRateUnitType.watts
            else limit_w / (meter.voltage_v * meter.phases)
        )
        schedule = datatypes.ChargingSchedule(
            charging_rate_unit=unit,
            charging_schedule_period=[datatypes.ChargingSchedulePeriod(0, round(limit, 1))],
            duration=req.duration,
            start_schedule=self.now(),
        )
        return call_result.GetCompositeSchedule(
            enums.GetCompositeScheduleStatus.accepted, req.connector_id, self.now(), schedule
        )

    async def on_get_diagnostics(self, req: call.GetDiagnostics) -> Any:
        name = f"diagnostics-{self.cp_id}-{self.clock():%Y%m%d%H%M%S}.log"

        async def upload() -> None:
            for status in (enums.DiagnosticsStatus.uploading, enums.DiagnosticsStatus.uploaded):
                self._send(_Outgoing(functools.partial(call.DiagnosticsStatusNotification, status)))
                await trio.sleep(0.2)

        return Reply(call_result.GetDiagnostics(name), after=upload)

    async def on_update_firmware(self, req: call.UpdateFirmware) -> Any:
        async def update() -> None:
            steps = (
                enums.FirmwareStatus.downloading,
                enums.FirmwareStatus.downloaded,
                enums.FirmwareStatus.installing,
                enums.FirmwareStatus.installed,
            )
            for status in steps:
                self._send(_Outgoing(functools.partial(call.FirmwareStatusNotification, status)))
                await trio.sleep(0.2)
            self.firmware_version = f"{self.config.firmware_version}+update"
            await self.reboot(enums.ResetType.hard)

        return Reply(call_result.UpdateFirmware(), after=update)
