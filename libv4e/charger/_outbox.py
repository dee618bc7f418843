"""The outbox: one ordered queue of outgoing calls. Transaction messages survive
disconnects and are retried (TransactionMessageAttempts / RetryInterval); everything else
is sent only while online. And the status board: connector status changes go through the
connector state machine there and are reported with a StatusNotification."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import trio
from ocpp.v16 import enums
from ocpp.v201 import call as call201

from libv4e._errors import (
    CallTimeoutError,
    ConnectionLostError,
    LocalProtocolError,
    RemoteCallError,
)
from libv4e.charger._base import ChargerState, OutboxItem
from libv4e.charger._model import ChargePointStatus, Connector, ConnectorEvent
from libv4e.transport._connection import OcppConnection

log = logging.getLogger("libv4e.charger")


class Outbox:
    """The ordered queue of outgoing calls; :meth:`flush` sends it over a connection."""

    def __init__(self, state: ChargerState, *, online: Callable[[], bool]) -> None:
        self._state = state
        self._online = online
        # a list, not a deque: it is nearly always empty, and an empty deque is 600 bytes
        self._items: list[OutboxItem] = []
        self._changed = trio.Event()
        self._drained: trio.Event | None = None  # made by drain() (memory)

    def __len__(self) -> int:
        return len(self._items)

    def send(self, item: OutboxItem) -> None:
        """Queue ``item``; one that is not a transaction message is dropped while offline."""
        if item.session is None and not self._online():
            return  # only transaction messages are kept while offline
        if item.session is not None:
            self._state.stats["tx_messages_queued"] += 1
        self._items.append(item)
        self._changed.set()

    def drop_volatile(self) -> None:
        """The connection is gone: keep only transaction messages."""
        self._items = [o for o in self._items if o.session is not None]

    async def flush(self, conn: OcppConnection) -> None:
        """Send the queue over ``conn``, in order, until the connection is lost."""
        state = self._state
        while True:
            while not self._items or state.faults.silent():
                self._changed = trio.Event()
                await self._changed.wait()
            item = self._items[0]
            payload = item.build()
            try:
                result = await conn.call(payload, timeout=state.config.call_timeout)
            except ConnectionLostError:
                return
            except (CallTimeoutError, RemoteCallError, LocalProtocolError) as exc:
                item.attempts += 1
                attempts = state.configuration.int("TransactionMessageAttempts")
                if item.session is None or item.attempts >= attempts:
                    log.warning("%s: dropped %s: %s", state.cp_id, type(payload).__name__, exc)
                    self._items.pop(0)
                    if item.session is not None:
                        state.stats["tx_messages_dropped"] += 1
                else:
                    retry = state.configuration.int("TransactionMessageRetryInterval")
                    await trio.sleep(retry * item.attempts)
                continue
            self._items.pop(0)
            state.stats["messages_delivered"] += 1
            if item.session is not None:
                state.stats["tx_messages_delivered"] += 1
            if item.on_result is not None:
                item.on_result(result)
            if not self._items and self._drained is not None:
                self._drained.set()
                self._drained = None

    async def drain(self, timeout: float) -> bool:
        """Wait until the queue is empty (True) or ``timeout`` passes (False)."""
        with trio.move_on_after(timeout):
            while self._items:
                if self._drained is None:
                    self._drained = trio.Event()
                await self._drained.wait()
            return True
        return False


class StatusBoard:
    """Connector status changes: each through the connector state machine, each reported
    to the CSMS (StatusNotification, queued in the outbox)."""

    def __init__(self, state: ChargerState, outbox: Outbox) -> None:
        self._state = state
        self._outbox = outbox

    def notify(self, connector: Connector) -> None:
        """Send a StatusNotification with the connector's present status and error code."""
        # the status is captured now: the queue may send it after further changes
        notification = connector.notification(self._state.now())
        self._outbox.send(OutboxItem(lambda: notification))

    def move(self, connector: Connector, event: ConnectorEvent) -> None:
        """Apply ``event`` if the machine allows it now, and report the new status."""
        if connector.can(event):
            connector.apply(event)
            self.notify(connector)
            if (
                connector.status is ChargePointStatus.available
                and connector.pending_availability is not None
            ):
                self.apply_scheduled_availability(connector)  # a Scheduled change is due

    def report_error(self, connector_id: int, error_code: str, info: str | None = None) -> None:
        """The connector faults with a hardware ``error_code``: Faulted, and reported."""
        connector = self._state.connectors[connector_id]
        connector.set_error(enums.ChargePointErrorCode(error_code), info)
        self.move(connector, ConnectorEvent.FAULT)

    def apply_scheduled_availability(self, connector: Connector) -> None:
        """A ChangeAvailability answered Scheduled takes effect (the connector is free)."""
        if connector.pending_availability is None:
            return
        connector.inoperative = connector.pending_availability
        connector.pending_availability = None
        if connector.inoperative and connector.can(ConnectorEvent.INOPERATIVE):
            self.move(connector, ConnectorEvent.INOPERATIVE)

    def expire_reservations(self) -> None:
        """Reservations whose expiry (trio time) has passed end."""
        now = trio.current_time()
        for c in self._state.connectors.values():
            if (
                c.reservation_id is not None
                and c.reservation_expiry is not None
                and now >= c.reservation_expiry
            ):
                expired, c.reservation_id = c.reservation_id, None
                self.move(c, ConnectorEvent.RESERVATION_END)
                if self._state.config.ocpp_version == "2.0.1":  # 1.6 has no such message
                    update = call201.ReservationStatusUpdate(
                        reservation_id=expired, reservation_update_status="Expired"
                    )
                    self._outbox.send(OutboxItem(functools.partial(_same, update)))


def _same(payload: Any) -> Any:
    return payload
