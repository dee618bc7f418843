"""The answers to the calls a charger initiates (OCPP 1.6 core, firmware and diagnostics
notifications, DataTransfer): one :class:`ChargerHandlers` per connection, working
through the parts of the central system they are handed (:class:`HandlerParts`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar

from ocpp.v16 import call, call_result, datatypes, enums

from libv4e._errors import ErrorCode, OcppError
from libv4e.csms._auth import AuthorizationList
from libv4e.csms._bookkeeper import Bookkeeper
from libv4e.csms._config import CsmsConfig
from libv4e.csms._devicemodels import DeviceModels
from libv4e.csms._ledger import METER_DEDUPE_WINDOW, Ledger
from libv4e.csms._registry import (
    BootInfo,
    Registry,
    Transaction,
    energy_register_wh,
    iso,
    parse_time,
)
from libv4e.csms._securitycenter import SecurityCenter
from libv4e.csms._store import TransactionStore
from libv4e.csms._txbook import TransactionBook
from libv4e.protocol._convert import to_json_payload
from libv4e.protocol._session import MessageType
from libv4e.transport._connection import Direction, Handler, MessageRecord, OcppConnection, Reply

log = logging.getLogger("libv4e.csms")
T = TypeVar("T")

BEFORE_BOOT = frozenset({"BootNotification", "Heartbeat", "StatusNotification"})
"""What a charger may call before its BootNotification is Accepted: these change nothing
in the store (the state is shown while connected and forgotten when it disconnects)."""
DataTransferHandler = Callable[[str, call.DataTransfer], Awaitable[call_result.DataTransfer]]


@dataclasses.dataclass(frozen=True, slots=True)
class HandlerParts:
    """What the handlers use of the central system and nothing more: the books they
    read and plan with, the components that write them, and the few callbacks they
    report to. The central system builds one and hands it to every connection's
    handlers; they never see the central system itself."""

    registry: Registry
    transactions: TransactionBook
    ledger: Ledger
    bookkeeper: Bookkeeper
    """Locks, ids and the one write per change."""
    auth: AuthorizationList
    store: TransactionStore
    """Read-backs (a transaction finished long ago, recent meter values) and meter rows."""
    security: SecurityCenter
    device_models: DeviceModels
    """OCPP 2.0.1 device models (NotifyReport, NotifyEvent): stored, and held here."""
    config: Callable[[], CsmsConfig]
    """The current configuration (replaceable on the central system)."""
    clock: Callable[[], dt.datetime]
    charger_changed: Callable[[str], None]
    """A charger's state changed (written with the next log flush)."""
    meter_values_stored: Callable[[str, int | None], None]
    """Meter rows were stored for (charger, transaction), for the retention pass."""
    firmware_reported: Callable[[str, str, str], Awaitable[None]]
    """(charger, "firmware" or "diagnostics", status): the operator's firmware book."""
    data_transfer: Callable[[str], DataTransferHandler | None]
    """The DataTransfer handler registered for a vendor id, if any."""
    reservation_reported: Callable[[str, int, str], Awaitable[None]]
    """(charger, reservation id, Expired or Removed): a 2.0.1 ReservationStatusUpdate."""


class BootGate(Mapping[str, Handler]):
    """A charger's handlers, of which only :data:`BEFORE_BOOT` answer until it has a
    lasting record (an Accepted BootNotification, now or before): every other call is
    answered CALLERROR SecurityError and stores nothing (OCPP 1.6 §4.2: until Accepted the
    charger sends nothing else; 2.0.1 B02.FR.09 names the error)."""

    __slots__ = ("_booted", "_handlers", "_max_connector")

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        booted: Callable[[], bool],
        *,
        max_connector: int | None = None,
    ) -> None:
        self._handlers = handlers
        self._booted = booted
        self._max_connector = max_connector

    def __getitem__(self, action: str) -> Handler:
        handler = self._handlers[action]
        if action in BEFORE_BOOT or self._booted():
            return handler if self._max_connector is None else self._bounded(handler)

        async def refuse(payload: Any) -> Any:
            raise OcppError(
                ErrorCode.SECURITY_ERROR, f"{action} before an accepted BootNotification"
            )

        return refuse

    def _bounded(self, handler: Handler) -> Handler:
        """``handler`` refusing a connectorId above the charger's bound (PropertyConstraint-
        Violation, nothing created): each connector is a record kept and listed forever."""
        limit = self._max_connector

        async def bounded(payload: Any) -> Any:
            evse = getattr(payload, "evse", None)  # a TransactionEvent names it as an object
            evse_id = evse.get("id") if isinstance(evse, dict) else getattr(evse, "id", None)
            ids = (  # 2.0.1: an EVSE is a connector; the connector within it is bounded too
                ("evseId", getattr(payload, "evse_id", None)),
                ("evse.id", evse_id),
                ("connectorId", getattr(payload, "connector_id", None)),
            )
            for field, value in ids:
                if isinstance(value, int) and limit is not None and value > limit:
                    raise OcppError(
                        ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
                        f"{field} {value} is above this central system's limit of {limit}",
                        {"field": field},
                    )
            return await handler(payload)

        return bounded

    def __iter__(self) -> Iterator[str]:
        return iter(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)


