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
import json
import logging
import os
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import trio

from libv4e.csms._registry import ChargePointState, Transaction
from libv4e.csms._store import StoreError, _conv

if TYPE_CHECKING:
    from libv4e.csms._central import CentralSystem
    from libv4e.csms._pgstore import Changes, PostgresStore

from libv4e.csms._clusterbase import ClusterConfig as ClusterConfig
from libv4e.csms._clusterbase import ClusterState
from libv4e.csms._clusterbase import channel_of as channel_of
from libv4e.csms._clusterroute import ClusterRouting

log = logging.getLogger("libv4e.cluster")


class ClusterNode:
    """This process's part of the cluster; start :meth:`run` in the backend's nursery
    before the CSMS serves (it sets itself as ``csms.router``). It holds its state
    (:attr:`state`) and its router to the other nodes (:attr:`routing`)."""

    def __init__(
        self, csms: CentralSystem, store: PostgresStore, config: ClusterConfig | None = None
    ) -> None:
        self.state = ClusterState(csms, store, config)
        self.routing = ClusterRouting(self.state)

    @property
    def node_id(self) -> str:
        """This node's name in the cluster."""
        return self.state.node_id

    @property
    def ready(self) -> trio.Event:
        """Set once the node has joined and synced."""
        return self.state.ready

    async def send(self, cp_id: str, payload: Any, *, timeout: float) -> Any:
        """Send a command to a charger another node holds (see
        :meth:`ClusterRouting.send`)."""
        return await self.routing.send(cp_id, payload, timeout=timeout)

    async def probe(self, cp_id: str, timeout: float) -> bool:
        """Whether another live node holds ``cp_id`` and it answers a ping there."""
        return await self.routing.probe(cp_id, timeout)

    # -- lifecycle -------------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[ClusterNode] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Join the cluster, then keep the lease, listen and sync until cancelled; on
        cancellation, leave (this node's chargers are marked disconnected at once)."""
        await self._register()
        try:
            async with trio.open_nursery() as nursery:
                self.state.nursery = nursery
                await nursery.start(self.routing.listen)
                await self.sync()
                nursery.start_soon(self._lease_loop)
                nursery.start_soon(self._sync_loop)
                self.state.csms.router = self
                self.state.ready.set()
                task_status.started(self)
        finally:
            self.state.csms.router = None
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
                (self.state.node_id, self.state.config.lease, info),
            )
            # a restart with the same node id: what it held before is gone
            db.execute(
                "UPDATE presence SET connected = false, changed = pg_current_xact_id() "
                "WHERE node_id = %s AND connected",
                (self.state.node_id,),
            )

        await self.state.store.run(work)
        log.info(
            "node %s joined the cluster (lease %g s)", self.state.node_id, self.state.config.lease
        )

    async def _leave(self) -> None:
        def work(db: Any) -> None:
            db.execute(
                "UPDATE presence SET connected = false, changed = pg_current_xact_id() "
                "WHERE node_id = %s AND connected",
                (self.state.node_id,),
            )
            db.execute("DELETE FROM nodes WHERE node_id = %s", (self.state.node_id,))

        try:
            await self.state.store.run(work)
        except StoreError as exc:
            log.warning("could not leave the cluster cleanly: %s", exc)

    async def _lease_loop(self) -> None:
        while True:
            await trio.sleep(self.state.config.lease / 3)
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
        lease = self.state.config.lease

        def work(db: Any) -> bool:
            row = db.execute(
                "SELECT lease_until > now() FROM nodes WHERE node_id = %s FOR UPDATE",
                (self.state.node_id,),
            ).fetchone()
            db.execute(
                "UPDATE nodes SET lease_until = now() + make_interval(secs => %s) "
                "WHERE node_id = %s",
                (lease, self.state.node_id),
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

        alive = await self.state.store.run(work)
        if not alive:
            log.warning("node %s had expired; joining again", self.state.node_id)
            await self._register()
        for cp_id in self.state.csms.connected_ids:
            if not alive or cp_id not in self.state.claims:
                await self.claim(cp_id)

    # -- presence --------------------------------------------------------------------------

    async def claim(self, cp_id: str) -> None:
        """A charger connected to this node: record it; if another node held it, load
        its state and transactions and tell that node to drop its connection."""
        me = self.state.node_id
        # what we believe is running there may have ended on the other node since
        believed = [
            t.transaction_id for t in self.state.csms.transactions.active() if t.cp_id == cp_id
        ]

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
            previous, number, charger, txs = await self.state.store.run(work)
        except StoreError as exc:
            log.error("%s: could not record its presence: %s", cp_id, exc)
            return
        self.state.claims[cp_id] = number
        self.state.released_claims.pop(cp_id, None)
        self.state.remote.pop(cp_id, None)
        if previous is not None and previous[0] == me:
            return
        if charger is not None:  # it moved here (or this node is new): adopt its state
            self.state.csms.registry.add(_conv.structure(charger, ChargePointState))
        self._load_transactions([_conv.structure(t, Transaction) for t in txs])
        if previous is not None and previous[1]:
            log.info("%s moved here from node %s", cp_id, previous[0])
            await self.routing.post(previous[0], {"kind": "evict", "cp_id": cp_id, "claim": number})

    def _load_transactions(self, txs: list[Transaction]) -> None:
        """Put transactions another node wrote into our book (the database is newer)."""
        for tx in txs:
            try:
                self.state.csms.transactions.load([tx])
            except ValueError as exc:  # e.g. a stale copy of a stopped one: keep ours
                log.warning(
                    "transaction %s from the database not taken: %s", tx.transaction_id, exc
                )

    def released(self, cp_id: str) -> None:
        """A charger's connection to this node ended (recorded at the next sync)."""
        claim = self.state.claims.pop(cp_id, None)
        if claim is not None:
            self.state.released_claims[cp_id] = claim

    def holder(self, cp_id: str) -> str | None:
        """The node holding ``cp_id`` as of the last sync (None: nobody, or this node)."""
        node = self.state.remote.get(cp_id)
        return (
            node
            if node is not None and node in self.state.alive and node != self.state.node_id
            else None
        )

    def remote_ids(self) -> Iterable[str]:
        """Chargers connected to other live nodes (as of the last sync)."""
        return (cp for cp, node in self.state.remote.items() if node in self.state.alive)

    # -- the fleet view ------------------------------------------------------------------------

    async def _sync_loop(self) -> None:
        while True:
            await trio.sleep(self.state.config.sync_interval)
            try:
                await self.sync()
            except StoreError as exc:
                log.error("could not sync with the cluster: %s", exc)
            except Exception:  # e.g. a row this version cannot read: the node keeps serving
                log.exception("cluster sync failed")

    async def sync(self) -> None:
        """Record released chargers, then take in what the other nodes changed."""
        csms = self.state.csms
        self._mark_recently_seen()
        released, self.state.released_claims = self.state.released_claims, {}
        released = {cp: n for cp, n in released.items() if csms.connection(cp) is None}
        me, presence_mark = self.state.node_id, self.state.presence_mark

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
            self.state.presence_mark, rows, alive = await self.state.store.run(work)
        except StoreError:
            for cp, n in released.items():  # again next time
                self.state.released_claims.setdefault(cp, n)
            raise
        self.state.alive = set(alive)
        for cp_id, node, connected in rows:
            if connected and node != me:
                self.state.remote[cp_id] = node
                csms.registry.ensure(cp_id)  # known from its presence, before its state is
            else:
                self.state.remote.pop(cp_id, None)
        changes = await self.state.store.changes_since(self.state.mark)
        self.state.mark = changes.mark
        self._apply(changes.chargers, changes.transactions)
        self._merge_books(changes)
        if changes.list_version != csms.auth.version:
            tags, version = await self.state.store.load_tags()
            csms.auth.load(tags, version)
        if changes.secrets_changed != self.state.secrets_changed:
            await csms.passwords.load()
            self.state.secrets_changed = changes.secrets_changed

    def _is_local(self, cp_id: str) -> bool:
        # connected here, or changed here and not yet written: our memory is the truth
        return self.state.csms.connection(cp_id) is not None or self.state.csms.has_unsaved(cp_id)

    def _apply(self, chargers: list[ChargePointState], txs: list[Transaction]) -> None:
        csms = self.state.csms
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
        csms = self.state.csms
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
        if changes.security:
            security = {s.cp_id: s for s in csms.security.book}
            for sec in changes.security:
                security[sec.cp_id] = sec  # the stored record is the newest
            csms.security.book.load(list(security.values()))

    def _mark_recently_seen(self) -> None:
        """Have the last-seen time of chargers connected here written about once per
        heartbeat interval (not on every message), so that other nodes, which judge
        online/offline by it, keep showing them online."""
        csms = self.state.csms
        slack = max(0.0, csms.registry.offline_tolerance - 1.0) * 0.9
        for cp_id in self.state.claims:
            state = csms.registry.get(cp_id)
            if state is None or state.last_seen is None:
                continue
            stored = self.state.stored_seen.get(cp_id)
            if stored is None or (state.last_seen - stored).total_seconds() >= (
                state.heartbeat_interval * slack
            ):
                self.state.stored_seen[cp_id] = state.last_seen
                csms.charger_changed(cp_id)
        for cp_id in list(self.state.stored_seen):
            if cp_id not in self.state.claims:
                del self.state.stored_seen[cp_id]


def _update(book: dict[Any, Any], key: Any, newer: Any) -> None:
    """Put ``newer`` in ``book``; an object already there takes its fields instead."""
    held = book.get(key)
    if held is None:
        book[key] = newer
        return
    for field in dataclasses.fields(held):
        setattr(held, field.name, getattr(newer, field.name))
