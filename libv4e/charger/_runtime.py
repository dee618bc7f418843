"""The charger's life in time: run, connect, boot, reconnect with backoff, reboot, and
restore what it kept in flash after a restart (sessions that were running end with
PowerLoss)."""

from __future__ import annotations

import logging
import random
from typing import Any

import trio
from ocpp.v16 import call, enums

from libv4e._errors import CallTimeoutError, ConnectionLostError, RemoteCallError
from libv4e.charger._base import OutboxItem
from libv4e.charger._model import ChargePointStatus, ChargingSession, ConnectorEvent
from libv4e.charger._persistence import load, local_list_entries
from libv4e.charger._sessions import SessionCharger
from libv4e.transport._connection import OcppConnection
from libv4e.transport._handlers import BoundHandlers
from libv4e.transport._websocket import ConnectError, open_ocpp

log = logging.getLogger("libv4e.charger")


class RuntimeCharger(SessionCharger):
    """Running: the connection loop, boot, heartbeats, reboot and restore."""

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

    def _restore(self) -> None:
        if not self.config.state_path or self._restored:
            return
        self._restored = True
        data = load(self.config.state_path)
        if data is None:
            return
        for key, value in data.get("configuration", {}).items():
            if key in self.configuration.keys and not self.configuration.keys[key].readonly:
                self.configuration.keys[key].value = str(value)
        self.auth.version = int(data.get("local_list", {}).get("version", 0))
        self.auth.entries = local_list_entries(data)
        for cid in data.get("inoperative", []):
            if cid in self.connectors:
                connector = self.connectors[cid]
                connector.inoperative = True
                if connector.can(
                    ConnectorEvent.INOPERATIVE
                ):  # before connecting: reported after boot
                    connector.apply(ConnectorEvent.INOPERATIVE)
        for cid, energy in data.get("energy_wh", {}).items():
            if int(cid) in self.meters:
                self.meters[int(cid)].energy_wh = float(energy)
        self.energy_at = {int(c): str(t) for c, t in data.get("energy_at", {}).items()}
        self.firmware_version = data.get("firmware_version", self.firmware_version)
        if data.get("security"):
            self.security.restore(data["security"])
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
        stopped_at = self.energy_at.get(session.connector_id) or self.now()
        self._outbox.append(
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
            self.cp_id,
            session.connector_id,
        )

    async def _connection_loop(self, url: str) -> None:
        delay = self.config.reconnect_min
        while True:
            dead = self.faults.offline_dead()
            if dead:  # knock now and then; a sandbox clear lets it back in at once
                await self.faults.wait_until_reachable()
            password = self.security.password(self.config.basic_auth_password)
            try:
                async with open_ocpp(
                    url,
                    self.cp_id,
                    handlers=BoundHandlers(self),
                    basic_auth=(self.cp_id, password) if password else None,
                    ssl_context=self.security.ssl_context(self.config.ssl_context),
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

    async def reboot(self, kind: enums.ResetType) -> None:
        """Stop transactions, close the connection, come back after ``reboot_delay``."""
        reason = (
            enums.Reason.hard_reset if kind == enums.ResetType.hard else enums.Reason.soft_reset
        )
        for cid in list(self.sessions):
            self.end_session(cid, reason)
        self.faults.reset()
        await self.drain(5)
        self._reboot = str(kind)
        for c in self.connectors.values():
            if c.status is ChargePointStatus.finishing:
                c.locked = False
                if self.config.virtual_car:  # the virtual car drives off
                    c.plugged = False
                    c.apply(ConnectorEvent.UNPLUG)
                else:  # the driver's cable stays in: ready for the next start
                    c.apply(ConnectorEvent.PLUG_IN)
        await self.disconnect(1000, f"{kind} reset")

    async def disconnect(self, code: int, reason: str) -> None:
        """Close the present connection (if any) with ``code``; the charger reconnects as
        usual (after ``reboot_delay`` when rebooting, else with backoff)."""
        if self._conn is not None:
            await self._conn.aclose(code, reason)
