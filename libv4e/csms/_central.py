"""The central system: OCPP handlers for every charger-initiated 1.6 message, the live
connections, and the commands an API sends to chargers."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
import math
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import trio
from ocpp.v16 import call, call_result, datatypes, enums

from libv4e._errors import ChargerNotConnectedError as ChargerNotConnectedError
from libv4e._errors import ErrorCode, OcppError
from libv4e.csms._auth import AuthorizationList, IdTag, UnknownTagPolicy
from libv4e.csms._books import InvalidTransition
from libv4e.csms._firmware import FirmwareBook
from libv4e.csms._locallists import ChargerLocalList, LocalListBook, LocalListUpdate
from libv4e.csms._passwords import check_password_rules, hash_password, verify_password
from libv4e.csms._profiles import ChargingProfileRecord, ProfileBook, limit_at
from libv4e.csms._registry import Registry, Transaction, energy_register_wh, iso, parse_time
from libv4e.csms._reservations import Reservation, ReservationBook
from libv4e.csms._store import Store, StoreDataError, StoreError
from libv4e.csms._throttle import FailureThrottle, ThrottlePolicy, address_of
from libv4e.csms._txbook import Change, TransactionBook, UnmatchedStop
from libv4e.protocol._convert import to_json_payload
from libv4e.protocol._time import utcnow as utcnow
from libv4e.protocol._validation import STRICT, ValidationPolicy
from libv4e.transport._connection import DEFAULT_CALL_TIMEOUT, MessageRecord, OcppConnection, Reply
from libv4e.transport._flow import FlowControl
from libv4e.transport._handlers import BoundHandlers
from libv4e.transport._hosts import is_loopback
from libv4e.transport._websocket import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Admission,
    ConnectionRequest,
    Refusal,
    serve_ocpp,
    valid_cp_id,
)

log = logging.getLogger("libv4e.csms")
T = TypeVar("T")

RECENT_MESSAGES = 200
KEEP_FINISHED = 500
"""Finished transactions kept in memory (for late StopTransaction retries); all are stored."""
METER_DEDUPE_WINDOW = 64
RECONCILE_EVERY = 1.0
"""Seconds between looks for doubtful sessions to close (see CsmsConfig.reconcile_grace)."""
MAX_LOG_BACKLOG = 50_000
"""Messages kept in memory while the store refuses writes; beyond, the oldest are dropped."""
DataTransferHandler = Callable[[str, call.DataTransfer], Awaitable[call_result.DataTransfer]]


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
    max_connector_power_w: float = 400_000.0
    """Energy above this power over a session's duration is flagged implausible."""
    reconcile_grace: float = 300.0
    """Seconds a session stays open, unconfirmed, after its charger rebooted (or after
    its StartTransaction answer was lost) before the CSMS closes it itself."""
    transaction_id_block: int = 32
    """Transaction ids reserved in the store at a time (never reused after a crash)."""
    flow: FlowControl = dataclasses.field(default_factory=FlowControl)
    """Per-connection limits on inbound calls: backlog, rate and burst (see _flow)."""
    log_max_rows: int | None = 1_000_000
    """Message-log retention: the newest this many messages are kept (None: no limit)."""
    log_max_age: float | None = 30 * 86400.0
    """Message-log retention: messages older than this many seconds are deleted."""
    log_prune_interval: float = 60.0
    """Seconds between two retention passes over the message log."""
    auth_throttle: ThrottlePolicy = dataclasses.field(default_factory=ThrottlePolicy)
    """Failed-password throttling per charge point id and per address (see _throttle)."""
    duplicate_probe_timeout: float = 5.0
    """A second connection with the id of a connected charger that has no password: the
    first is pinged; if it answers within this many seconds the newcomer is refused
    (HTTP 409), else the first is closed and the newcomer admitted (docs/security.md)."""
    transport: str | None = None
    """Websocket server transport, one of ``TRANSPORTS`` (None: ``DEFAULT_TRANSPORT``,
    the lean wsproto one)."""

    def policy_for(self, cp_id: str) -> ValidationPolicy:
        """The validation policy of one charger."""
        actions = self.lenient_actions | self.lenient_chargers.get(cp_id, frozenset())
        return ValidationPolicy(lenient_actions=actions) if actions else STRICT


