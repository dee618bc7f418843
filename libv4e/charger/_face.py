"""What the parts of a charger that act on the whole of it (its command handlers, its
driver) use of it: its state, its parts and what one does with a charger, all public.
:class:`~libv4e.charger.Charger` is one (a structural type, so that those parts do not
import the class that composes them)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Protocol

from ocpp.v16 import call, datatypes, enums

from libv4e.charger._base import ChargerConfig
from libv4e.charger._metering import Metering
from libv4e.charger._model import (
    ChargingSession,
    Configuration,
    Connector,
    LocalAuthorization,
    Meter,
)
from libv4e.charger._outbox import Outbox, StatusBoard
from libv4e.charger._security import ChargerSecurityState
from libv4e.charger._sessions import Sessions
from libv4e.scenarios._faults import FaultState


class ChargerFace(Protocol):
    """A charger as its handlers and its driver see it."""

    config: ChargerConfig
    cp_id: str
    clock: Callable[[], dt.datetime]
    connectors: dict[int, Connector]
    configuration: Configuration
    auth: LocalAuthorization
    meters: dict[int, Meter]
    sessions: dict[int, ChargingSession]
    profiles: dict[int, list[datatypes.ChargingProfile]]
    faults: FaultState
    security: ChargerSecurityState
    firmware_version: str
    starting: set[int]
    outbox: Outbox
    board: StatusBoard
    metering: Metering
    charging: Sessions

    @property
    def online(self) -> bool: ...
    def now(self) -> str: ...
    def persist(self) -> None: ...
    def boot_notification(self) -> call.BootNotification: ...
    def end_session(self, connector_id: int, reason: enums.Reason) -> Any: ...
    def unplug(self, connector_id: int) -> None: ...
    def report_status(self, connector: Connector) -> None: ...
    async def swipe(self, connector_id: int, id_tag: str) -> bool: ...
    async def reboot(self, kind: enums.ResetType) -> None: ...
    async def disconnect(self, code: int, reason: str) -> None: ...
