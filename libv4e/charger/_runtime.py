"""The charger's life in time: run, connect, boot, reconnect with backoff, reboot, and
restore what it kept in flash after a restart (sessions that were running end with
PowerLoss)."""

from __future__ import annotations

import logging
import random
from typing import Any, cast

import trio
from ocpp.v16 import call, enums

from libv4e._errors import CallTimeoutError, ConnectionLostError, RemoteCallError
from libv4e.charger._base import ChargerState, OutboxItem
from libv4e.charger._link import Link
from libv4e.charger._metering import Metering
from libv4e.charger._model import ChargePointStatus, ChargingSession, ConnectorEvent
from libv4e.charger._outbox import Outbox, StatusBoard
from libv4e.charger._persistence import load, local_list_entries
from libv4e.charger._sessions import Sessions
from libv4e.charger._station201 import Station201
from libv4e.protocol._version import OcppVersion
from libv4e.transport._connection import OcppConnection
from libv4e.transport._handlers import BoundHandlers
from libv4e.transport._websocket import ConnectError, open_ocpp

log = logging.getLogger("libv4e.charger")


class Runtime:
    """Running: the connection loop, boot, heartbeats, reboot and restore."""

    def __init__(
        self,
        state: ChargerState,
        *,
        link: Link,
        outbox: Outbox,
        board: StatusBoard,
        metering: Metering,
        sessions: Sessions,
        handlers: object,
    ) -> None:
        self._state = state
        self._link = link
        self._outbox = outbox
        self._board = board
        self._metering = metering
        self._sessions = sessions
        self._handlers = handlers
        """The object whose ``on_<action>`` methods answer the CSMS's calls."""
        self._restored = False
        self._reboot: str | None = None
        self._version = OcppVersion.parse(state.config.ocpp_version)
        self._station = (
            Station201(state.cp_id, state.clock) if self._version is OcppVersion.V201 else None
        )
        """The 2.0.1 face of the charger (None: it speaks 1.6 as its model does)."""

    async def run(
        self, url: str, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect to ``url`` (the CSMS base URL) and behave like a charger until cancelled.

        Reconnects with exponential backoff when the connection fails or closes.
        Reports started at once; use :attr:`connected_event` to wait for the first boot.
        """
        self.restore()
        async with trio.open_nursery() as nursery:
            self._link.nursery = nursery
            nursery.start_soon(self._metering.meter_loop)
            task_status.started()
            await self._connection_loop(url)

    def restore(self) -> None:
        """Take back what the charger kept in flash (once): configuration, local list,
        availability, energy; sessions that were running end with PowerLoss."""
        if not self._state.config.state_path or self._restored:
            return
        self._restored = True
        data = load(self._state.config.state_path)
        if data is None:
            return
        for key, value in data.get("configuration", {}).items():
            if (
                key in self._state.configuration.keys
                and not self._state.configuration.keys[key].readonly
            ):
                self._state.configuration.keys[key].value = str(value)
        self._state.auth.version = int(data.get("local_list", {}).get("version", 0))
        self._state.auth.entries = local_list_entries(data)
        for cid in data.get("inoperative", []):
            if cid in self._state.connectors:
                connector = self._state.connectors[cid]
                connector.inoperative = True
                if connector.can(
                    ConnectorEvent.INOPERATIVE
                ):  # before connecting: reported after boot
                    connector.apply(ConnectorEvent.INOPERATIVE)
        for cid, energy in data.get("energy_wh", {}).items():
            if int(cid) in self._state.meters:
                self._state.meters[int(cid)].energy_wh = float(energy)
        self._state.energy_at = {int(c): str(t) for c, t in data.get("energy_at", {}).items()}
        self._state.firmware_version = data.get("firmware_version", self._state.firmware_version)
        if data.get("security"):
            self._state.security.restore(data["security"])
        for saved in data.get("sessions", []):
            self._stop_interrupted(saved)
        self._state.persist()

    def _stop_interrupted(self, saved: dict[str, Any]) -> None:
        """A session that was running when the charger lost power: report its end."""
        session = ChargingSession(
            int(saved["connector_id"]),
            saved["id_tag"],
            int(saved["meter_start"]),
            saved["started_at"],
            saved.get("transaction_id"),
            local_id=next(self._state.local_ids),
        )
        meter_stop = round(self._state.meters[session.connector_id].energy_wh)
        if session.transaction_id is None:  # never acknowledged: start it first
            self._outbox.send(
                OutboxItem(
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
        stopped_at = self._state.energy_at.get(session.connector_id) or self._state.now()
        self._outbox.send(
            OutboxItem(
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
            self._state.cp_id,
            session.connector_id,
        )

    async def _connection_loop(self, url: str) -> None:
        delay = self._state.config.reconnect_min
        while True:
            dead = self._state.faults.offline_dead()
            if dead:  # knock now and then; a sandbox clear lets it back in at once
                await self._state.faults.wait_until_reachable()
            password = self._state.security.password(self._state.config.basic_auth_password)
            handlers: Any = BoundHandlers(self._handlers)
            station = self._station
            if station is not None:
                handlers = station.handlers(handlers, lambda: self._link.conn)
            try:
                async with open_ocpp(
                    url,
                    self._state.cp_id,
                    handlers=handlers,
                    basic_auth=(self._state.cp_id, password) if password else None,
                    ssl_context=self._state.security.ssl_context(self._state.config.ssl_context),
                    connect_timeout=10,
                    on_close=self._link.closed,
                    clock=self._state.clock,
                    version=self._version,
                ) as conn:
                    delay = self._state.config.reconnect_min
                    if station is not None:  # the parts keep calling in 1.6 terms
                        conn = cast(OcppConnection, station.link(conn))
                    await self._connected(conn)
            except (ConnectError, ConnectionLostError) as exc:
                log.info("%s: connection failed: %s", self._state.cp_id, exc)
            except Exception:  # a bug must cost this connection, not the whole fleet
                log.exception("%s: connection crashed; reconnecting", self._state.cp_id)
            finally:
                self._link.conn = None
                self._link.scope = None
                self._state.booted = False
                self._outbox.drop_volatile()
            if self._reboot is not None:
                log.info("%s: rebooting (%s)", self._state.cp_id, self._reboot)
                self._reboot = None
                await trio.sleep(self._state.config.reboot_delay)
                continue
            if dead:
                continue  # the knock interval is the wait
            await trio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._state.config.reconnect_max)

    async def _connected(self, conn: OcppConnection) -> None:
        state = self._state
        self._link.conn = conn
        self._state.starting.clear()  # promises made on a previous connection are void
        async with trio.open_nursery() as nursery:
            # the reader cancels this when the connection closes (see Link.closed)
            self._link.scope = nursery.cancel_scope
            if conn.closed:
                return
            if not await self._boot(conn):
                return
            self._state.faults.back_online()
            self._state.connected_event.set()
            for connector in self._state.connectors.values():
                self._board.notify(connector)
            nursery.start_soon(self._outbox.flush, conn)
            tag = state.config.auto_charge_tag
            if tag and not state.sessions and state.boot_count == 1:
                nursery.start_soon(self._sessions.swipe, 1, tag)
            # heartbeats in this task (one task less per charger); the close ends it
            await self._metering.heartbeat_loop()

    async def _boot(self, conn: OcppConnection) -> bool:
        boot = self._state.boot_notification()
        while True:
            try:
                result = await conn.call(boot, timeout=self._state.config.call_timeout)
            except (CallTimeoutError, RemoteCallError) as exc:
                log.warning("%s: BootNotification failed: %s", self._state.cp_id, exc)
                await trio.sleep(10)
                continue
            except ConnectionLostError:
                return False
            self._state.registration = str(result.status)
            if result.status == enums.RegistrationStatus.accepted:
                if result.interval > 0:
                    self._state.configuration.keys["HeartbeatInterval"].value = str(result.interval)
                self._state.booted = True
                self._state.boot_count += 1
                log.info("%s: booted, heartbeat every %ss", self._state.cp_id, result.interval)
                return True
            wait = result.interval if result.interval > 0 else 30
            log.info(
                "%s: BootNotification %s, retry in %ss", self._state.cp_id, result.status, wait
            )
            await trio.sleep(wait)

    async def reboot(self, kind: enums.ResetType) -> None:
        """Stop transactions, close the connection, come back after ``reboot_delay``."""
        reason = (
            enums.Reason.hard_reset if kind == enums.ResetType.hard else enums.Reason.soft_reset
        )
        for cid in list(self._state.sessions):
            self._sessions.end_session(cid, reason)
        self._state.faults.reset()
        await self._outbox.drain(5)
        self._reboot = str(kind)
        for c in self._state.connectors.values():
            if c.status is ChargePointStatus.finishing:
                c.locked = False
                if self._state.config.virtual_car:  # the virtual car drives off
                    c.plugged = False
                    c.apply(ConnectorEvent.UNPLUG)
                else:  # the driver's cable stays in: ready for the next start
                    c.apply(ConnectorEvent.PLUG_IN)
        await self._link.disconnect(1000, f"{kind} reset")
