"""Several CSMS nodes on one PostgreSQL database, acting as one central system.

A :class:`ClusterNode` runs next to each :class:`~libv4e.csms._central.CentralSystem` whose store
is a :class:`~libv4e.csms._pgstore.PostgresStore` (one per process: ``--workers`` and other
machines alike). It adds three things and no new server:

* **Presence.** The ``nodes`` table holds each node with a lease (``lease_until``, on the
  database's clock) that the node refreshes every ``lease / 3`` seconds; the ``presence``
  table says which node holds each charger's websocket. A charger counts as held only
  while its node's lease runs, so the chargers of a node that died (``kill -9``, power
  loss, partition) expire with its lease, and any live node marks them disconnected.
* **Routing.** :meth:`ClusterNode.send` is the CSMS's router: a command for a charger that
  another node holds is sent to that node with PostgreSQL ``NOTIFY`` on the node's own
  channel; the holder sends it to the charger and ``NOTIFY``s the charger's real answer
  (or its CallError, timeout, disconnect) back. Bodies over the 8000-byte ``NOTIFY``
  limit go through the ``mailbox`` table.
* **Hand-over and fleet view.** When a charger connects, its node claims it (one row
  lock); if another node held it, the new node loads the charger's state and active
  transactions from the database, and tells the old node to close its stale connection.
  A second connection for an id follows the identity policy across nodes as within one
  (:meth:`ClusterNode.probe`: without a password, a live first connection keeps its
  place). Every ``sync_interval`` seconds a
  node reads what the others changed (chargers, transactions, presence, tag list,
  passwords, reservations, charging profiles, local lists, firmware), so the REST API and
  dashboard of any node show the whole fleet.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import secrets
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import trio

from libv4e._errors import (
    CallTimeoutError,
    ConnectionLostError,
    LocalProtocolError,
    OcppError,
    RemoteCallError,
)
from libv4e.csms._registry import ChargePointState, Transaction
from libv4e.csms._store import StoreError, _conv
from libv4e.protocol._convert import CALLS, RESULTS, action_of, from_json_payload, to_json_payload

if TYPE_CHECKING:
    from libv4e.csms._central import CentralSystem
    from libv4e.csms._pgstore import Changes, PostgresStore

log = logging.getLogger("libv4e.cluster")

NOTIFY_LIMIT = 7900
"""Bytes: larger bodies go through the mailbox table (PostgreSQL's limit is 8000)."""


@dataclasses.dataclass(frozen=True)
class ClusterConfig:
    """How a node takes part in a cluster (every field has a working default)."""

    node_id: str | None = None
    """A stable name for this node (default: host-pid-random, new at every start)."""
    lease: float = 15.0
    """Seconds a node (and so its chargers) stays present without refreshing its lease;
    it refreshes every ``lease / 3`` seconds."""
    sync_interval: float = 1.0
    """Seconds between looks at what the other nodes changed."""
    reply_grace: float = 5.0
    """Seconds a routed command waits for the holding node beyond the command's timeout."""
    max_routed_calls: int = 1000
    """Commands routed to this node that may run at once (more are answered busy)."""


def channel_of(node_id: str) -> str:
    """The NOTIFY channel of a node (an identifier whatever the node id contains)."""
    return "v4e_" + hashlib.sha1(node_id.encode()).hexdigest()[:24]


@dataclasses.dataclass(slots=True)
class _Pending:
    event: trio.Event = dataclasses.field(default_factory=trio.Event)
    reply: dict[str, Any] | None = None


class ClusterNode:
    """This process's part of the cluster; start :meth:`run` in the backend's nursery
    before the CSMS serves (it sets itself as ``csms.router``)."""

    def __init__(
        self, csms: CentralSystem, store: PostgresStore, config: ClusterConfig | None = None
    ) -> None:
        self.csms, self.store = csms, store
        self.config = config or ClusterConfig()
        self.node_id = self.config.node_id or (
            f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        )
        self.channel = channel_of(self.node_id)
        self._pending: dict[str, _Pending] = {}
        self._claims: dict[str, int] = {}  # cp_id -> our claim number, while connected here
        self._released: dict[str, int] = {}  # claims to mark disconnected at the next sync
        self._remote: dict[str, str] = {}  # cp_id -> node holding it (per presence)
        self._alive: set[str] = set()
        self._mark = 0  # change marks (see PostgresStore.changes_since)
        self._presence_mark = 0
        self._secrets_changed = -1
        self._stored_seen: dict[str, dt.datetime] = {}
        self._routed = trio.CapacityLimiter(self.config.max_routed_calls)
        self._nursery: trio.Nursery | None = None
        self.ready = trio.Event()

    # -- lifecycle -------------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[ClusterNode] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Join the cluster, then keep the lease, listen and sync until cancelled; on
        cancellation, leave (this node's chargers are marked disconnected at once)."""
        await self._register()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(self._listen)
                await self.sync()
                nursery.start_soon(self._lease_loop)
                nursery.start_soon(self._sync_loop)
                self.csms.router = self
                self.ready.set()
                task_status.started(self)
        finally:
            self.csms.router = None
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self._leave()

    async def _register(self) -> None:
        info = json.dumps({"host": socket.gethostname(), "pid": os.getpid()})

        def work(db: Any) -> None:
            db.execute(
                "INSERT INTO nodes (node_id, started_at, lease_until, info) VALUES "
                "(%s, now(), now() + make_interval(secs => %s), %s) ON CONFLICT (node_id) DO "
                "UPDATE SET started_at = now(), lease_until = EXCLUDED.lease_until, "
                "info = EXCLUDED.info",
                (self.node_id, self.config.lease, info),
            )
            # a restart with the same node id: what it held before is gone
            db.execute(
                "UPDATE presence SET connected = false, changed = pg_current_xact_id() "
                "WHERE node_id = %s AND connected",
                (self.node_id,),
            )

        await self.store.run(work)
        log.info("node %s joined the cluster (lease %g s)", self.node_id, self.config.lease)

    async def _leave(self) -> None:
        def work(db: Any) -> None:
            db.execute(
                "UPDATE presence SET connected = false, changed = pg_current_xact_id() "
                "WHERE node_id = %s AND connected",
                (self.node_id,),
            )
            db.execute("DELETE FROM nodes WHERE node_id = %s", (self.node_id,))

        try:
            await self.store.run(work)
        except StoreError as exc:
            log.warning("could not leave the cluster cleanly: %s", exc)

    async def _lease_loop(self) -> None:
        while True:
            await trio.sleep(self.config.lease / 3)
            try:
                await self.refresh_lease()
            except StoreError as exc:
                log.error("could not refresh this node's lease: %s", exc)
            except Exception:
                log.exception("lease refresh failed")

    async def refresh_lease(self) -> None:
        """Extend this node's lease; mark the chargers of expired nodes disconnected.

        If this node's own lease had run out (database unreachable, process paused), the
        others have marked its chargers disconnected: claim them again. Chargers whose
        claim failed when they connected are claimed now too."""
        lease = self.config.lease

        def work(db: Any) -> bool:
            row = db.execute(
                "SELECT lease_until > now() FROM nodes WHERE node_id = %s FOR UPDATE",
                (self.node_id,),
            ).fetchone()
            db.execute(
                "UPDATE nodes SET lease_until = now() + make_interval(secs => %s) "
                "WHERE node_id = %s",
                (lease, self.node_id),
            )
            db.execute(
                "UPDATE presence SET connected = false, changed = pg_current_xact_id() "
                "WHERE connected AND node_id NOT IN "
                "(SELECT node_id FROM nodes WHERE lease_until > now())"
            )
            db.execute(
                "DELETE FROM nodes WHERE lease_until < now() - make_interval(secs => %s)",
                (lease * 10,),
            )
            return row is not None and bool(row[0])

        alive = await self.store.run(work)
        if not alive:
            log.warning("node %s had expired; joining again", self.node_id)
            await self._register()
        for cp_id in self.csms.connected_ids:
            if not alive or cp_id not in self._claims:
                await self.claim(cp_id)

    # -- presence --------------------------------------------------------------------------

    async def claim(self, cp_id: str) -> None:
        """A charger connected to this node: record it; if another node held it, load
        its state and transactions and tell that node to drop its connection."""
        me = self.node_id
        # what we believe is running there may have ended on the other node since
        believed = [t.transaction_id for t in self.csms.book.active() if t.cp_id == cp_id]

        def work(
            db: Any,
        ) -> tuple[tuple[str, bool] | None, int, Any, list[Any]]:
            row = db.execute(
                "SELECT node_id, connected FROM presence WHERE cp_id = %s FOR UPDATE", (cp_id,)
            ).fetchone()
            number = db.execute("SELECT nextval('change_numbers')").fetchone()[0]
            db.execute(
                "INSERT INTO presence (cp_id, node_id, since, connected, claim) "
                "VALUES (%s, %s, now(), true, %s) ON CONFLICT (cp_id) DO UPDATE SET "
                "node_id = EXCLUDED.node_id, since = now(), connected = true, "
                "claim = EXCLUDED.claim, changed = pg_current_xact_id()",
                (cp_id, me, number),
            )
            if row is not None and row[0] == me:
                return (row[0], row[1]), number, None, []
            charger = db.execute("SELECT data FROM chargers WHERE cp_id = %s", (cp_id,)).fetchone()
            txs = db.execute(
                "SELECT data FROM transactions WHERE cp_id = %s AND "
                "(active OR transaction_id = ANY(%s)) ORDER BY transaction_id",
                (cp_id, believed),
            ).fetchall()
            return (
                None if row is None else (row[0], row[1]),
                int(number),
                None if charger is None else charger[0],
                [r[0] for r in txs],
            )

        try:
            previous, number, charger, txs = await self.store.run(work)
        except StoreError as exc:
            log.error("%s: could not record its presence: %s", cp_id, exc)
            return
        self._claims[cp_id] = number
        self._released.pop(cp_id, None)
        self._remote.pop(cp_id, None)
        if previous is not None and previous[0] == me:
            return
        if charger is not None:  # it moved here (or this node is new): adopt its state
            self.csms.registry.add(_conv.structure(charger, ChargePointState))
        self._load_transactions([_conv.structure(t, Transaction) for t in txs])
        if previous is not None and previous[1]:
            log.info("%s moved here from node %s", cp_id, previous[0])
            await self._post(previous[0], {"kind": "evict", "cp_id": cp_id, "claim": number})

    def _load_transactions(self, txs: list[Transaction]) -> None:
        """Put transactions another node wrote into our book (the database is newer)."""
        for tx in txs:
            try:
                self.csms.book.load([tx])
            except ValueError as exc:  # e.g. a stale copy of a stopped one: keep ours
                log.warning(
                    "transaction %s from the database not taken: %s", tx.transaction_id, exc
                )

    def released(self, cp_id: str) -> None:
        """A charger's connection to this node ended (recorded at the next sync)."""
        claim = self._claims.pop(cp_id, None)
        if claim is not None:
            self._released[cp_id] = claim

    def holder(self, cp_id: str) -> str | None:
        """The node holding ``cp_id`` as of the last sync (None: nobody, or this node)."""
        node = self._remote.get(cp_id)
        return node if node is not None and node in self._alive and node != self.node_id else None

    def remote_ids(self) -> Iterable[str]:
        """Chargers connected to other live nodes (as of the last sync)."""
        return (cp for cp, node in self._remote.items() if node in self._alive)

    async def current_holder(self, cp_id: str) -> str | None:
        """The live node holding ``cp_id``, asking the database now."""
        row = await self.store.run(
            lambda db: db.execute(
                "SELECT p.node_id FROM presence p JOIN nodes n USING (node_id) "
                "WHERE p.cp_id = %s AND p.connected AND n.lease_until > now()",
                (cp_id,),
            ).fetchone()
        )
        return None if row is None else str(row[0])

    # -- routing ---------------------------------------------------------------------------

    async def send(self, cp_id: str, payload: Any, *, timeout: float) -> Any:
        """Send a command to a charger held by another node; its typed answer.

        Raises what :meth:`CentralSystem.send` raises, as if the charger were local."""
        from libv4e._errors import ChargerNotConnectedError

        action = action_of(payload)
        holder = await self.current_holder(cp_id)
        if holder is None or holder == self.node_id:
            raise ChargerNotConnectedError(cp_id, cp_id in self.csms.registry)
        request_id = secrets.token_hex(8)
        slot = self._pending[request_id] = _Pending()
        try:
            await self._post(
                holder,
                {
                    "kind": "call",
                    "id": request_id,
                    "from": self.node_id,
                    "cp_id": cp_id,
                    "action": action,
                    "payload": to_json_payload(payload),
                    "timeout": timeout,
                },
            )
            with trio.move_on_after(timeout + self.config.reply_grace):
                await slot.event.wait()
        finally:
            del self._pending[request_id]
        reply = slot.reply
        if reply is None:  # the holder died or is cut off
            raise CallTimeoutError(action, timeout)
        return _decode_reply(cp_id, action, reply, known=cp_id in self.csms.registry)

    async def probe(self, cp_id: str, timeout: float) -> bool:
        """Whether ``cp_id`` is connected to another live node and answers a websocket
        ping there within ``timeout`` seconds (the identity policy for a second
        connection, applied across nodes)."""
        holder = await self.current_holder(cp_id)
        if holder is None or holder == self.node_id:
            return False
        request_id = secrets.token_hex(8)
        slot = self._pending[request_id] = _Pending()
        try:
            await self._post(
                holder,
                {
                    "kind": "probe",
                    "id": request_id,
                    "from": self.node_id,
                    "cp_id": cp_id,
                    "timeout": timeout,
                },
            )
            # a holder that does not answer at all (it died; its lease has not run out
            # yet) counts as a dead first connection: the newcomer waits no longer
            with trio.move_on_after(timeout + 1.0):
                await slot.event.wait()
        finally:
            del self._pending[request_id]
        return bool(slot.reply and slot.reply.get("alive") is True)

    async def _serve_probe(self, message: dict[str, Any]) -> None:
        conn = self.csms.connection(message["cp_id"])
        timeout = min(30.0, float(message.get("timeout") or 5.0))
        alive = conn is not None and await conn.ping(timeout)
        try:
            await self._post(
                message["from"], {"kind": "reply", "id": message["id"], "alive": alive}
            )
        except StoreError as exc:
            log.error("could not answer a presence probe: %s", exc)

    async def _serve_call(self, message: dict[str, Any]) -> None:
        cp_id, action, sender = message["cp_id"], message["action"], message["from"]
        reply: dict[str, Any]
        if self._routed.available_tokens < 1:
            reply = {"error": "lost", "message": "the holding node is too busy"}
        else:
            async with self._routed:
                reply = await self._call_locally(cp_id, action, message)
        reply |= {"kind": "reply", "id": message["id"]}
        try:
            await self._post(sender, reply)
        except StoreError as exc:
            log.error("could not answer a routed %s for %s: %s", action, cp_id, exc)

    async def _call_locally(
        self, cp_id: str, action: str, message: dict[str, Any]
    ) -> dict[str, Any]:
        conn = self.csms.connection(cp_id)
        if conn is None:
            return {"error": "not_connected"}
        cls = CALLS.get(action)
        try:
            if cls is None or not isinstance(message.get("payload"), dict):
                raise LocalProtocolError(f"cannot route {action!r}")
            payload = from_json_payload(cls, message["payload"])
            timeout = float(message.get("timeout") or self.csms.config.call_timeout)
            result = await conn.call(payload, timeout=timeout)
        except RemoteCallError as exc:
            return {
                "error": "call_error",
                "code": str(exc.code),
                "description": exc.description,
                "details": exc.details,
            }
        except CallTimeoutError as exc:
            return {"error": "timeout", "timeout": exc.timeout}
        except ConnectionLostError as exc:
            return {"error": "lost", "message": str(exc)}
        except (LocalProtocolError, OcppError, ValueError) as exc:
            return {"error": "invalid", "message": str(exc)}
        return {"ok": to_json_payload(result)}

    # -- messages between nodes --------------------------------------------------------------

    async def _post(self, node_id: str, body: dict[str, Any]) -> None:
        """NOTIFY ``body`` to a node (through the mailbox table if it is too large)."""
        text = json.dumps(body)
        channel = channel_of(node_id)

        def work(db: Any) -> None:
            out = text
            if len(out.encode()) > NOTIFY_LIMIT:
                row = db.execute(
                    "INSERT INTO mailbox (body) VALUES (%s) RETURNING id", (text,)
                ).fetchone()
                out = json.dumps({"kind": "mailbox", "id": row[0]})
            db.execute("SELECT pg_notify(%s, %s)", (channel, out))

        await self.store.run(work)

    async def _listen(self, *, task_status: trio.TaskStatus[None]) -> None:
        """LISTEN on this node's channel on a connection of its own, reconnecting if it
        drops (commands routed here meanwhile time out at their sender)."""
        import psycopg

        started = False
        while True:
            conn: Any = None
            try:
                conn = await trio.to_thread.run_sync(
                    lambda: psycopg.connect(self.store.url, autocommit=True, connect_timeout=10)
                )
                await trio.to_thread.run_sync(conn.execute, f'LISTEN "{self.channel}"')
                if not started:
                    started = True
                    task_status.started()
                pgconn = conn.pgconn
                while True:
                    await trio.lowlevel.wait_readable(pgconn.socket)
                    pgconn.consume_input()
                    while (note := pgconn.notifies()) is not None:
                        self._on_message(note.extra.decode("utf-8", "replace"))
            except psycopg.Error as exc:
                if not started:
                    raise StoreError(f"cannot listen for routed commands: {exc}") from exc
                log.warning("lost the LISTEN connection (%s); reconnecting", exc)
            finally:
                if conn is not None:
                    conn.close()
            await trio.sleep(1)

    def _on_message(self, text: str) -> None:
        assert self._nursery is not None
        try:
            message = json.loads(text)
            kind = message["kind"]
            if kind == "reply":
                slot = self._pending.get(message.get("id"))
                if slot is not None:
                    slot.reply = message
                    slot.event.set()
            elif kind == "call":
                for key in ("id", "from", "cp_id", "action"):
                    if not isinstance(message[key], str):
                        raise TypeError(key)
                self._nursery.start_soon(self._serve_call, message)
            elif kind == "probe":
                for key in ("id", "from", "cp_id"):
                    if not isinstance(message[key], str):
                        raise TypeError(key)
                float(message.get("timeout") or 5.0)
                self._nursery.start_soon(self._serve_probe, message)
            elif kind == "evict":
                self._evict(str(message["cp_id"]), int(message["claim"]))
            elif kind == "mailbox":
                self._nursery.start_soon(self._open_mailbox, int(message["id"]))
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed cluster message")

    async def _open_mailbox(self, mail_id: int) -> None:
        try:
            row = await self.store.run(
                lambda db: db.execute(
                    "DELETE FROM mailbox WHERE id = %s RETURNING body", (mail_id,)
                ).fetchone()
            )
        except StoreError as exc:
            log.error("could not read cluster mailbox %d: %s", mail_id, exc)
            return
        if row is not None:
            self._on_message(json.dumps(row[0]))

    def _evict(self, cp_id: str, claim: int) -> None:
        ours = self._claims.get(cp_id)
        conn = self.csms.connection(cp_id)
        if ours is not None and ours < claim and conn is not None and self._nursery is not None:
            log.warning("%s connected to another node; closing its connection here", cp_id)
            self._nursery.start_soon(conn.aclose, 1000, "replaced by a newer connection")

    # -- the fleet view ------------------------------------------------------------------------

    async def _sync_loop(self) -> None:
        while True:
            await trio.sleep(self.config.sync_interval)
            try:
                await self.sync()
            except StoreError as exc:
                log.error("could not sync with the cluster: %s", exc)
            except Exception:  # e.g. a row this version cannot read: the node keeps serving
                log.exception("cluster sync failed")

    async def sync(self) -> None:
        """Record released chargers, then take in what the other nodes changed."""
        csms = self.csms
        self._mark_recently_seen()
        released, self._released = self._released, {}
        released = {cp: n for cp, n in released.items() if csms.connection(cp) is None}
        me, presence_mark = self.node_id, self._presence_mark

        def work(db: Any) -> tuple[int, list[Any], list[str]]:
            if released:
                db.execute(
                    "UPDATE presence SET connected = false, changed = pg_current_xact_id() "
                    "FROM unnest(%s::text[], %s::bigint[]) AS r(cp_id, claim) "
                    "WHERE presence.cp_id = r.cp_id AND presence.claim = r.claim "
                    "AND presence.node_id = %s",
                    (list(released), list(released.values()), me),
                )
            horizon = db.execute(
                "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
            ).fetchone()[0]
            rows = db.execute(
                "SELECT cp_id, node_id, connected FROM presence WHERE changed >= %s::text::xid8",
                (str(presence_mark),),
            ).fetchall()
            alive = db.execute("SELECT node_id FROM nodes WHERE lease_until > now()").fetchall()
            return int(horizon), rows, [r[0] for r in alive]

        try:
            self._presence_mark, rows, alive = await self.store.run(work)
        except StoreError:
            for cp, n in released.items():  # again next time
                self._released.setdefault(cp, n)
            raise
        self._alive = set(alive)
        for cp_id, node, connected in rows:
            if connected and node != me:
                self._remote[cp_id] = node
                csms.registry.ensure(cp_id)  # known from its presence, before its state is
            else:
                self._remote.pop(cp_id, None)
        changes = await self.store.changes_since(self._mark)
        self._mark = changes.mark
        self._apply(changes.chargers, changes.transactions)
        self._merge_books(changes)
        if changes.list_version != csms.auth.version:
            tags, version = await self.store.load_tags()
            csms.auth.load(tags, version)
        if changes.secrets_changed != self._secrets_changed:
            await csms.passwords.load()
            self._secrets_changed = changes.secrets_changed

    def _is_local(self, cp_id: str) -> bool:
        # connected here, or changed here and not yet written: our memory is the truth
        return self.csms.connection(cp_id) is not None or self.csms.has_unsaved(cp_id)

    def _apply(self, chargers: list[ChargePointState], txs: list[Transaction]) -> None:
        csms = self.csms
        for state in chargers:
            if not self._is_local(state.cp_id):
                csms.registry.add(state)
        for state in csms.registry:
            if csms.connection(state.cp_id) is None:
                state.connected = self.holder(state.cp_id) is not None
        self._load_transactions([t for t in txs if not self._is_local(t.cp_id)])

    def _merge_books(self, changes: Changes) -> None:
        """Take the operator-book records (reservations, charging profiles, local lists,
        firmware) that any node wrote: the database's copy is the newest. A record already
        in memory is updated in place (a command in flight holds it), and reservation and
        profile ids continue after the highest one any node used."""
        csms = self.csms
        if changes.reservations:
            book = {r.reservation_id: r for r in csms.reservations}
            for r in changes.reservations:
                _update(book, r.reservation_id, r)
            csms.reservations.load(sorted(book.values(), key=lambda r: r.reservation_id), 0)
        if changes.charging_profiles:
            records = {r.record_id: r for r in csms.profiles}
            for p in changes.charging_profiles:
                _update(records, p.record_id, p)
            csms.profiles.load(sorted(records.values(), key=lambda r: r.record_id), 0)
        if changes.local_lists:
            lists = {s.cp_id: s for s in csms.local_lists}
            for ll in changes.local_lists:
                _update(lists, ll.cp_id, ll)
            csms.local_lists.load(list(lists.values()))
        if changes.firmware:
            states = {s.cp_id: s for s in csms.firmware}
            for fw in changes.firmware:
                _update(states, fw.cp_id, fw)
            csms.firmware.load(list(states.values()))

    def _mark_recently_seen(self) -> None:
        """Have the last-seen time of chargers connected here written about once per
        heartbeat interval (not on every message), so that other nodes, which judge
        online/offline by it, keep showing them online."""
        csms = self.csms
        slack = max(0.0, csms.registry.offline_tolerance - 1.0) * 0.9
        for cp_id in self._claims:
            state = csms.registry.get(cp_id)
            if state is None or state.last_seen is None:
                continue
            stored = self._stored_seen.get(cp_id)
            if stored is None or (state.last_seen - stored).total_seconds() >= (
                state.heartbeat_interval * slack
            ):
                self._stored_seen[cp_id] = state.last_seen
                csms.charger_changed(cp_id)
        for cp_id in list(self._stored_seen):
            if cp_id not in self._claims:
                del self._stored_seen[cp_id]


def _update(book: dict[Any, Any], key: Any, newer: Any) -> None:
    """Put ``newer`` in ``book``; an object already there takes its fields instead."""
    held = book.get(key)
    if held is None:
        book[key] = newer
        return
    for field in dataclasses.fields(held):
        setattr(held, field.name, getattr(newer, field.name))


def _decode_reply(cp_id: str, action: str, reply: dict[str, Any], *, known: bool) -> Any:
    from libv4e._errors import ChargerNotConnectedError

    error = reply.get("error")
    if error is None:
        return from_json_payload(RESULTS[action], reply.get("ok") or {})
    if error == "not_connected":
        raise ChargerNotConnectedError(cp_id, known)
    if error == "call_error":
        raise RemoteCallError(
            action,
            str(reply.get("code")),
            str(reply.get("description") or ""),
            reply.get("details") or {},
        )
    if error == "timeout":
        raise CallTimeoutError(action, float(reply.get("timeout") or 0))
    if error == "invalid":
        raise LocalProtocolError(str(reply.get("message")))
    raise ConnectionLostError(str(reply.get("message") or f"connection to {cp_id} lost"))
