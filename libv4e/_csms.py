"""The central system: OCPP handlers for every charger-initiated 1.6 message, the live
connections, and the commands an API sends to chargers."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

import trio
from ocpp.v16 import call, call_result, datatypes, enums

from ._auth import AuthorizationList, IdTag, UnknownTagPolicy
from ._connection import DEFAULT_CALL_TIMEOUT, MessageRecord, OcppConnection, handlers_from
from ._convert import to_json_payload
from ._errors import ErrorCode, OcppError
from ._passwords import check_password_rules, hash_password, verify_password
from ._registry import Registry, Transaction, energy_register_wh, iso, parse_time
from ._store import Store, StoreError
from ._transport import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Admission,
    ConnectionRequest,
    Refusal,
    serve_ocpp,
    valid_cp_id,
)
from ._validation import STRICT, ValidationPolicy

log = logging.getLogger("libv4e.csms")

RECENT_MESSAGES = 200
KEEP_FINISHED = 500
"""Finished transactions kept in memory (for late StopTransaction retries); all are stored."""
METER_DEDUPE_WINDOW = 64
DataTransferHandler = Callable[[str, call.DataTransfer], Awaitable[call_result.DataTransfer]]


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


@dataclasses.dataclass(frozen=True)
class CsmsConfig:
    """Behaviour of a :class:`CentralSystem` (every field has a safe default)."""

    heartbeat_interval: int = 30
    """Seconds, sent in BootNotification.conf."""
    allowed_ids: frozenset[str] | None = None
    """If set, only these charge point ids may connect (others: HTTP 404 at the
    handshake, or BootNotification Rejected if they got through another way)."""
    unknown_tags: UnknownTagPolicy = UnknownTagPolicy.ACCEPT
    offline_tolerance: float = 2.0
    """A charger silent for longer than heartbeat_interval × this is shown offline."""
    call_timeout: float = DEFAULT_CALL_TIMEOUT
    """Default seconds to wait for a charger's answer to a command."""
    lenient_actions: frozenset[str] = frozenset()
    """Inbound actions whose payload quirks are repaired rather than refused, for all."""
    lenient_chargers: Mapping[str, frozenset[str]] = dataclasses.field(default_factory=dict)
    """Per charge point id: extra lenient actions (``"*"`` for all)."""
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    ping_interval: float | None = 60.0
    """Websocket ping period to detect half-open sockets (None: off)."""
    log_flush_interval: float = 0.2
    """Seconds between batched writes of the message log."""
    require_password: bool = False
    """Security Profile 1/2: every charger must present its HTTP Basic password. When
    False, only chargers that have a password set must present it."""

    def policy_for(self, cp_id: str) -> ValidationPolicy:
        """The validation policy of one charger."""
        actions = self.lenient_actions | self.lenient_chargers.get(cp_id, frozenset())
        return ValidationPolicy(lenient_actions=actions) if actions else STRICT


class ChargerNotConnectedError(Exception):
    """A command was sent to a charger that has no open connection."""

    def __init__(self, cp_id: str, known: bool) -> None:
        state = "is not connected" if known else "is unknown (it never connected)"
        super().__init__(f"charge point {cp_id} {state}")
        self.cp_id, self.known = cp_id, known


class Router(Protocol):
    """Reaches chargers connected to other processes sharing the store (see ``_cluster``)."""

    async def claim(self, cp_id: str) -> None: ...
    def released(self, cp_id: str) -> None: ...
    def holder(self, cp_id: str) -> str | None: ...
    def remote_ids(self) -> Iterable[str]: ...
    async def send(self, cp_id: str, payload: Any, *, timeout: float) -> Any: ...


