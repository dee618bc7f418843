"""The answers to the calls an OCPP 2.0.1 charging station initiates: one
:class:`ChargerHandlers201` per 2.0.1 connection, beside the 1.6 :class:`ChargerHandlers`,
working through the same public surface of the central system (:class:`Central`) and
into the same books.

The topology: **one connector per EVSE**. A 2.0.1 StatusNotification's ``evseId`` is
the registry's ``connector_id`` (``evseId`` 0, the station as a whole, is connector 0,
as in 1.6); the ``connectorId`` inside the EVSE is not kept, so an EVSE with several
connectors shows the status last reported for any of them.

Not here yet: ``TransactionEvent`` (answered CALLERROR NotImplemented, so a charger
keeps it queued rather than believing it stored).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import Protocol

from ocpp.v16 import call as call16
from ocpp.v201 import call, call_result, datatypes, enums

from libv4e._errors import ErrorCode, OcppError
from libv4e.csms._auth import AuthorizationList
from libv4e.csms._config import CsmsConfig
from libv4e.csms._handlers import DataTransferHandler
from libv4e.csms._ledger import Ledger
from libv4e.csms._registry import BootInfo, Registry, iso, parse_time
from libv4e.csms._txbook import TransactionBook
from libv4e.transport._connection import OcppConnection

log = logging.getLogger("libv4e.csms")

NO_AUTHORIZATION = "NoAuthorization"
"""The 2.0.1 IdToken type that asks for no authorization (its idToken is empty)."""


class Parts201(Protocol):
    """What the 2.0.1 handlers use of the central system, and nothing more: the books
    they read and plan with and the callbacks they report to (never the façade)."""

    @property
    def registry(self) -> Registry: ...
    @property
    def transactions(self) -> TransactionBook: ...
    @property
    def ledger(self) -> Ledger: ...
    @property
    def auth(self) -> AuthorizationList: ...
    @property
    def config(self) -> Callable[[], CsmsConfig]:
        """The current configuration (replaceable on the central system)."""
        ...

    @property
    def clock(self) -> Callable[[], dt.datetime]: ...
    @property
    def charger_changed(self) -> Callable[[str], None]:
        """A charger's state changed (written with the next log flush)."""
        ...

    @property
    def data_transfer(self) -> Callable[[str], DataTransferHandler | None]:
        """The DataTransfer handler registered for a vendor id, if any."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class HandlerParts201:
    """The :class:`Parts201` a central system hands every 2.0.1 connection's handlers."""

    registry: Registry
    transactions: TransactionBook
    ledger: Ledger
    auth: AuthorizationList
    config: Callable[[], CsmsConfig]
    clock: Callable[[], dt.datetime]
    charger_changed: Callable[[str], None]
    data_transfer: Callable[[str], DataTransferHandler | None]


class ChargerHandlers201:
    """The answers to one OCPP 2.0.1 charger's calls."""

    def __init__(self, parts: Parts201, cp_id: str, conn: OcppConnection | None = None) -> None:
        self.parts, self.cp_id, self.conn = parts, cp_id, conn

    async def on_boot_notification(
        self, msg: call.BootNotification
    ) -> call_result.BootNotification:
        parts = self.parts
        config = parts.config()
        allowed = config.allowed_ids
        status = enums.RegistrationStatusEnumType.accepted
        if allowed is not None and self.cp_id not in allowed:
            status = enums.RegistrationStatusEnumType.rejected
        now = parts.clock()
        interval = config.heartbeat_interval
        station = msg.charging_station
        boot = BootInfo(
            vendor=station.vendor_name,
            model=station.model,
            serial_number=station.serial_number,
            firmware_version=station.firmware_version,
            reason=str(msg.reason),
        )
        parts.registry.record_boot(self.cp_id, boot, str(status), interval, now)
        # its sessions must show they survived the boot (doubts: nothing to write)
        parts.ledger.apply(parts.transactions.booted(self.cp_id, now))
        parts.charger_changed(self.cp_id)
        return call_result.BootNotification(iso(now), interval, status)

    async def on_heartbeat(self, msg: call.Heartbeat) -> call_result.Heartbeat:
        now = self.parts.clock()
        self.parts.registry.heartbeat(self.cp_id, now)
        return call_result.Heartbeat(iso(now))

    async def on_status_notification(
        self, msg: call.StatusNotification
    ) -> call_result.StatusNotification:
        parts = self.parts
        at = parse_time(msg.timestamp) or parts.clock()
        parts.registry.connector_status(self.cp_id, msg.evse_id, str(msg.connector_status), at)
        parts.charger_changed(self.cp_id)
        return call_result.StatusNotification()

    async def on_authorize(self, msg: call.Authorize) -> call_result.Authorize:
        token = msg.id_token
        if str(token.type) == NO_AUTHORIZATION:
            status = enums.AuthorizationStatusEnumType.accepted
            return call_result.Authorize(datatypes.IdTokenInfoType(status))
        info = self.parts.auth.authorize(token.id_token, self.parts.clock())
        answer = datatypes.IdTokenInfoType(
            status=enums.AuthorizationStatusEnumType(str(info.status)),
            cache_expiry_date_time=info.expiry_date,
        )
        if info.parent_id_tag:
            answer.group_id_token = datatypes.IdTokenType(
                info.parent_id_tag, enums.IdTokenEnumType.central
            )
        return call_result.Authorize(answer)

    async def on_notify_report(self, msg: call.NotifyReport) -> call_result.NotifyReport:
        self.parts.registry.device_model(self.cp_id).report(msg.report_data)
        return call_result.NotifyReport()

    async def on_notify_event(self, msg: call.NotifyEvent) -> call_result.NotifyEvent:
        self.parts.registry.device_model(self.cp_id).event(msg.event_data, msg.generated_at)
        return call_result.NotifyEvent()

    async def on_data_transfer(self, msg: call.DataTransfer) -> call_result.DataTransfer:
        """The vendor's handler (registered for 1.6 DataTransfer) answers: 2.0.1's
        ``data`` (any JSON) reaches it as text, JSON-encoded unless it is a string."""
        handler = self.parts.data_transfer(msg.vendor_id)
        if handler is None:
            return call_result.DataTransfer(enums.DataTransferStatusEnumType.unknown_vendor_id)
        data = msg.data
        text = data if data is None or isinstance(data, str) else json.dumps(data)
        answer = await handler(self.cp_id, call16.DataTransfer(msg.vendor_id, msg.message_id, text))
        return call_result.DataTransfer(
            enums.DataTransferStatusEnumType(str(answer.status)), data=answer.data
        )

    async def on_transaction_event(
        self, msg: call.TransactionEvent
    ) -> call_result.TransactionEvent:
        log.warning("%s sent TransactionEvent, which is not handled yet", self.cp_id)
        raise OcppError(
            ErrorCode.NOT_IMPLEMENTED,
            "TransactionEvent is not handled by this central system yet",
        )