def book_boot(parts: HandlerParts, cp_id: str, boot: BootInfo) -> tuple[bool, int, dt.datetime]:
    """A BootNotification of either version: accepted unless the id is outside the
    allow-list, recorded with its answer, and the charger's running sessions doubted
    until it shows them alive (nothing to write). Returns (accepted, the heartbeat
    interval, the time of the answer)."""
    config = parts.config()
    accepted = config.allowed_ids is None or cp_id in config.allowed_ids
    now = parts.clock()
    interval = config.heartbeat_interval
    parts.registry.record_boot(cp_id, boot, "Accepted" if accepted else "Rejected", interval, now)
    parts.ledger.apply(parts.transactions.booted(cp_id, now))
    parts.charger_changed(cp_id)
    return accepted, interval, now


class AnswerLog:
    """The log row of an answer about to be sent, to write with the change the call
    causes (:meth:`Bookkeeper.commit`), and the reply that retracts it if the answer
    cannot be sent — for one connection's handlers, of either OCPP version."""

    def __init__(self, parts: HandlerParts, cp_id: str, conn: OcppConnection | None) -> None:
        self.parts, self.cp_id, self.conn = parts, cp_id, conn

    def record(self, action: str, result: Any) -> MessageRecord | None:
        """The log record of ``result``, the answer to the call being handled (None
        outside a connection's dispatcher)."""
        unique_id = None if self.conn is None else self.conn.handling
        if unique_id is None:
            return None
        return MessageRecord(
            self.cp_id,
            Direction.OUT,
            MessageType.CALLRESULT,
            unique_id,
            action,
            to_json_payload(result),
            self.parts.clock(),
            logged=True,
        )

    def reply(
        self,
        result: Any,
        answer: MessageRecord | None,
        logged: bool,
        undelivered: Callable[[], None] | None = None,
    ) -> Reply:
        """``result`` as a Reply; if its log row was written with the change (``logged``)
        and the result cannot be sent, the row is retracted."""
        if not logged or answer is None:
            return Reply(result, undelivered=undelivered)
        bookkeeper = self.parts.bookkeeper

        def not_sent() -> None:
            bookkeeper.answer_not_sent(answer)
            if undelivered is not None:
                undelivered()

        return Reply(result, undelivered=not_sent, logged=True)