class CentralSystem:
    """An OCPP 1.6 central system over a :class:`Store`.

    Call :meth:`load` once, then start :meth:`serve` in your nursery. Commands go to
    chargers with :meth:`send`. State lives in :attr:`registry`, :attr:`auth` and
    :attr:`transactions`; everything is written through to the store.
    """

    def __init__(
        self,
        store: Store,
        config: CsmsConfig | None = None,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        admit: Admission | None = None,
    ) -> None:
        self.store = store
        self.config = config or CsmsConfig()
        self.clock = clock
        self.registry = Registry(offline_tolerance=self.config.offline_tolerance)
        self.auth = AuthorizationList(unknown=self.config.unknown_tags)
        self.transactions: dict[int, Transaction] = {}
        self.extra_admit = admit
        self._connections: dict[str, OcppConnection] = {}
        self._next_tx_id = 1
        self._log_buffer: list[MessageRecord] = []
        self._log_wakeup = trio.Event()
        self._listeners: set[trio.MemorySendChannel[MessageRecord]] = set()
        self._data_transfer: dict[str, DataTransferHandler] = {}
        self._meter_seen: dict[int, dict[str, None]] = {}
        self._observers: list[Callable[[MessageRecord], None]] = []
        self._secrets: dict[str, str] = {}
        self._dirty: set[str] = set()
        self._verified: dict[str, str] = {}  # cp_id -> sha256 of the last good password
        self.router: Router | None = None
        """Set by a cluster node: commands for chargers held elsewhere go through it."""

    # -- lifecycle -------------------------------------------------------------------------

    async def load(self) -> None:
        """Read chargers, transactions and the authorization list from the store."""
        for state in await self.store.load_chargers():
            self.registry.add(state)
        for tx in await self.store.load_transactions(finished=KEEP_FINISHED):
            self.transactions[tx.transaction_id] = tx
        self._next_tx_id = await self.store.last_transaction_id() + 1
        tags, version = await self.store.load_tags()
        self.auth.load(tags, version)
        self._secrets = await self.store.secrets()

    async def serve(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        fd: int | None = None,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve OCPP on ``host:port`` (or the listening socket ``fd``) and write the
        message log until cancelled.

        Reports the bound port. On cancellation every charger websocket is closed with
        1001 (going away) and the message log is flushed.
        """
        server_scope = trio.CancelScope(shield=True)

        async def run_server(*, task_status: trio.TaskStatus[int]) -> None:
            with server_scope:
                await serve_ocpp(
                    self._on_connect,
                    host,
                    port,
                    ssl_context=ssl_context,
                    admit=self._admit,
                    policy=self.config.policy_for,
                    observer=self._observe,
                    max_message_size=self.config.max_message_size,
                    fd=fd,
                    task_status=task_status,
                )

        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._log_writer)
            bound = await nursery.start(run_server)
            task_status.started(bound)
            try:
                await trio.sleep_forever()
            finally:
                # Cancelled: the server (shielded) still runs, so close handshakes can
                # complete; then stop it and write what is left of the message log.
                with trio.CancelScope(shield=True):
                    await self.close_all(1001, "central system shutting down")
                    await self.flush_log()
                    server_scope.cancel()

    async def close_all(self, code: int, reason: str, *, timeout: float = 3.0) -> None:
        """Close every charger websocket (concurrently, within ``timeout`` seconds)."""
        with trio.move_on_after(timeout):
            async with trio.open_nursery() as nursery:
                for conn in list(self._connections.values()):
                    nursery.start_soon(conn.aclose, code, reason)

    def register_data_transfer(self, vendor_id: str, handler: DataTransferHandler) -> None:
        """Answer charger DataTransfer calls of ``vendor_id`` with ``handler(cp_id, req)``."""
        self._data_transfer[vendor_id] = handler

    # -- connections -------------------------------------------------------------------------

    def connection(self, cp_id: str) -> OcppConnection | None:
        """The open connection of ``cp_id``, if any."""
        conn = self._connections.get(cp_id)
        return None if conn is None or conn.closed else conn

    @property
    def connected_ids(self) -> list[str]:
        """Ids of the chargers with an open websocket (to any node of a cluster)."""
        local = {cp for cp, c in self._connections.items() if not c.closed}
        remote = self.router.remote_ids() if self.router is not None else ()
        return sorted(local.union(remote))

    def reachable(self, cp_id: str) -> bool:
        """Whether ``cp_id`` has an open websocket here or (in a cluster) on another node."""
        router = self.router
        return self.connection(cp_id) is not None or (
            router is not None and router.holder(cp_id) is not None
        )

    async def set_password(self, cp_id: str, password: str | None) -> None:
        """Set (or with None, remove) a charger's HTTP Basic password; stored hashed.

        Raises ValueError for an invalid charge point id or a password outside the OCPP
        rules (16 to 40 printable characters)."""
        problem = None if password is None else check_password_rules(password)
        if problem or not valid_cp_id(cp_id):
            raise ValueError(problem or f"invalid charge point id {cp_id!r}")
        stored = (
            None if password is None else await trio.to_thread.run_sync(hash_password, password)
        )
        await self.store.set_secret(cp_id, stored)
        if stored is None:
            self._secrets.pop(cp_id, None)
        else:
            self._secrets[cp_id] = stored
        self._verified.pop(cp_id, None)

    def has_password(self, cp_id: str) -> bool:
        """Whether ``cp_id`` must authenticate."""
        return cp_id in self._secrets

    async def _check_password(self, request: ConnectionRequest) -> Refusal | None:
        stored = self._secrets.get(request.cp_id)
        if stored is None and not self.config.require_password:
            return None
        refusal = Refusal(
            401,
            "charger authentication failed",
            (("WWW-Authenticate", 'Basic realm="OCPP", charset="UTF-8"'),),
        )
        credentials = request.basic_auth()
        if stored is None or credentials is None or credentials[0] != request.cp_id:
            return refusal
        fingerprint = hashlib.sha256(f"{stored}:{credentials[1]}".encode()).hexdigest()
        if self._verified.get(request.cp_id) == fingerprint:
            return None
        if not await trio.to_thread.run_sync(verify_password, credentials[1], stored):
            log.warning("%s: wrong password from %s", request.cp_id, request.remote)
            return refusal
        self._verified[request.cp_id] = fingerprint
        return None

    async def _admit(self, request: ConnectionRequest) -> Refusal | None:
        allowed = self.config.allowed_ids
        if allowed is not None and request.cp_id not in allowed:
            return Refusal(404, f"unknown charge point id {request.cp_id}")
        refusal = await self._check_password(request)
        if refusal is not None:
            return refusal
        if self.extra_admit is not None:
            return await self.extra_admit(request)
        return None

    async def _on_connect(self, conn: OcppConnection) -> None:
        cp_id = conn.cp_id
        old = self._connections.get(cp_id)
        self._connections[cp_id] = conn
        if old is not None and not old.closed:
            log.warning("%s reconnected; closing its previous connection", cp_id)
            await old.aclose(1000, "replaced by a newer connection")
        if self.router is not None:  # a cluster: record it here, take over its state
            await self.router.claim(cp_id)
        self.registry.connected(cp_id, self.clock())
        log.info("%s connected", cp_id)
        self._charger_changed(cp_id)
        try:
            await conn.serve(
                handlers_from(_ChargerHandlers(self, cp_id)),
                ping_interval=self.config.ping_interval,
            )
        finally:
            if self._connections.get(cp_id) is conn:
                del self._connections[cp_id]
                if self.router is not None:
                    self.router.released(cp_id)
                self.registry.disconnected(cp_id, self.clock())
                self._charger_changed(cp_id)
            log.info("%s disconnected", cp_id)

    def _charger_changed(self, cp_id: str) -> None:
        """Note that a charger's state changed; it is written with the next log flush
        (one transaction for all of them, off the Trio thread)."""
        self._dirty.add(cp_id)

    # -- commands ----------------------------------------------------------------------------

    async def send(self, cp_id: str, payload: Any, *, timeout: float | None = None) -> Any:
        """Send a CSMS-initiated call to ``cp_id`` and return its typed answer.

        Raises :class:`ChargerNotConnectedError`, or what :meth:`OcppConnection.call`
        raises (RemoteCallError, CallTimeoutError, ConnectionLostError).
        """
        conn = self.connection(cp_id)
        if conn is None:
            if self.router is not None:  # held by another node of the cluster?
                return await self.router.send(
                    cp_id, payload, timeout=timeout or self.config.call_timeout
                )
            raise ChargerNotConnectedError(cp_id, cp_id in self.registry)
        return await conn.call(payload, timeout=timeout or self.config.call_timeout)

    async def upsert_tag(self, tag: IdTag) -> int:
        """Add or update an id tag in the CSMS's list (persisted); returns the version."""
        version = self.auth.upsert(tag)
        await self.store.save_tag(tag, version)
        return version

    async def remove_tag(self, id_tag: str) -> int:
        """Remove an id tag (KeyError if absent); returns the new list version."""
        version = self.auth.remove(id_tag)
        await self.store.delete_tag(id_tag, version)
        return version

    async def push_tags(
        self, cp_id: str, tags: list[IdTag], *, timeout: float | None = None
    ) -> call_result.SendLocalList:
        """Send ``tags`` to a charger's local list (Differential, the CSMS's version)."""
        now = self.clock()
        entries = [datatypes.AuthorizationData(t.id_tag, t.info(now)) for t in tags]
        result: call_result.SendLocalList = await self.send(
            cp_id,
            call.SendLocalList(self.auth.version, enums.UpdateType.differential, entries),
            timeout=timeout,
        )
        return result

    # -- message log and events --------------------------------------------------------------

    def add_observer(self, observer: Callable[[MessageRecord], None]) -> None:
        """Call ``observer(record)`` for every OCPP message, in order, as it passes."""
        self._observers.append(observer)

    async def recent_messages(
        self, cp_id: str, limit: int = RECENT_MESSAGES
    ) -> list[MessageRecord]:
        """The last ``limit`` messages exchanged with ``cp_id``, oldest first (from the
        message log; nothing is kept per charger in memory)."""
        await self.flush_log()
        rows = await self.store.messages(cp_id, limit=limit, offset=0)
        return [
            MessageRecord(
                r["cp_id"],
                r["direction"],
                r["message_type"],
                r["unique_id"],
                r["action"],
                r["payload"],
                parse_time(r["at"]) or self.clock(),
            )
            for r in reversed(rows)
        ]

    def _observe(self, record: MessageRecord) -> None:
        if record.direction == "in":
            self.registry.seen(record.cp_id, record.at)
        for observer in self._observers:
            try:
                observer(record)
            except Exception:
                log.exception("message observer failed")
        self._log_buffer.append(record)
        if len(self._log_buffer) >= 500:
            self._log_wakeup.set()
        for channel in list(self._listeners):
            try:
                channel.send_nowait(record)
            except trio.WouldBlock:
                pass  # a slow listener misses messages rather than slowing chargers down
            except trio.BrokenResourceError:
                self._listeners.discard(channel)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, buffer: int = 256
    ) -> AsyncIterator[trio.MemoryReceiveChannel[MessageRecord]]:
        """Receive every OCPP message as it passes, while the block runs."""
        send, receive = trio.open_memory_channel[MessageRecord](buffer)
        self._listeners.add(send)
        try:
            yield receive
        finally:
            self._listeners.discard(send)
            send.close()

    async def flush_log(self) -> None:
        """Write the buffered message log and changed charger states to the store now."""
        dirty, self._dirty = self._dirty, set()
        states = [s for s in map(self.registry.get, sorted(dirty)) if s is not None]
        if states:
            try:
                await self.store.save_chargers(states)
            except StoreError:
                log.exception("could not save %d chargers", len(states))
                self._dirty |= dirty  # again with the next flush
        batch, self._log_buffer = self._log_buffer, []
        if batch:
            try:
                await self.store.log_messages(batch)
            except StoreError:
                log.exception("could not write %d logged messages", len(batch))
                self._log_buffer[:0] = batch  # keep them for the next attempt

    async def _log_writer(self) -> None:
        while True:
            with trio.move_on_after(self.config.log_flush_interval):
                await self._log_wakeup.wait()
            self._log_wakeup = trio.Event()
            await self.flush_log()

    # -- transactions ----------------------------------------------------------------------

    def _forget_finished(self) -> None:
        finished = [t for t in self.transactions.values() if not t.active]
        for tx in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self.transactions[tx.transaction_id]

    async def get_transaction(self, transaction_id: int) -> Transaction | None:
        """A transaction from memory, or else from the store."""
        tx = self.transactions.get(transaction_id)
        return tx if tx is not None else await self.store.transaction(transaction_id)

    def active_transactions(self) -> dict[str, list[Transaction]]:
        """Transactions not yet stopped, by charge point id (oldest first)."""
        by_charger: dict[str, list[Transaction]] = {}
        for tx in self.transactions.values():
            if tx.active:
                by_charger.setdefault(tx.cp_id, []).append(tx)
        return by_charger


