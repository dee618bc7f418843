"""A simulated OCPP 1.6 charge point on Trio: boots, heartbeats, charges, answers every
Core / Local Auth List / Reservation / Smart Charging / Firmware / Remote Trigger command,
reconnects with backoff, and keeps transaction messages while offline.

State lives in the sans-IO model (``_model``, held by :class:`ChargerState`); the parts
the charger is composed of move it in time and over the wire. Start :meth:`Charger.run`
in your nursery.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import trio
from ocpp.v16 import enums

from libv4e.charger._base import ChargerConfig, ChargerState
from libv4e.charger._driver import Driver
from libv4e.charger._face import ChargerFace
from libv4e.charger._handlers import CommandHandlers
from libv4e.charger._link import Link
from libv4e.charger._metering import Metering
from libv4e.charger._model import (
    IN_SESSION,
    ChargePointStatus,
    ChargingSession,
    Connector,
    ConnectorEvent,
)
from libv4e.charger._outbox import Outbox, StatusBoard
from libv4e.charger._runtime import Runtime
from libv4e.charger._sessions import Sessions

__all__ = ["Charger", "ChargerConfig", "ChargerState"]


class Charger(ChargerState):
    """One simulated charge point. Everything it does runs inside :meth:`run`.

    It holds its state (:class:`ChargerState`: connectors, meters, sessions, …) and is
    composed of parts, each given the collaborators it uses:

    * :attr:`outbox` (:class:`Outbox`): the ordered queue of outgoing calls;
    * :attr:`board` (:class:`StatusBoard`): connector state changes and their reports;
    * :attr:`metering` (:class:`Metering`): heartbeats, meter samples, offered power;
    * :attr:`charging` (:class:`Sessions`): authorize, begin and end sessions, unplug;
    * :attr:`link` (:class:`Link`): the present connection;
    * :attr:`runtime` (:class:`Runtime`): connect, boot, reconnect, reboot, restore;
    * :attr:`handlers` (:class:`CommandHandlers`, or the subclass given as ``handlers``):
      the answers to the CSMS's commands.

    To change how it answers a command, subclass :class:`CommandHandlers` and pass it as
    ``handlers``; custom faults are hooks on :attr:`faults`."""

    def __init__(
        self,
        config: ChargerConfig,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        handlers: Callable[[ChargerFace], CommandHandlers] = CommandHandlers,
    ) -> None:
        super().__init__(config, clock=clock)
        self.link = Link(self)
        self.outbox = Outbox(self, online=lambda: self.link.online)
        self.board = StatusBoard(self, self.outbox)
        self.metering = Metering(self, self.outbox, self.board)
        self.charging = Sessions(
            self, outbox=self.outbox, board=self.board, metering=self.metering, link=self.link
        )
        self.handlers = handlers(self)
        self.runtime = Runtime(
            self,
            link=self.link,
            outbox=self.outbox,
            board=self.board,
            metering=self.metering,
            sessions=self.charging,
            handlers=self.handlers,
        )
        self._driver: Driver | None = None

    # -- what one does with a charger --------------------------------------------------------

    async def run(
        self, url: str, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect to ``url`` (the CSMS base URL) and behave like a charger until cancelled.

        Reconnects with exponential backoff when the connection fails or closes.
        Reports started at once; use :attr:`connected_event` to wait for the first boot.
        """
        await self.runtime.run(url, task_status=task_status)

    @property
    def driver(self) -> Driver:
        """The driver at this charger: plug in, unplug, present a card, press stop, read
        the screen, look at the car's app (see :class:`~libv4e.charger.Driver`)."""
        if self._driver is None:
            self._driver = Driver(self)
        return self._driver

    @property
    def online(self) -> bool:
        """Connected and booted (Accepted)."""
        return self.link.online

    @property
    def queued(self) -> int:
        """Messages waiting to be sent (transaction messages survive disconnects)."""
        return len(self.outbox)

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

    async def swipe(self, connector_id: int, id_tag: str) -> bool:
        """A driver presents ``id_tag`` at ``connector_id`` and plugs in: charge if allowed."""
        return await self.charging.swipe(connector_id, id_tag)

    def end_session(self, connector_id: int, reason: enums.Reason) -> ChargingSession | None:
        """Stop the transaction on ``connector_id`` with ``reason`` (StopTransaction)."""
        return self.charging.end_session(connector_id, reason)

    def unplug(self, connector_id: int) -> None:
        """The driver takes the cable out."""
        self.charging.unplug(connector_id)

    def report_status(self, connector: Connector) -> None:
        """Send a StatusNotification with the connector's present status and error code
        (use it after changing a connector yourself, e.g. in a custom fault)."""
        self.board.notify(connector)

    def report_error(self, connector_id: int, error_code: str, info: str | None = None) -> None:
        """The connector faults with a hardware ``error_code`` (an OCPP 1.6
        ChargePointErrorCode, e.g. ``GroundFailure``): Faulted, and the CSMS is told."""
        self.board.report_error(connector_id, error_code, info)

    def car_paused(self, connector_id: int) -> None:
        """The car stops drawing power by itself (full, or a timer): SuspendedEV."""
        self.board.move(self.connectors[connector_id], ConnectorEvent.SUSPEND_EV)

    async def drain(self, timeout: float) -> bool:
        """Wait until the outbox is empty (True) or ``timeout`` passes (False)."""
        return await self.outbox.drain(timeout)

    async def reboot(self, kind: enums.ResetType) -> None:
        """Stop transactions, close the connection, come back after ``reboot_delay``."""
        await self.runtime.reboot(kind)

    async def disconnect(self, code: int, reason: str) -> None:
        """Close the present connection (if any) with ``code``; the charger reconnects as
        usual (after ``reboot_delay`` when rebooting, else with backoff)."""
        await self.link.disconnect(code, reason)