class ChargerHandlers:
    """The answers to one charger's calls."""

    def __init__(self, parts: HandlerParts, cp_id: str, conn: OcppConnection | None = None) -> None:
        self.parts, self.cp_id, self.conn = parts, cp_id, conn
        self._answers = AnswerLog(parts, cp_id, conn)

    async def on_boot_notification(
        self, msg: call.BootNotification
    ) -> call_result.BootNotification:
        boot = BootInfo(
            vendor=msg.charge_point_vendor,
            model=msg.charge_point_model,
            serial_number=msg.charge_point_serial_number or msg.charge_box_serial_number,
            firmware_version=msg.firmware_version,
        )
        accepted, interval, now = book_boot(self.parts, self.cp_id, boot)
        status = (
            enums.RegistrationStatus.accepted if accepted else enums.RegistrationStatus.rejected
        )
        return call_result.BootNotification(iso(now), interval, status)

    async def on_heartbeat(self, msg: call.Heartbeat) -> call_result.Heartbeat:
        now = self.parts.clock()
        self.parts.registry.heartbeat(self.cp_id, now)
        return call_result.Heartbeat(iso(now))

    async def on_status_notification(self, msg: call.StatusNotification) -> Reply:
        csms = self.parts
        connector = csms.registry.status(self.cp_id, msg, csms.clock())
        csms.charger_changed(self.cp_id)
        result = call_result.StatusNotification()
        async with csms.bookkeeper.lock(self.cp_id):
            # Available/Preparing with a session still open: the StopTransaction is lost
            change = csms.ledger.complete(
                csms.transactions.status(
                    self.cp_id, msg.connector_id, str(msg.status), connector.timestamp
                ),
                csms.clock(),
            )
            answer = self._answers.record("StatusNotification", result)
            logged = await csms.bookkeeper.commit(change, answer)
        return self._answers.reply(result, answer, logged)

    async def on_authorize(self, msg: call.Authorize) -> call_result.Authorize:
        return call_result.Authorize(self.parts.auth.authorize(msg.id_tag, self.parts.clock()))

    async def on_start_transaction(self, msg: call.StartTransaction) -> Reply:
        csms = self.parts
        now = csms.clock()
        info = csms.auth.authorize(msg.id_tag, now)
        started = parse_time(msg.timestamp) or now
        async with csms.bookkeeper.lock(self.cp_id):
            await csms.bookkeeper.ensure_transaction_ids()
            change = csms.ledger.start(  # the id is taken here, before any await
                self.cp_id,
                msg.connector_id,
                msg.id_tag,
                msg.meter_start,
                started,
                reservation_id=msg.reservation_id,
                id_tag_status=str(info.status),
                received_at=csms.clock(),
            )
            tx = change.transaction
            assert tx is not None
            result = call_result.StartTransaction(tx.transaction_id, info)
            answer = self._answers.record("StartTransaction", result)
            logged = await csms.bookkeeper.commit(change, answer)
        tx_id = tx.transaction_id
        return self._answers.reply(
            result,
            answer,
            logged,
            lambda: csms.ledger.apply(csms.transactions.reply_lost(tx_id, csms.clock())),
        )

    async def on_stop_transaction(self, msg: call.StopTransaction) -> Reply:
        csms = self.parts
        now = csms.clock()
        info = csms.auth.authorize(msg.id_tag, now) if msg.id_tag else None
        stopped = parse_time(msg.timestamp) or now
        async with csms.bookkeeper.lock(self.cp_id):
            if msg.transaction_id not in csms.transactions:
                # finished long ago, or before a restart
                stored = await csms.store.transaction(msg.transaction_id)
                if stored is not None:
                    csms.transactions.load([stored])
            change = csms.transactions.stop(
                self.cp_id,
                msg.transaction_id,
                msg.meter_stop,
                stopped,
                received_at=now,
                reason=str(msg.reason or enums.Reason.local),
                id_tag=msg.id_tag,
                last_meter_wh=energy_register_wh(msg.transaction_data or []),
            )
            change = csms.ledger.complete(change, now)  # the TxProfiles ended with it
            if change.unmatched is not None:
                log.warning(
                    "%s sent StopTransaction for %s transaction %s; kept as unmatched",
                    self.cp_id,
                    change.unmatched.kind,
                    msg.transaction_id,
                )
            elif msg.transaction_data and not change.retry:
                await self._save_meter_values(None, msg.transaction_id, msg.transaction_data)
            result = call_result.StopTransaction(info)
            answer = self._answers.record("StopTransaction", result)
            logged = await csms.bookkeeper.commit(change, answer)
        return self._answers.reply(result, answer, logged)

    async def on_meter_values(self, msg: call.MeterValues) -> call_result.MeterValues:
        csms = self.parts
        connector = csms.registry.meter_values(self.cp_id, msg)
        async with csms.bookkeeper.lock(self.cp_id):
            tx = await self._own_transaction(msg.transaction_id)
            if tx is None:
                await self._save_meter_values(msg.connector_id, None, msg.meter_value)
                return call_result.MeterValues()
            values = await self._fresh(tx.transaction_id, msg.meter_value)
            change = None
            if values:
                energy = energy_register_wh(values)
                sampled = max(
                    (t for t in (parse_time(mv.timestamp) for mv in values) if t is not None),
                    default=csms.clock(),
                )  # the charger's clock, like the session's start: comparable
                change = csms.transactions.meter(
                    self.cp_id, tx.transaction_id, energy, sampled, received_at=csms.clock()
                )
                updated = change.changed[0] if change.changed else None
                await csms.store.save_meter_values(
                    self.cp_id,
                    msg.connector_id,
                    tx.transaction_id,
                    [to_json_payload(mv) for mv in values],
                    updated,
                )
                csms.meter_values_stored(self.cp_id, tx.transaction_id)
            csms.ledger.metered(
                self.cp_id,
                connector.connector_id,
                tx.transaction_id,
                change,
                [mv.timestamp for mv in values],
            )
        return call_result.MeterValues()

    async def _own_transaction(self, transaction_id: int | None) -> Transaction | None:
        """This charger's transaction ``transaction_id``, from the book or, for one that
        finished long ago (or before a restart), from the store."""
        if transaction_id is None:
            return None
        tx = self.parts.transactions.get(transaction_id)
        if tx is None:
            tx = await self.parts.store.transaction(transaction_id)
            if tx is not None:
                self.parts.transactions.load([tx])
        return tx if tx is not None and tx.cp_id == self.cp_id else None

    async def _fresh(
        self, transaction_id: int, values: list[datatypes.MeterValue]
    ) -> list[datatypes.MeterValue]:
        """The meter values not stored before (a retry after a lost answer resends them,
        also to a restarted CSMS: the first time, the recent ones are read back)."""
        seen = self.parts.ledger.meter_seen.get(transaction_id)
        if seen is None:
            stored = await self.parts.store.meter_values(transaction_id, last=METER_DEDUPE_WINDOW)
            seen = self.parts.ledger.meter_seen.read_back(transaction_id, stored)
        return [mv for mv in values if mv.timestamp not in seen]

    def _mark_seen(self, transaction_id: int, values: list[datatypes.MeterValue]) -> None:
        """Remember values once they are stored (a failed write is retried in full)."""
        self.parts.ledger.meter_seen.mark(transaction_id, [mv.timestamp for mv in values])

    async def _save_meter_values(
        self,
        connector_id: int | None,
        transaction_id: int | None,
        values: list[datatypes.MeterValue],
    ) -> None:
        tx = None if transaction_id is None else self.parts.transactions.get(transaction_id)
        if tx is not None:
            connector_id = tx.connector_id
            values = await self._fresh(tx.transaction_id, values)
            if not values:
                return
        data = [to_json_payload(mv) for mv in values]
        await self.parts.store.save_meter_values(
            self.cp_id, connector_id or 0, transaction_id, data
        )
        self.parts.meter_values_stored(self.cp_id, transaction_id)
        if tx is not None:
            self._mark_seen(tx.transaction_id, values)

    async def on_data_transfer(self, msg: call.DataTransfer) -> call_result.DataTransfer:
        handler = self.parts.data_transfer(msg.vendor_id)
        if handler is None:
            return call_result.DataTransfer(enums.DataTransferStatus.unknown_vendor_id)
        return await handler(self.cp_id, msg)

    async def on_diagnostics_status_notification(
        self, msg: call.DiagnosticsStatusNotification
    ) -> call_result.DiagnosticsStatusNotification:
        log.info("%s diagnostics: %s", self.cp_id, msg.status)
        await self.parts.firmware_reported(self.cp_id, "diagnostics", str(msg.status))
        return call_result.DiagnosticsStatusNotification()

    async def on_firmware_status_notification(
        self, msg: call.FirmwareStatusNotification
    ) -> call_result.FirmwareStatusNotification:
        log.info("%s firmware: %s", self.cp_id, msg.status)
        await self.parts.firmware_reported(self.cp_id, "firmware", str(msg.status))
        return call_result.FirmwareStatusNotification()

    # -- the security extension (see _securitycenter) -------------------------------------

    async def on_security_event_notification(
        self, msg: call.SecurityEventNotification
    ) -> call_result.SecurityEventNotification:
        return await self.parts.security.on_security_event(self.cp_id, msg)

    async def on_sign_certificate(self, msg: call.SignCertificate) -> Reply:
        return await self.parts.security.on_sign_certificate(self.cp_id, msg)

    async def on_signed_firmware_status_notification(
        self, msg: call.SignedFirmwareStatusNotification
    ) -> call_result.SignedFirmwareStatusNotification:
        await self.parts.security.on_status(self.cp_id, "firmware", str(msg.status), msg.request_id)
        return call_result.SignedFirmwareStatusNotification()

    async def on_log_status_notification(
        self, msg: call.LogStatusNotification
    ) -> call_result.LogStatusNotification:
        await self.parts.security.on_status(self.cp_id, "log", str(msg.status), msg.request_id)
        return call_result.LogStatusNotification()