class _ChargerHandlers:
    """The answers to one charger's calls."""

    def __init__(self, csms: CentralSystem, cp_id: str) -> None:
        self.csms, self.cp_id = csms, cp_id

    async def on_boot_notification(
        self, msg: call.BootNotification
    ) -> call_result.BootNotification:
        csms = self.csms
        allowed = csms.config.allowed_ids
        status = enums.RegistrationStatus.accepted
        if allowed is not None and self.cp_id not in allowed:
            status = enums.RegistrationStatus.rejected
        now = csms.clock()
        interval = csms.config.heartbeat_interval
        csms.registry.booted(self.cp_id, msg, str(status), interval, now)
        csms._charger_changed(self.cp_id)
        return call_result.BootNotification(iso(now), interval, status)

    async def on_heartbeat(self, msg: call.Heartbeat) -> call_result.Heartbeat:
        now = self.csms.clock()
        self.csms.registry.heartbeat(self.cp_id, now)
        return call_result.Heartbeat(iso(now))

    async def on_status_notification(
        self, msg: call.StatusNotification
    ) -> call_result.StatusNotification:
        self.csms.registry.status(self.cp_id, msg, self.csms.clock())
        self.csms._charger_changed(self.cp_id)
        return call_result.StatusNotification()

    async def on_authorize(self, msg: call.Authorize) -> call_result.Authorize:
        return call_result.Authorize(self.csms.auth.authorize(msg.id_tag, self.csms.clock()))

    async def on_start_transaction(
        self, msg: call.StartTransaction
    ) -> call_result.StartTransaction:
        csms = self.csms
        info = csms.auth.authorize(msg.id_tag, csms.clock())
        started = parse_time(msg.timestamp) or csms.clock()
        for tx in csms.transactions.values():  # a retry whose answer was lost: same id
            if (tx.cp_id, tx.connector_id, tx.meter_start, tx.started_at) == (
                self.cp_id,
                msg.connector_id,
                msg.meter_start,
                started,
            ):
                return call_result.StartTransaction(tx.transaction_id, info)
        tx = Transaction(
            transaction_id=csms._next_tx_id,
            cp_id=self.cp_id,
            connector_id=msg.connector_id,
            id_tag=msg.id_tag,
            meter_start=msg.meter_start,
            started_at=started,
            reservation_id=msg.reservation_id,
            id_tag_status=str(info.status),
        )
        await _persist(csms.store.save_transaction(tx))
        csms._next_tx_id += 1
        csms.transactions[tx.transaction_id] = tx
        connector = csms.registry.ensure(self.cp_id).connector(msg.connector_id)
        connector.transaction_id = tx.transaction_id
        connector.meter.energy_wh = float(msg.meter_start)
        csms._charger_changed(self.cp_id)
        return call_result.StartTransaction(tx.transaction_id, info)

    async def on_stop_transaction(self, msg: call.StopTransaction) -> call_result.StopTransaction:
        csms = self.csms
        info = csms.auth.authorize(msg.id_tag, csms.clock()) if msg.id_tag else None
        tx = csms.transactions.get(msg.transaction_id)
        if tx is None or tx.cp_id != self.cp_id:
            log.warning("%s stopped unknown transaction %s", self.cp_id, msg.transaction_id)
            return call_result.StopTransaction(info)
        if tx.active:
            if msg.transaction_data:
                await self._record_meter_values(tx.connector_id, tx, msg.transaction_data)
            tx.meter_stop = msg.meter_stop
            tx.stopped_at = parse_time(msg.timestamp) or csms.clock()
            tx.stop_reason = str(msg.reason or enums.Reason.local)
            tx.stop_id_tag = msg.id_tag
            await _persist(csms.store.save_transaction(tx))
            connector = csms.registry.ensure(self.cp_id).connector(tx.connector_id)
            if connector.transaction_id == tx.transaction_id:
                connector.transaction_id = None
                connector.meter.power_w = 0.0
                connector.meter.current_a = 0.0
            connector.meter.energy_wh = float(msg.meter_stop)
            csms._meter_seen.pop(tx.transaction_id, None)
            csms._forget_finished()
            csms._charger_changed(self.cp_id)
        return call_result.StopTransaction(info)

    async def on_meter_values(self, msg: call.MeterValues) -> call_result.MeterValues:
        csms = self.csms
        tx = csms.transactions.get(msg.transaction_id) if msg.transaction_id is not None else None
        if tx is not None and tx.cp_id != self.cp_id:
            tx = None
        connector = csms.registry.meter_values(self.cp_id, msg)
        await self._record_meter_values(msg.connector_id, tx, msg.meter_value)
        if tx is not None and tx.active:
            connector.transaction_id = tx.transaction_id
        return call_result.MeterValues()

    async def _record_meter_values(
        self, connector_id: int, tx: Transaction | None, values: list[datatypes.MeterValue]
    ) -> None:
        csms = self.csms
        if tx is not None:  # retries after a lost answer must not count twice
            seen = csms._meter_seen.setdefault(tx.transaction_id, {})
            values = [mv for mv in values if mv.timestamp not in seen]
            if not values:
                return
            for mv in values:  # remember the last few timestamps: retries resend recent ones
                seen[mv.timestamp] = None
                if len(seen) > METER_DEDUPE_WINDOW:
                    del seen[next(iter(seen))]
            energy = energy_register_wh(values)
            if energy is not None and tx.active:
                tx.last_meter_wh = energy
        data = [to_json_payload(mv) for mv in values]
        await _persist(
            csms.store.save_meter_values(
                self.cp_id, connector_id, tx.transaction_id if tx else None, data
            )
        )

    async def on_data_transfer(self, msg: call.DataTransfer) -> call_result.DataTransfer:
        handler = self.csms._data_transfer.get(msg.vendor_id)
        if handler is None:
            return call_result.DataTransfer(enums.DataTransferStatus.unknown_vendor_id)
        return await handler(self.cp_id, msg)

    async def on_diagnostics_status_notification(
        self, msg: call.DiagnosticsStatusNotification
    ) -> call_result.DiagnosticsStatusNotification:
        log.info("%s diagnostics: %s", self.cp_id, msg.status)
        return call_result.DiagnosticsStatusNotification()

    async def on_firmware_status_notification(
        self, msg: call.FirmwareStatusNotification
    ) -> call_result.FirmwareStatusNotification:
        log.info("%s firmware: %s", self.cp_id, msg.status)
        return call_result.FirmwareStatusNotification()


async def _persist(write: Awaitable[None]) -> None:
    """Run a store write; a failure answers the charger InternalError so it retries."""
    try:
        await write
    except StoreError as exc:
        log.error("%s", exc)
        raise OcppError(
            ErrorCode.INTERNAL_ERROR, "the central system could not store this"
        ) from exc
