"""The central system: the façade over its components — live connections, admission
(:mod:`._admission`), the message log (:mod:`._messagelog`), the books (registry, id
tags, transactions), the charger-initiated handlers (:mod:`._handlers`) and the
operator section (:mod:`._operator`) — and the commands an API sends to chargers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import ssl
from collections.abc import Callable
from typing import Any

import trio
from ocpp.v16 import call as call16
from ocpp.v16 import call_result, enums

from libv4e._errors import (
    ChargerConnectedError,
    UnknownChargerError,
    UnsupportedCommandError,
)
from libv4e._errors import ChargerNotConnectedError as ChargerNotConnectedError
from libv4e.csms._admission import Gate, Passwords, Router
from libv4e.csms._auth import AuthorizationList, IdTag
from libv4e.csms._bookkeeper import Bookkeeper
from libv4e.csms._ca import CertificateAuthority
from libv4e.csms._commands201 import heartbeat_interval_set, translate, with_mutability
from libv4e.csms._config import KEEP_FINISHED, utcnow
from libv4e.csms._config import CsmsConfig as CsmsConfig
from libv4e.csms._devicemodels import DeviceModels
from libv4e.csms._handlers import (
    BootGate,
    ChargerHandlers,
    DataTransferHandler,
    HandlerParts,
)
from libv4e.csms._handlers201 import ChargerHandlers201
from libv4e.csms._ledger import Ledger
from libv4e.csms._messagelog import RECENT_MESSAGES, MessageLog
from libv4e.csms._operator import Operator, Outcome, outcome_of
from libv4e.csms._peers import Peers
from libv4e.csms._registry import ChargePointState, Registry, Transaction
from libv4e.csms._security import redact_payload
from libv4e.csms._securitycenter import SecurityCenter
from libv4e.csms._store import Store, StoreDataError, StoreError
from libv4e.csms._throttle import address_of
from libv4e.csms._txbook import TransactionBook
from libv4e.protocol._session import peer_text
from libv4e.protocol._version import OcppVersion
from libv4e.transport._connection import Direction, MessageRecord, OcppConnection
from libv4e.transport._handlers import BoundHandlers
from libv4e.transport._hosts import is_loopback
from libv4e.transport._websocket import Admission, ConnectionRequest, Refusal, serve_ocpp

log = logging.getLogger("libv4e.csms")

RECONCILE_EVERY = 1.0
"""Seconds between looks for doubtful sessions to close (see CsmsConfig.reconcile_grace)."""

__all__ = ["CentralSystem", "ChargerNotConnectedError", "CsmsConfig", "Router"]


class CentralSystem:
    """An OCPP central system over a :class:`Store`, serving 1.6 and 2.0.1 chargers on
    one port (see ``CsmsConfig.ocpp_versions``; docs/ocpp201.md says what 2.0.1 covers).

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
        self.transactions = TransactionBook(
            keep_finished=KEEP_FINISHED, max_power_w=self.config.max_connector_power_w
        )
        self.extra_admit = admit
        self.router: Router | None = None
        """Set by a cluster node: commands for chargers held elsewhere go through it."""
        # the components read config, clock and router through the façade: all replaceable
        self.passwords = Passwords(
            store,
            require=lambda: self.config.require_password,
            throttle=self.config.auth_throttle,
        )
        self.gate = Gate(
            self.passwords,
            config=lambda: self.config,
            connection=self.connection,
            router=lambda: self.router,
            load=lambda address: self.peers.load(address, self._registered),
        )
        self.peers = Peers()
        """Connections per address and call budgets kept across reconnects."""
        self.messages = MessageLog(store, lambda: self.clock())
        self.operator = Operator(
            store,
            registry=self.registry,
            transactions=self.transactions,
            auth=self.auth,
            upsert_tag=self.upsert_tag,
            remove_tag=self.remove_tag,
            clock=lambda: self.clock(),
            config=lambda: self.config,
            send=self.send,
            reachable=self.reachable,
            lock=lambda cp_id: self.bookkeeper.lock(cp_id),
        )
        self.ledger = Ledger(
            self.transactions,
            reservations=self.operator.reservations,
            profiles=self.operator.profiles,
            registry=self.registry,
        )
        """Everything a transaction touches (see _ledger): its events are planned there
        as one change each."""
        self.bookkeeper = Bookkeeper(
            self.ledger,
            store,
            self.messages,
            clock=lambda: self.clock(),
            config=lambda: self.config,
            connected=lambda cp_id: self.connection(cp_id) is not None,
            charger_changed=self.charger_changed,
        )
        """Books transaction events (locks, ids, the one write per change; see
        _bookkeeper)."""
        self.reservations = self.operator.reservations
        self.profiles = self.operator.profiles
        self.local_lists = self.operator.local_lists
        self.firmware = self.operator.firmware
        self.ca: CertificateAuthority | None = None
        """Signs charger certificates (SignCertificate) and is what profile 3 trusts."""
        self.security = SecurityCenter(
            store,
            send=self.send,
            clock=lambda: self.clock(),
            passwords=self.passwords,
            ca=lambda: self.ca,
            certificate_days=lambda: self.config.charger_certificate_days,
            key_grace=lambda: self.config.authorization_key_grace,
        )
        self.gate.profile = self.security.profile
        self.device_models = DeviceModels(
            store,
            self.registry,
            trusted=lambda cp_id: self.router is None or self.connection(cp_id) is not None,
        )
        """OCPP 2.0.1 device models: stored, held in memory for the chargers reporting
        here (see _devicemodels)."""
        self._data_transfer: dict[str, DataTransferHandler] = {}
        self._handler_parts = HandlerParts(
            registry=self.registry,
            transactions=self.transactions,
            ledger=self.ledger,
            bookkeeper=self.bookkeeper,
            auth=self.auth,
            store=store,
            security=self.security,
            device_models=self.device_models,
            config=lambda: self.config,
            clock=lambda: self.clock(),
            charger_changed=self.charger_changed,
            meter_values_stored=self.meter_values_stored,
            firmware_reported=self.operator.firmware_reported,
            data_transfer=self._data_transfer.get,
            reservation_reported=self.operator.reservation_reported,
        )
        """What the handlers of every connection are handed (see _handlers)."""
        self._connections: dict[str, OcppConnection] = {}
        self._dirty: set[str] = set()
        self._stored_ids: set[str] = set()  # chargers with a record in the store
        self._meter_transactions: set[int] = set()  # meter values stored since the prune
        self._meter_untied: set[str] = set()  # chargers with untied values since the prune
        self._shutting_down = False

    # -- lifecycle -------------------------------------------------------------------------

    async def load(self) -> None:
        """Read chargers, transactions and the authorization list from the store."""
        for state in await self.store.load_chargers():
            self.registry.add(state)
        self.transactions.load(await self.store.load_transactions(finished=KEEP_FINISHED))
        for state in self.registry:
            self._stored_ids.add(state.cp_id)
        tags, version = await self.store.load_tags()
        self.auth.load(tags, version)
        await self.passwords.load()
        await self.operator.load()
        await self.security.load()

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
        if not is_loopback(host) and not self.config.require_password:
            log.warning(
                "!!! OCPP on %s:%s is reachable beyond this machine and chargers without a "
                "password may connect under any id (and take over an id whose charger is "
                "silent). Set passwords (--require-password, PUT /chargers/{id}/password) "
                "or bind to localhost. !!!",
                host,
                port,
            )

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
                    flow=self.config.flow,
                    transport=self.config.transport,
                    fd=fd,
                    clock=lambda: self.clock(),  # message times on the CSMS's clock
                    subprotocols=self.config.ocpp_versions,
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
                    self._shutting_down = True  # no new chargers while closing the others
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
        """Ids of the chargers with an open websocket to this process."""
        return sorted(cp for cp, c in self._connections.items() if not c.closed)

    @property
    def all_connected_ids(self) -> list[str]:
        """Ids of the chargers with an open websocket here or, in a cluster, to any node."""
        if self.router is None:
            return self.connected_ids
        return sorted(set(self.connected_ids).union(self.router.remote_ids()))

    def reachable(self, cp_id: str) -> bool:
        """Whether ``cp_id`` has an open websocket here or (in a cluster) on another node."""
        router = self.router
        return self.connection(cp_id) is not None or (
            router is not None and router.holder(cp_id) is not None
        )

    async def _admit(self, request: ConnectionRequest) -> Refusal | None:
        if self._shutting_down:  # a charger reconnecting at once would lose its answers
            return Refusal(503, "central system shutting down")
        refusal = await self.gate.admit(request)
        if refusal is not None:
            return refusal
        if self.extra_admit is not None:
            return await self.extra_admit(request)
        return None

    def _registered(self, cp_id: str) -> bool:
        """Whether ``cp_id`` has a lasting record: stored before, booted Accepted, or a
        session in the books (in a cluster, a node that took the charger over from one
        killed before it saved the charger's state still has its open transaction)."""
        if cp_id in self._stored_ids:
            return True
        state = self.registry.get(cp_id)
        if state is not None and state.boot_status == enums.RegistrationStatus.accepted:
            return True
        if self.transactions.has_active(cp_id):
            self._stored_ids.add(cp_id)
            return True
        return False

    async def delete_charger(self, cp_id: str) -> None:
        """Forget a charger that is not connected (UnknownChargerError, or
        ChargerConnectedError while it is); its transactions, message log and password
        stay."""
        if self.connection(cp_id) is not None:
            raise ChargerConnectedError(cp_id, "it can be deleted")
        if self.registry.remove(cp_id) is None:
            raise UnknownChargerError(cp_id)
        self._dirty.discard(cp_id)
        self._stored_ids.discard(cp_id)
        await self.store.delete_charger(cp_id)

    async def _boot_deadline(self, conn: OcppConnection, deadline: float) -> None:
        """Close ``conn`` if its charger has no accepted boot after ``deadline`` s."""
        await trio.sleep(deadline)
        if not self._registered(conn.cp_id) and not conn.closed:
            log.warning(
                "%s sent no accepted BootNotification in %gs; closing",
                peer_text(conn.cp_id),
                deadline,
            )
            await conn.aclose(1008, "no accepted BootNotification")

    async def _on_connect(self, conn: OcppConnection) -> None:
        address = address_of(conn.remote) if conn.remote else ""
        conn.buckets = self.peers.budgets(conn.cp_id, address, self.config, trio.current_time())
        self.peers.open(address, conn.cp_id)
        try:
            async with trio.open_nursery() as nursery:
                if self.config.boot_deadline is not None:
                    nursery.start_soon(self._boot_deadline, conn, self.config.boot_deadline)
                await self._serve_charger(conn)
                nursery.cancel_scope.cancel()
        finally:
            self.peers.closed(address, conn.cp_id)

    async def _serve_charger(self, conn: OcppConnection) -> None:
        cp_id = conn.cp_id
        old = self._connections.get(cp_id)
        self._connections[cp_id] = conn
        if old is not None and not old.closed:
            log.warning("%s reconnected; closing its previous connection", cp_id)
            await old.aclose(1000, "replaced by a newer connection")
        if self.router is not None:  # a cluster: record it here, take over its state
            await self.router.claim(cp_id)
        self.registry.connected(cp_id, self.clock(), ocpp_version=conn.version.label)
        self.device_models.connected(cp_id)
        self.ledger.apply(self.transactions.reconnected(cp_id, self.clock()))
        log.info("%s connected", cp_id)
        self.charger_changed(cp_id)
        handlers: ChargerHandlers | ChargerHandlers201
        if conn.version is OcppVersion.V201:
            handlers = ChargerHandlers201(self._handler_parts, cp_id, conn)
        else:
            handlers = ChargerHandlers(self._handler_parts, cp_id, conn)
        try:
            await conn.serve(
                BootGate(
                    BoundHandlers(handlers),
                    lambda: self._registered(cp_id),
                    max_connector=self.config.max_connectors,
                ),
                ping_interval=self.config.ping_interval,
            )
        finally:
            if self._connections.get(cp_id) is conn:
                del self._connections[cp_id]
                if self.router is not None:
                    self.router.released(cp_id)
                if self._registered(cp_id):
                    self.registry.disconnected(cp_id, self.clock())
                    self.charger_changed(cp_id)
                else:  # never booted (or refused): no lasting record of a passing id
                    self.registry.remove(cp_id)
                    self._dirty.discard(cp_id)
            log.info("%s disconnected", cp_id)

    def charger_changed(self, cp_id: str) -> None:
        """Note that a charger's state changed; it is written with the next log flush
        (one transaction for all of them, off the Trio thread)."""
        self._dirty.add(cp_id)

    def has_unsaved(self, cp_id: str) -> bool:
        """Whether ``cp_id``'s state changed here and is not written yet."""
        return cp_id in self._dirty

    # -- commands ----------------------------------------------------------------------------

    async def send(self, cp_id: str, payload: Any, *, timeout: float | None = None) -> Any:
        """Send a CSMS-initiated call to ``cp_id`` and return its typed answer.

        A 1.6 command (``ocpp.v16.call``) for a 2.0.1 charger goes as the 2.0.1 call
        that does the same, and its answer comes back as the 1.6 answer
        (``csms/_commands201``): callers, the operator books and the REST API stay
        version-blind. A 2.0.1 call goes to a 2.0.1 charger as it is.

        Raises :class:`ChargerNotConnectedError`, :class:`UnsupportedCommandError` (no
        such command for the charger's version), or what :meth:`OcppConnection.call`
        raises (RemoteCallError, CallTimeoutError, ConnectionLostError).
        """
        result = await self._send(cp_id, payload, timeout)
        interval = heartbeat_interval_set(payload, result)
        if interval is not None and self.registry.heartbeat_every(cp_id, interval):
            self.charger_changed(cp_id)  # judged online by the interval it now keeps
        return result

    async def _send(self, cp_id: str, payload: Any, timeout: float | None) -> Any:
        conn = self.connection(cp_id)
        if conn is None:
            if self.router is not None:  # held by another node of the cluster?
                return await self.router.send(
                    cp_id, payload, timeout=timeout or self.config.call_timeout
                )
            raise ChargerNotConnectedError(cp_id, cp_id in self.registry)
        timeout = timeout or self.config.call_timeout
        if conn.version is OcppVersion.V201:
            translated = translate(
                payload,
                charger_transaction_id=lambda tx_id: self._charger_transaction_id(cp_id, tx_id),
                next_request_id=self.security.book.next_request_id,  # one series of ids
                plugged=lambda evse_id: self.registry.plugged(cp_id, evse_id),
            )
            if translated.call is None:  # answered here (e.g. not this charger's session)
                return translated.read(None)
            answer = await conn.call(translated.call, timeout=timeout)
            await self.device_models.answered(cp_id, translated.call, answer)
            result = translated.read(answer)
            if isinstance(payload, call16.GetConfiguration):  # readonly: as reported
                model = await self.device_models.read(cp_id)

                def mutability(component: str, variable: str) -> str | None:
                    known = model.reported(component, variable)
                    return None if known is None else known.mutability

                result = with_mutability(result, mutability)
            return result
        if type(payload).__module__.startswith("ocpp.v201"):
            raise UnsupportedCommandError(type(payload).__name__, conn.version.label)
        return await conn.call(payload, timeout=timeout)

    def _charger_transaction_id(self, cp_id: str, transaction_id: int) -> str | None:
        """A 2.0.1 charger's own id of the session the CSMS numbers ``transaction_id``."""
        tx = self.transactions.get(transaction_id)
        return None if tx is None or tx.cp_id != cp_id else tx.charger_transaction_id

    async def upsert_tag(self, tag: IdTag) -> int:
        """Add or update an id tag in the CSMS's list (persisted); returns the version."""
        version = self.auth.upsert(tag)
        await self.store.save_tag(tag, version)
        return version

    async def remove_tag(self, id_tag: str) -> int:
        """Remove an id tag (UnknownTagError if absent); returns the new list version."""
        version = self.auth.remove(id_tag)
        await self.store.delete_tag(id_tag, version)
        return version

    async def push_tags(
        self, cp_id: str, tags: list[IdTag], *, timeout: float | None = None
    ) -> call_result.SendLocalList:
        """Send ``tags`` to a charger's local list (Differential, the CSMS's version); the
        update and its answer are recorded in :attr:`local_lists`."""
        result, _, _ = await self.operator.send_local_list(
            cp_id,
            "Differential",
            tags,
            list_version=self.auth.version,
            update_csms_list=False,
            timeout=timeout,
        )
        return result

    # -- message log and events --------------------------------------------------------------

    async def recent_messages(
        self, cp_id: str, limit: int = RECENT_MESSAGES
    ) -> list[MessageRecord]:
        """The last ``limit`` messages exchanged with ``cp_id``, oldest first (from the
        message log; nothing is kept per charger in memory)."""
        await self.flush_log()
        return await self.messages.recent(cp_id, limit)

    def _observe(self, record: MessageRecord) -> None:
        hidden = redact_payload(record.action, record.payload)
        if hidden is not None:  # AuthorizationKey is write-only: never kept nor broadcast
            record = dataclasses.replace(record, payload=hidden)
        if record.direction == Direction.IN:
            self.registry.seen(record.cp_id, record.at)
        # nothing is stored for an id before an accepted boot (its BootNotification is)
        keep = record.action == "BootNotification" or self._registered(record.cp_id)
        self.messages.observe(record, store=keep)

    async def flush_log(self) -> None:
        """Write the buffered message log and changed charger states to the store now."""
        dirty, self._dirty = self._dirty, set()
        states = [
            s
            for s in map(self.registry.get, sorted(dirty))
            if s is not None and self._registered(s.cp_id)
        ]
        if states:
            try:
                await self.store.save_chargers(states)
            except StoreError:  # one record must cost only itself: each on its own
                await self._save_each(states)
            else:
                self._stored_ids.update(s.cp_id for s in states)
        await self.messages.flush()

    async def _save_each(self, states: list[ChargePointState]) -> None:
        """Write ``states`` one by one after their batch failed: a state that cannot be
        stored (StoreDataError) is logged and kept in memory only; one the store could
        not take now is written again with the next flush."""
        failed = 0
        for state in states:
            try:
                await self.store.save_chargers([state])
            except StoreDataError as exc:  # changes at every flush: logged once a minute
                self.messages.quiet.error(
                    "%s: its state cannot be stored, kept in memory only: %s", state.cp_id, exc
                )
            except StoreError:
                failed += 1
                self._dirty.add(state.cp_id)  # again with the next flush
            else:
                self._stored_ids.add(state.cp_id)
        if failed:
            self.messages.quiet.error(
                "could not save %d chargers; trying again with the next flush", failed
            )

    async def prune_log(self) -> int:
        """Apply the message-log retention (``log_max_rows``, ``log_max_age``) now;
        returns how many messages were deleted."""
        return await self.messages.prune(
            self.config.log_max_rows,
            self.config.log_max_age,
            self.config.log_max_rows_per_charger,
        )

    def meter_values_stored(self, cp_id: str, transaction_id: int | None) -> None:
        """Note stored meter values, for the next retention pass (:meth:`prune_meter_values`)."""
        if transaction_id is None:
            self._meter_untied.add(cp_id)
        else:
            self._meter_transactions.add(transaction_id)

    async def prune_meter_values(self) -> int:
        """Apply the meter-value retention (``meter_max_per_transaction``,
        ``meter_max_untied``, ``meter_max_age``) now; returns how many rows were deleted."""
        config = self.config
        transactions, self._meter_transactions = sorted(self._meter_transactions), set()
        chargers, self._meter_untied = sorted(self._meter_untied), set()
        age = config.meter_max_age
        try:
            deleted = await self.store.prune_meter_values(
                transactions=transactions,
                per_transaction=config.meter_max_per_transaction,
                chargers=chargers,
                untied_per_charger=config.meter_max_untied,
                older_than=None if age is None else self.clock() - dt.timedelta(seconds=age),
            )
        except BaseException:
            self._meter_transactions.update(transactions)  # again next time
            self._meter_untied.update(chargers)
            raise
        if deleted:
            log.info("meter-value retention deleted %d old rows", deleted)
        return deleted

    async def _log_writer(self) -> None:
        next_reconcile = next_prune = trio.current_time()
        while True:
            await self.messages.wait(self.config.log_flush_interval)
            try:
                await self.flush_log()
                if trio.current_time() >= next_prune:
                    next_prune = trio.current_time() + self.config.log_prune_interval
                    await self.prune_log()
                    await self.prune_meter_values()
            except Exception:  # whatever a batch holds, the writer (and the CSMS) carries on
                self.messages.quiet.error(
                    "message log flush failed; its batch was dropped", exc_info=True
                )
            if trio.current_time() >= next_reconcile:
                next_reconcile = trio.current_time() + RECONCILE_EVERY
                await self.bookkeeper.reconcile()

    # -- transactions ----------------------------------------------------------------------

    async def get_transaction(self, transaction_id: int) -> Transaction | None:
        """A transaction from memory, or else from the store."""
        tx = self.transactions.get(transaction_id)
        return tx if tx is not None else await self.store.transaction(transaction_id)

    def active_transactions(self) -> dict[str, list[Transaction]]:
        """Transactions not yet stopped, by charge point id (oldest first)."""
        by_charger: dict[str, list[Transaction]] = {}
        for tx in self.transactions.active():
            by_charger.setdefault(tx.cp_id, []).append(tx)
        return by_charger

    # -- operator books: local lists, reservations, charging profiles -----------------------

    async def operate(self, cp_id: str, payload: Any, *, timeout: float | None = None) -> Outcome:
        """Send a command and record what it changes: in the operator books
        (:meth:`Operator.operate`), or for a security command in :attr:`security`. The
        :class:`Outcome` holds the answer (or the error) and the records touched."""
        state = self.registry.get(cp_id)
        if state is not None and state.ocpp_version == "1.6":  # before any book is touched
            if type(payload).__module__.startswith("ocpp.v201"):
                return await outcome_of(lambda _: self._refuse(type(payload).__name__, "1.6"))
        if self.security.handles(payload):
            return await self.security.operate(cp_id, payload, timeout=timeout)
        return await self.operator.operate(cp_id, payload, timeout=timeout)

    @staticmethod
    async def _refuse(action: str, version: str) -> Any:
        raise UnsupportedCommandError(action, version)
