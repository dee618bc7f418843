"""The outbox: one ordered queue of outgoing calls. Transaction messages survive
disconnects and are retried (TransactionMessageAttempts / RetryInterval); everything else
is sent only while online. Connector status changes go through the state machine here and
are reported with a StatusNotification."""

from __future__ import annotations

import logging

import trio
from ocpp.v16 import enums

from libv4e._errors import (
    CallTimeoutError,
    ConnectionLostError,
    LocalProtocolError,
    RemoteCallError,
)
from libv4e.charger._base import ChargerBase, OutboxItem
from libv4e.charger._model import ChargePointStatus, Connector, ConnectorEvent
from libv4e.transport._connection import OcppConnection

log = logging.getLogger("libv4e.charger")


class OutboxCharger(ChargerBase):
    """Sending: the ordered outbox, status reports and connector state changes."""

    def _send(self, outgoing: OutboxItem) -> None:
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
        self._send(OutboxItem(lambda: notification))

    def report_error(self, connector_id: int, error_code: str, info: str | None = None) -> None:
        """The connector faults with a hardware ``error_code`` (an OCPP 1.6
        ChargePointErrorCode, e.g. ``GroundFailure``): Faulted, and the CSMS is told."""
        connector = self.connectors[connector_id]
        connector.set_error(enums.ChargePointErrorCode(error_code), info)
        self._move(connector, ConnectorEvent.FAULT)

    def car_paused(self, connector_id: int) -> None:
        """The car stops drawing power by itself (full, or a timer): SuspendedEV."""
        self._move(self.connectors[connector_id], ConnectorEvent.SUSPEND_EV)

    def _move(self, connector: Connector, event: ConnectorEvent) -> None:
        if connector.can(event):
            connector.apply(event)
            self._notify(connector)
            if (
                connector.status is ChargePointStatus.available
                and connector.pending_availability is not None
            ):
                self._apply_scheduled_availability(connector)  # a Scheduled change is due

    def _apply_scheduled_availability(self, connector: Connector) -> None:
        if connector.pending_availability is None:
            return
        connector.inoperative = connector.pending_availability
        connector.pending_availability = None
        if connector.inoperative and connector.can(ConnectorEvent.INOPERATIVE):
            self._move(connector, ConnectorEvent.INOPERATIVE)

    def _expire_reservations(self) -> None:
        now = trio.current_time()
        for c in self.connectors.values():
            if (
                c.reservation_id is not None
                and c.reservation_expiry is not None
                and now >= c.reservation_expiry
            ):
                c.reservation_id = None
                self._move(c, ConnectorEvent.RESERVATION_END)