class Router(Protocol):
    """Reaches chargers connected to other processes sharing the store (see ``_cluster``)."""

    async def claim(self, cp_id: str) -> None: ...
    def released(self, cp_id: str) -> None: ...
    def holder(self, cp_id: str) -> str | None: ...
    def remote_ids(self) -> Iterable[str]: ...
    async def send(self, cp_id: str, payload: Any, *, timeout: float) -> Any: ...
    async def probe(self, cp_id: str, timeout: float) -> bool: ...


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
        self.book = TransactionBook(
            keep_finished=KEEP_FINISHED, max_power_w=self.config.max_connector_power_w
        )
        self.extra_admit = admit
        self._connections: dict[str, OcppConnection] = {}
        self._tx_locks: dict[str, trio.Lock] = {}
        self._id_lock = trio.Lock()
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
        self.reservations = ReservationBook()  # issue 15: operator books (see the last section)
        self.profiles = ProfileBook()
        self.local_lists = LocalListBook()
        self.firmware = FirmwareBook()
        self._stored_ids: set[str] = set()  # chargers with a record in the store
        self._throttle = FailureThrottle(self.config.auth_throttle)
        self._shutting_down = False

    # -- lifecycle -------------------------------------------------------------------------

    async def load(self) -> None:
        """Read chargers, transactions and the authorization list from the store."""
        for state in await self.store.load_chargers():
            self.registry.add(state)
        self.book.load(await self.store.load_transactions(finished=KEEP_FINISHED))
        for state in self.registry:
            self._stored_ids.add(state.cp_id)
        tags, version = await self.store.load_tags()
        self.auth.load(tags, version)
        self._secrets = await self.store.secrets()
        await self._load_books()

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
        address = address_of(request.remote)
        wait = self._throttle.retry_after(request.cp_id, address, trio.current_time())
        if wait > 0:
            log.warning(
                "%s: too many failed passwords (id or %s); refused for %.0f s",
                request.cp_id,
                request.remote,
                wait,
            )
            return Refusal(
                429, "too many failed authentications", (("Retry-After", str(math.ceil(wait))),)
            )
        credentials = request.basic_auth()
        if credentials is None:  # (a client may first try without; not counted)
            log.warning("%s: no credentials from %s", request.cp_id, request.remote)
            return refusal
        if stored is None or credentials[0] != request.cp_id:
            log.warning("%s: wrong credentials from %s", request.cp_id, request.remote)
            self._throttle.failed(request.cp_id, address, trio.current_time())
            return refusal
        fingerprint = hashlib.sha256(f"{stored}:{credentials[1]}".encode()).hexdigest()
        if self._verified.get(request.cp_id) == fingerprint:
            return None
        if not await trio.to_thread.run_sync(verify_password, credentials[1], stored):
            log.warning("%s: wrong password from %s", request.cp_id, request.remote)
            self._throttle.failed(request.cp_id, address, trio.current_time())
            return refusal
        self._verified[request.cp_id] = fingerprint
        return None

    async def _admit(self, request: ConnectionRequest) -> Refusal | None:
        if self._shutting_down:  # a charger reconnecting at once would lose its answers
            return Refusal(503, "central system shutting down")
        allowed = self.config.allowed_ids
        if allowed is not None and request.cp_id not in allowed:
            return Refusal(404, f"unknown charge point id {request.cp_id}")
        refusal = await self._check_password(request)
        if refusal is not None:
            return refusal
        refusal = await self._check_duplicate(request)
        if refusal is not None:
            return refusal
        if self.extra_admit is not None:
            return await self.extra_admit(request)
        return None

    async def _check_duplicate(self, request: ConnectionRequest) -> Refusal | None:
        """A second connection for a connected id: with a password it proved who it is
        and replaces the first; without, the first stays if it is still alive."""
        old = self.connection(request.cp_id)
        if self.config.require_password or self.has_password(request.cp_id):
            return None
        if old is not None:
            alive = await old.ping(self.config.duplicate_probe_timeout)
        elif self.router is not None:  # connected to another node of the cluster?
            alive = await self.router.probe(request.cp_id, self.config.duplicate_probe_timeout)
        else:
            return None
        if alive:
            log.warning(
                "%s: refused a second connection from %s (the first is alive)",
                request.cp_id,
                request.remote,
            )
            return Refusal(409, f"charge point {request.cp_id} is already connected")
        return None

    def _registered(self, cp_id: str) -> bool:
        """Whether ``cp_id`` has a lasting record: stored before, or booted Accepted."""
        state = self.registry.get(cp_id)
        return cp_id in self._stored_ids or (
            state is not None and state.boot_status == enums.RegistrationStatus.accepted
        )

    async def delete_charger(self, cp_id: str) -> None:
        """Forget a charger that is not connected (KeyError if unknown, ValueError if
        connected); its transactions, message log and password stay."""
        if self.connection(cp_id) is not None:
            raise ValueError(f"charge point {cp_id} is connected")
        if self.registry.remove(cp_id) is None:
            raise KeyError(cp_id)
        self._dirty.discard(cp_id)
        self._stored_ids.discard(cp_id)
        await self.store.delete_charger(cp_id)

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
        self.book.reconnected(cp_id, self.clock())
        log.info("%s connected", cp_id)
        self._charger_changed(cp_id)
        try:
            await conn.serve(
                BoundHandlers(_ChargerHandlers(self, cp_id)),
                ping_interval=self.config.ping_interval,
            )
        finally:
            if self._connections.get(cp_id) is conn:
                del self._connections[cp_id]
                if self.router is not None:
                    self.router.released(cp_id)
                if self._registered(cp_id):
                    self.registry.disconnected(cp_id, self.clock())
                    self._charger_changed(cp_id)
                else:  # never booted (or refused): no lasting record of a passing id
                    self.registry.remove(cp_id)
                    self._dirty.discard(cp_id)
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
        """Send ``tags`` to a charger's local list (Differential, the CSMS's version); the
        update and its answer are recorded in :attr:`local_lists`."""
        result, _, _ = await self.send_local_list(
            cp_id,
            "Differential",
            tags,
            list_version=self.auth.version,
            update_csms_list=False,
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
        states = [
            s
            for s in map(self.registry.get, sorted(dirty))
            if s is not None and self._registered(s.cp_id)
        ]
        if states:
            try:
                await self.store.save_chargers(states)
            except StoreError:
                log.exception("could not save %d chargers", len(states))
                self._dirty |= dirty  # again with the next flush
            else:
                self._stored_ids.update(s.cp_id for s in states)
        batch, self._log_buffer = self._log_buffer, []
        if batch:
            await self._write_log(batch)

    async def _write_log(self, batch: list[MessageRecord]) -> None:
        try:
            await self.store.log_messages(batch)
        except StoreError as exc:
            if isinstance(exc, StoreDataError):
                await self._write_log_one_by_one(batch)
            else:  # the database itself failed: keep them for the next attempt
                log.exception("could not write %d logged messages", len(batch))
                if len(self._log_buffer) < MAX_LOG_BACKLOG:
                    self._log_buffer[:0] = batch
        except Exception:  # a bug or an unforeseen value: the same as bad data
            log.exception("writing %d logged messages failed; retrying one by one", len(batch))
            await self._write_log_one_by_one(batch)

    async def _write_log_one_by_one(self, batch: list[MessageRecord]) -> None:
        """One record the store cannot take must not hold back (or retry forever) the
        others: write them one by one and drop only the offenders."""
        for record in batch:
            try:
                await self.store.log_messages([record])
            except Exception as exc:
                log.error("%s: dropped a logged message: %r", record.cp_id, exc)

    async def prune_log(self) -> int:
        """Apply the message-log retention (``log_max_rows``, ``log_max_age``) now;
        returns how many messages were deleted."""
        config = self.config
        if config.log_max_rows is None and config.log_max_age is None:
            return 0
        older_than = (
            None
            if config.log_max_age is None
            else self.clock() - dt.timedelta(seconds=config.log_max_age)
        )
        deleted = await self.store.prune_messages(
            max_rows=config.log_max_rows, older_than=older_than
        )
        if deleted:
            log.info("message log retention deleted %d old messages", deleted)
        return deleted

    async def _log_writer(self) -> None:
        next_reconcile = next_prune = trio.current_time()
        while True:
            with trio.move_on_after(self.config.log_flush_interval):
                await self._log_wakeup.wait()
            self._log_wakeup = trio.Event()
            try:
                await self.flush_log()
                if trio.current_time() >= next_prune:
                    next_prune = trio.current_time() + self.config.log_prune_interval
                    await self.prune_log()
            except Exception:  # whatever a batch holds, the writer (and the CSMS) carries on
                log.exception("message log flush failed; its batch was dropped")
            if trio.current_time() >= next_reconcile:
                next_reconcile = trio.current_time() + RECONCILE_EVERY
                await self.reconcile()

    # -- transactions ----------------------------------------------------------------------

    @property
    def transactions(self) -> TransactionBook:
        """The transaction book (active transactions and the most recent finished)."""
        return self.book

    async def get_transaction(self, transaction_id: int) -> Transaction | None:
        """A transaction from memory, or else from the store."""
        tx = self.book.get(transaction_id)
        return tx if tx is not None else await self.store.transaction(transaction_id)

    def active_transactions(self) -> dict[str, list[Transaction]]:
        """Transactions not yet stopped, by charge point id (oldest first)."""
        by_charger: dict[str, list[Transaction]] = {}
        for tx in self.book.active():
            by_charger.setdefault(tx.cp_id, []).append(tx)
        return by_charger

    async def unmatched_stops(
        self, cp_id: str | None = None, *, limit: int = 50, offset: int = 0
    ) -> list[UnmatchedStop]:
        """StopTransactions that matched no transaction of their charger, newest first."""
        return await self.store.unmatched_stops(cp_id=cp_id, limit=limit, offset=offset)

    def _transaction_lock(self, cp_id: str) -> trio.Lock:
        """Transaction messages of one charger are booked one at a time (a replaced
        connection may still be finishing one); different chargers run concurrently."""
        lock = self._tx_locks.get(cp_id)
        if lock is None:
            lock = self._tx_locks[cp_id] = trio.Lock()
        return lock

    async def _ensure_transaction_ids(self) -> None:
        """Make sure the book has a reserved id to hand out (reserving a block from the
        store when it runs low); after this returns no checkpoint passes before use."""
        async with self._id_lock:
            if self.book.ids_left < 1:
                block = max(1, self.config.transaction_id_block)
                first = await _persist(self.store.reserve_transaction_ids(block))
                self.book.add_ids(first, block)

    async def _commit(self, change: Change) -> None:
        """Write a change of the book to the store, then apply it (a failed write leaves
        the book as it was and answers the charger InternalError, so it retries)."""
        if change.new or change.changed:
            await _persist(self.store.write_transactions(change.new, change.changed))
        if change.unmatched is not None:
            await _persist(self.store.add_unmatched_stop(change.unmatched))
        self.book.apply(change)
        for tx in change.closed:
            state = self.registry.get(tx.cp_id)
            connector = None if state is None else state.connectors.get(tx.connector_id)
            if connector is not None and connector.transaction_id == tx.transaction_id:
                connector.transaction_id = None
                connector.meter.power_w = 0.0
                connector.meter.current_a = 0.0
                if tx.meter_stop is not None and tx.reconciled is None:
                    connector.meter.energy_wh = float(tx.meter_stop)
            self._meter_seen.pop(tx.transaction_id, None)
            if tx.reconciled is not None and tx.stop_reason == "Other":
                log.warning(
                    "%s: transaction %s closed by the CSMS: %s",
                    tx.cp_id,
                    tx.transaction_id,
                    tx.reconciled,
                )
        if change.closed:
            for cp_id in {t.cp_id for t in change.closed}:
                self._charger_changed(cp_id)

    async def reconcile(self) -> None:
        """Close sessions left doubtful (charger rebooted, StartTransaction answer lost)
        that no message confirmed within ``config.reconcile_grace`` seconds."""
        for cp_id in sorted(self.book.doubted_chargers()):
            async with self._transaction_lock(cp_id):  # planned afresh, after any write
                connected = [cp_id] if self.connection(cp_id) is not None else []
                change = self.book.expire(self.clock(), self.config.reconcile_grace, connected)
                if not change.changed:
                    continue
                try:
                    await self._commit(change)
                except OcppError:
                    pass  # the store failed (logged); tried again next time
                except Exception:  # nothing a charger sent may end the CSMS
                    log.exception("%s: could not reconcile its sessions", cp_id)

    # -- operator books: local lists, reservations, charging profiles (issue 15) -----------------

    async def _load_books(self) -> None:
        self.local_lists.load(await self.store.load_local_lists())
        self.reservations.load(
            await self.store.load_reservations(finished=KEEP_FINISHED),
            await self.store.last_reservation_id(),
        )
        self.profiles.load(
            await self.store.load_charging_profiles(finished=KEEP_FINISHED),
            await self.store.last_charging_profile_record_id(),
        )
        self.firmware.load(await self.store.load_firmware_states())

    def _require_connection(self, cp_id: str) -> None:
        if not self.reachable(cp_id):  # here, or on another node of a cluster
            raise ChargerNotConnectedError(cp_id, cp_id in self.registry)

    async def operate(
        self,
        cp_id: str,
        payload: Any,
        *,
        timeout: float | None = None,
        state: dict[str, Any] | None = None,
    ) -> Any:
        """Like :meth:`send`, and record what the command changes in the operator books:
        ReserveNow / CancelReservation (:attr:`reservations`), SetChargingProfile,
        ClearChargingProfile and a RemoteStartTransaction's profile (:attr:`profiles`),
        SendLocalList and GetLocalListVersion (:attr:`local_lists`), UpdateFirmware and
        GetDiagnostics (:attr:`firmware`). The records touched
        are put in ``state`` (JSON-ready), also when the exchange fails; for
        GetCompositeSchedule ``state`` gets what the CSMS believes is installed."""
        state = {} if state is None else state
        if isinstance(payload, call.ReserveNow):
            return await self._reserve_now(cp_id, payload, timeout, state)
        if isinstance(payload, call.SendLocalList):
            upserts = [_tag_of(e) for e in payload.local_authorization_list if e.id_tag_info]
            removals = [e.id_tag for e in payload.local_authorization_list if not e.id_tag_info]
            result, charger, _ = await self.send_local_list(
                cp_id,
                str(payload.update_type),
                upserts,
                removals,
                list_version=payload.list_version,
                update_csms_list=False,
                timeout=timeout,
            )
            state["local_list"] = charger.as_dict(entries=False)
            return result
        if isinstance(payload, (call.SetChargingProfile, call.RemoteStartTransaction)):
            return await self._set_profile(cp_id, payload, timeout, state)
        if isinstance(payload, (call.UpdateFirmware, call.GetDiagnostics)):
            return await self._firmware_request(cp_id, payload, timeout, state)
        result = await self.send(cp_id, payload, timeout=timeout)
        now = self.clock()
        if isinstance(payload, call.CancelReservation):
            record = self.reservations.cancel_answered(
                cp_id, payload.reservation_id, str(result.status), now
            )
            if record is not None:
                await self.store.save_reservation(record)
                state["reservation"] = record.as_dict()
        elif isinstance(payload, call.ClearChargingProfile):
            matched = self.profiles.matching(
                cp_id,
                payload.id,
                payload.connector_id,
                None
                if payload.charging_profile_purpose is None
                else str(payload.charging_profile_purpose),
                payload.stack_level,
            )
            cleared: list[ChargingProfileRecord] = []
            if result.status == enums.ClearChargingProfileStatus.accepted:
                cleared = self.profiles.cleared(matched, now)
                await self.store.save_charging_profiles(cleared)
            state["cleared"] = [r.as_dict() for r in cleared]
            if not cleared and matched:  # the charger disagrees with what the CSMS believed
                state["believed_installed"] = [r.as_dict() for r in matched]
        elif isinstance(payload, call.GetCompositeSchedule):
            state["csms_view"] = await self.believed_schedule(cp_id, payload.connector_id)
        elif isinstance(payload, call.GetLocalListVersion):
            charger = self.local_lists.reported(cp_id, int(result.list_version), now)
            await self.store.save_local_list(charger)
            state["local_list"] = charger.as_dict(entries=False)
        return result

    async def _firmware_request(
        self,
        cp_id: str,
        payload: call.UpdateFirmware | call.GetDiagnostics,
        timeout: float | None,
        state: dict[str, Any],
    ) -> Any:
        # recorded before sending: the charger may report progress before its answer is read
        self._require_connection(cp_id)
        sent = to_json_payload(payload)
        location = sent.pop("location")
        kind = type(payload).__name__
        firmware = self.firmware.requested(cp_id, kind, location, sent, self.clock())
        request = firmware.update if kind == "UpdateFirmware" else firmware.diagnostics
        assert request is not None
        await self.store.save_firmware_state(firmware)
        try:
            result = await self.send(cp_id, payload, timeout=timeout)
            request.answer = to_json_payload(result)
            return result
        except Exception as exc:
            self.firmware.unanswered(request, str(exc), self.clock())
            raise
        finally:
            state["firmware"] = firmware.as_dict()
            with trio.CancelScope(shield=True):
                await self.store.save_firmware_state(firmware)

    async def firmware_reported(self, cp_id: str, kind: str, status: str) -> None:
        """A FirmwareStatusNotification (``kind`` firmware) or DiagnosticsStatusNotification
        (``diagnostics``) arrived: record it. Never raises (logs instead)."""
        state = self.firmware.reported(cp_id, kind, status, self.clock())
        try:
            await self.store.save_firmware_state(state)
        except StoreError:
            log.exception("%s: could not record the %s status", cp_id, kind)

    async def _reserve_now(
        self, cp_id: str, payload: call.ReserveNow, timeout: float | None, state: dict[str, Any]
    ) -> Any:
        self._require_connection(cp_id)
        now = self.clock()
        await self.expire_reservations()
        record = self.reservations.request(
            cp_id,
            payload.connector_id,
            payload.id_tag,
            parse_time(payload.expiry_date) or now,
            now,
            parent_id_tag=payload.parent_id_tag,
            reservation_id=payload.reservation_id,
        )
        await self.store.save_reservation(record)
        try:
            result = await self.send(cp_id, payload, timeout=timeout)
            self.reservations.answered(record.reservation_id, str(result.status), self.clock())
            return result
        except Exception as exc:
            self.reservations.unanswered(record.reservation_id, str(exc), self.clock())
            raise
        finally:
            state["reservation"] = record.as_dict()
            with trio.CancelScope(shield=True):
                await self.store.save_reservation(record)

    async def _set_profile(
        self,
        cp_id: str,
        payload: call.SetChargingProfile | call.RemoteStartTransaction,
        timeout: float | None,
        state: dict[str, Any],
    ) -> Any:
        if isinstance(payload, call.SetChargingProfile):
            profile, connector, source = (
                payload.cs_charging_profiles,
                payload.connector_id,
                "SetChargingProfile",
            )
        else:
            profile, connector, source = (
                payload.charging_profile,
                payload.connector_id or 0,
                "RemoteStartTransaction",
            )
        if profile is None:  # a RemoteStartTransaction without a profile
            return await self.send(cp_id, payload, timeout=timeout)
        self._require_connection(cp_id)
        running = {
            tx.connector_id: tx.transaction_id for tx in self.active_transactions().get(cp_id, [])
        }
        profile_json = to_json_payload(profile)
        tx_id = running.get(connector) if source == "SetChargingProfile" else None
        if profile_json.get("chargingProfilePurpose") != "TxProfile":
            tx_id = None
        record = self.profiles.sent(
            cp_id, connector, profile_json, self.clock(), source=source, transaction_id=tx_id
        )
        changed = [record]
        await self.store.save_charging_profiles(changed)
        try:
            result = await self.send(cp_id, payload, timeout=timeout)
            changed = self.profiles.answered(record.record_id, str(result.status), self.clock())
            return result
        except Exception as exc:
            self.profiles.unanswered(record.record_id, str(exc), self.clock())
            raise
        finally:
            state["charging_profile"] = record.as_dict()
            state["replaced"] = [r.as_dict() for r in changed if r is not record]
            with trio.CancelScope(shield=True):
                await self.store.save_charging_profiles(changed or [record])

    async def send_local_list(
        self,
        cp_id: str,
        update_type: str,
        upserts: list[IdTag] | None,
        removals: Sequence[str] = (),
        *,
        list_version: int | None = None,
        update_csms_list: bool = True,
        timeout: float | None = None,
    ) -> tuple[call_result.SendLocalList, ChargerLocalList, LocalListUpdate]:
        """Send one SendLocalList and record it and its answer in :attr:`local_lists`.

        ``update_type`` is Full or Differential; ``upserts`` are the entries to add or
        update, ``removals`` the id tags to remove (Differential only). A Full update with
        ``upserts`` None sends the CSMS's whole list. ``list_version`` defaults to
        :meth:`LocalListBook.next_version`. With ``update_csms_list`` the entries are also
        applied to the CSMS's own list (:attr:`auth`) first. Returns the answer, the
        charger's list state and the update. Raises what :meth:`send` raises (the update
        is then recorded Unanswered) and InvalidTransition for a Full update with removals.
        """
        self._require_connection(cp_id)
        if update_type not in ("Full", "Differential") or (update_type == "Full" and removals):
            raise InvalidTransition(f"a {update_type} update cannot remove entries")
        if update_csms_list:
            for tag in upserts or []:
                await self.upsert_tag(tag)
            for id_tag in removals:
                if self.auth.get(id_tag) is not None:
                    await self.remove_tag(id_tag)
        if upserts is None:
            upserts = list(self.auth) if update_type == "Full" else []
        if list_version is None:
            list_version = self.local_lists.next_version(cp_id, self.auth.version)
        now = self.clock()
        update = self.local_lists.sending(
            cp_id, list_version, update_type, upserts, list(removals), now
        )
        entries = [datatypes.AuthorizationData(t.id_tag, t.info(now)) for t in upserts]
        entries += [datatypes.AuthorizationData(id_tag) for id_tag in removals]
        charger = self.local_lists.of(cp_id)
        await self.store.save_local_list(charger)
        answer = "no_answer"
        detail: str | None = None
        try:
            result: call_result.SendLocalList = await self.send(
                cp_id,
                call.SendLocalList(list_version, enums.UpdateType(update_type), entries),
                timeout=timeout,
            )
            answer = str(result.status)
            return result, charger, update
        except Exception as exc:
            detail = str(exc)
            raise
        finally:
            self.local_lists.answered(cp_id, update, answer, self.clock(), detail)
            with trio.CancelScope(shield=True):
                await self.store.save_local_list(charger)

    def full_update_offer(self, cp_id: str) -> dict[str, Any]:
        """A send_local_list body that replaces ``cp_id``'s list with the CSMS's whole
        list at a fresh version (what to send after a VersionMismatch)."""
        version = self.local_lists.next_version(cp_id, self.auth.version)
        entries = [
            {
                "id_tag": t.id_tag,
                "id_tag_info": {k: v for k, v in t.as_dict().items() if k != "id_tag"},
            }
            for t in self.auth
        ]
        return {"update_type": "Full", "list_version": version, "local_authorization_list": entries}

    async def transaction_started(self, tx: Transaction) -> None:
        """A StartTransaction was recorded: a reservation it carries becomes Used, and an
        unbound TxProfile on its connector is bound to it. Never raises (logs instead)."""
        try:
            if tx.reservation_id is not None:
                record = self.reservations.used(
                    tx.cp_id, tx.reservation_id, tx.transaction_id, self.clock()
                )
                if record is not None:
                    await self.store.save_reservation(record)
            await self.sweep_charging_profiles()
        except StoreError:
            log.exception("%s: could not record the operator books", tx.cp_id)

    async def expire_reservations(self) -> list[Reservation]:
        """Mark reservations whose expiry date passed Expired (persisted); returns them."""
        expired = self.reservations.expire(self.clock())
        for record in expired:
            await self.store.save_reservation(record)
        self.reservations.forget_finished(KEEP_FINISHED)
        return expired

    async def sweep_charging_profiles(self) -> list[ChargingProfileRecord]:
        """Bind unbound TxProfiles to the transaction on their connector and mark those
        whose transaction ended Ended (persisted); returns the records changed."""
        running = {
            (tx.cp_id, tx.connector_id): tx.transaction_id
            for txs in self.active_transactions().values()
            for tx in txs
        }
        changed = self.profiles.end_transactions(running, self.clock())
        if changed:
            await self.store.save_charging_profiles(changed)
        self.profiles.forget_finished(KEEP_FINISHED)
        return changed

    async def believed_schedule(self, cp_id: str, connector_id: int) -> dict[str, Any]:
        """What the CSMS believes limits ``connector_id`` of ``cp_id`` now: the profiles it
        installed there (and on connector 0) and the resulting limit."""
        await self.sweep_charging_profiles()
        profiles = [
            r for r in self.profiles.installed(cp_id) if r.connector_id in (0, connector_id)
        ]
        limit = limit_at(profiles, self.clock())
        return {
            "connector_id": connector_id,
            "limit": None if limit is None else limit[0],
            "charging_rate_unit": None if limit is None else limit[1],
            "limiting_record_id": None if limit is None else limit[2],
            "installed_profiles": [r.as_dict() for r in profiles],
        }


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
        csms.book.booted(self.cp_id, now)  # its sessions must show they survived the boot
        csms._charger_changed(self.cp_id)
        return call_result.BootNotification(iso(now), interval, status)

    async def on_heartbeat(self, msg: call.Heartbeat) -> call_result.Heartbeat:
        now = self.csms.clock()
        self.csms.registry.heartbeat(self.cp_id, now)
        return call_result.Heartbeat(iso(now))

    async def on_status_notification(
        self, msg: call.StatusNotification
    ) -> call_result.StatusNotification:
        csms = self.csms
        connector = csms.registry.status(self.cp_id, msg, csms.clock())
        csms._charger_changed(self.cp_id)
        async with csms._transaction_lock(self.cp_id):
            # Available/Preparing with a session still open: the StopTransaction is lost
            change = csms.book.status(
                self.cp_id, msg.connector_id, str(msg.status), connector.timestamp
            )
            await csms._commit(change)
        return call_result.StatusNotification()

    async def on_authorize(self, msg: call.Authorize) -> call_result.Authorize:
        return call_result.Authorize(self.csms.auth.authorize(msg.id_tag, self.csms.clock()))

    async def on_start_transaction(self, msg: call.StartTransaction) -> Reply:
        csms = self.csms
        now = csms.clock()
        info = csms.auth.authorize(msg.id_tag, now)
        started = parse_time(msg.timestamp) or now
        async with csms._transaction_lock(self.cp_id):
            await csms._ensure_transaction_ids()
            change = csms.book.start(  # the id is taken here, before any await
                self.cp_id,
                msg.connector_id,
                msg.id_tag,
                msg.meter_start,
                started,
                reservation_id=msg.reservation_id,
                id_tag_status=str(info.status),
            )
            await csms._commit(change)
        tx = change.transaction
        assert tx is not None
        if not change.retry:
            connector = csms.registry.ensure(self.cp_id).connector(msg.connector_id)
            connector.transaction_id = tx.transaction_id
            connector.meter.energy_wh = float(msg.meter_start)
            csms._meter_seen.setdefault(tx.transaction_id, {})  # new: nothing stored yet
            await csms.transaction_started(tx)  # operator books: reservation Used, TxProfile
        tx_id = tx.transaction_id
        return Reply(
            call_result.StartTransaction(tx_id, info),
            undelivered=lambda: csms.book.reply_lost(tx_id, csms.clock()),
        )

    async def on_stop_transaction(self, msg: call.StopTransaction) -> call_result.StopTransaction:
        csms = self.csms
        now = csms.clock()
        info = csms.auth.authorize(msg.id_tag, now) if msg.id_tag else None
        stopped = parse_time(msg.timestamp) or now
        async with csms._transaction_lock(self.cp_id):
            if msg.transaction_id not in csms.book and _storable_id(msg.transaction_id):
                # finished long ago, or before a restart
                stored = await _persist(csms.store.transaction(msg.transaction_id))
                if stored is not None:
                    csms.book.load([stored])
            change = csms.book.stop(
                self.cp_id,
                msg.transaction_id,
                msg.meter_stop,
                stopped,
                received_at=now,
                reason=str(msg.reason or enums.Reason.local),
                id_tag=msg.id_tag,
                last_meter_wh=energy_register_wh(msg.transaction_data or []),
            )
            if change.unmatched is not None:
                log.warning(
                    "%s sent StopTransaction for %s transaction %s; kept as unmatched",
                    self.cp_id,
                    change.unmatched.kind,
                    msg.transaction_id,
                )
            elif msg.transaction_data and not change.retry:
                await self._save_meter_values(None, msg.transaction_id, msg.transaction_data)
            await csms._commit(change)
        return call_result.StopTransaction(info)

    async def on_meter_values(self, msg: call.MeterValues) -> call_result.MeterValues:
        csms = self.csms
        connector = csms.registry.meter_values(self.cp_id, msg)
        async with csms._transaction_lock(self.cp_id):
            tx = await self._own_transaction(msg.transaction_id)
            if tx is None:
                await self._save_meter_values(msg.connector_id, None, msg.meter_value)
                return call_result.MeterValues()
            values = await self._fresh(tx.transaction_id, msg.meter_value)
            if values:
                energy = energy_register_wh(values)
                sampled = max(
                    (t for t in (parse_time(mv.timestamp) for mv in values) if t is not None),
                    default=csms.clock(),
                )  # the charger's clock, like the session's start: comparable
                change = csms.book.meter(self.cp_id, tx.transaction_id, energy, sampled)
                updated = change.changed[0] if change.changed else None
                await _persist(
                    csms.store.save_meter_values(
                        self.cp_id,
                        msg.connector_id,
                        tx.transaction_id,
                        [to_json_payload(mv) for mv in values],
                        updated,
                    )
                )
                csms.book.apply(change)
                self._mark_seen(tx.transaction_id, values)
            csms.book.confirm(tx.transaction_id)
            current = csms.book.get(tx.transaction_id)  # after the lock: not a stale copy
            if current is not None and current.active:
                connector.transaction_id = current.transaction_id
        return call_result.MeterValues()

    async def _own_transaction(self, transaction_id: int | None) -> Transaction | None:
        """This charger's transaction ``transaction_id``, from the book or, for one that
        finished long ago (or before a restart), from the store."""
        if transaction_id is None or not _storable_id(transaction_id):
            return None
        tx = self.csms.book.get(transaction_id)
        if tx is None:
            tx = await _persist(self.csms.store.transaction(transaction_id))
            if tx is not None:
                self.csms.book.load([tx])
        return tx if tx is not None and tx.cp_id == self.cp_id else None

    async def _fresh(
        self, transaction_id: int, values: list[datatypes.MeterValue]
    ) -> list[datatypes.MeterValue]:
        """The meter values not stored before (a retry after a lost answer resends them,
        also to a restarted CSMS: the first time, the recent ones are read back)."""
        seen = self.csms._meter_seen.get(transaction_id)
        if seen is None:
            stored = await _persist(self.csms.store.meter_values(transaction_id))
            seen = self.csms._meter_seen[transaction_id] = {
                str(mv.get("timestamp")): None for mv in stored[-METER_DEDUPE_WINDOW:]
            }
        return [mv for mv in values if mv.timestamp not in seen]

    def _mark_seen(self, transaction_id: int, values: list[datatypes.MeterValue]) -> None:
        """Remember values once they are stored (a failed write is retried in full)."""
        seen = self.csms._meter_seen.setdefault(transaction_id, {})
        for mv in values:  # the last few timestamps: retries resend recent ones
            seen[mv.timestamp] = None
            if len(seen) > METER_DEDUPE_WINDOW:
                del seen[next(iter(seen))]

    async def _save_meter_values(
        self,
        connector_id: int | None,
        transaction_id: int | None,
        values: list[datatypes.MeterValue],
    ) -> None:
        tx = None if transaction_id is None else self.csms.book.get(transaction_id)
        if tx is not None:
            connector_id = tx.connector_id
            values = await self._fresh(tx.transaction_id, values)
            if not values:
                return
        data = [to_json_payload(mv) for mv in values]
        await _persist(
            self.csms.store.save_meter_values(self.cp_id, connector_id or 0, transaction_id, data)
        )
        if tx is not None:
            self._mark_seen(tx.transaction_id, values)

    async def on_data_transfer(self, msg: call.DataTransfer) -> call_result.DataTransfer:
        handler = self.csms._data_transfer.get(msg.vendor_id)
        if handler is None:
            return call_result.DataTransfer(enums.DataTransferStatus.unknown_vendor_id)
        return await handler(self.cp_id, msg)

    async def on_diagnostics_status_notification(
        self, msg: call.DiagnosticsStatusNotification
    ) -> call_result.DiagnosticsStatusNotification:
        log.info("%s diagnostics: %s", self.cp_id, msg.status)
        await self.csms.firmware_reported(self.cp_id, "diagnostics", str(msg.status))  # issue 15
        return call_result.DiagnosticsStatusNotification()

    async def on_firmware_status_notification(
        self, msg: call.FirmwareStatusNotification
    ) -> call_result.FirmwareStatusNotification:
        log.info("%s firmware: %s", self.cp_id, msg.status)
        await self.csms.firmware_reported(self.cp_id, "firmware", str(msg.status))  # issue 15
        return call_result.FirmwareStatusNotification()


def _tag_of(entry: datatypes.AuthorizationData) -> IdTag:
    """An OCPP local list entry (with idTagInfo) as an :class:`IdTag`."""
    info = entry.id_tag_info
    assert info is not None
    return IdTag(entry.id_tag, str(info.status), parse_time(info.expiry_date), info.parent_id_tag)


def _storable_id(value: int) -> bool:
    """Whether an id fits the store's 64-bit integers (larger ones match nothing)."""
    return -(2**63) <= value < 2**63


async def _persist(work: Awaitable[T]) -> T:
    """Run a store call; a failure answers the charger InternalError so it retries."""
    try:
        return await work
    except StoreError as exc:
        log.error("%s", exc)
        raise OcppError(
            ErrorCode.INTERNAL_ERROR, "the central system could not store this"
        ) from exc
