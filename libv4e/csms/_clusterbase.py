"""A cluster node's state: its configuration, its claims and what it knows of the
other nodes (see :mod:`libv4e.csms._cluster`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import os
import secrets
import socket
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from libv4e.csms._central import CentralSystem
    from libv4e.csms._pgstore import PostgresStore

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


class ClusterState:
    """What a cluster node knows (its claims, the other nodes' chargers, the calls it
    routes and waits for), and the two lookups routing needs. Held by the node and given
    to its router (:class:`~libv4e.csms._clusterroute.ClusterRouting`)."""

    def __init__(
        self, csms: CentralSystem, store: PostgresStore, config: ClusterConfig | None = None
    ) -> None:
        self.csms, self.store = csms, store
        self.config = config or ClusterConfig()
        self.node_id = self.config.node_id or (
            f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        )
        self.channel = channel_of(self.node_id)
        self.pending: dict[str, _Pending] = {}
        self.claims: dict[str, int] = {}  # cp_id -> our claim number, while connected here
        self.released_claims: dict[str, int] = {}  # claims to mark disconnected at the next sync
        self.remote: dict[str, str] = {}  # cp_id -> node holding it (per presence)
        self.alive: set[str] = set()
        self.mark = 0  # change marks (see PostgresStore.changes_since)
        self.presence_mark = 0
        self.secrets_changed = -1
        self.stored_seen: dict[str, dt.datetime] = {}
        self.routed = trio.CapacityLimiter(self.config.max_routed_calls)
        self.nursery: trio.Nursery | None = None
        self.ready = trio.Event()

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

    def evict(self, cp_id: str, claim: int) -> None:
        ours = self.claims.get(cp_id)
        conn = self.csms.connection(cp_id)
        if ours is not None and ours < claim and conn is not None and self.nursery is not None:
            log.warning("%s connected to another node; closing its connection here", cp_id)
            self.nursery.start_soon(conn.aclose, 1000, "replaced by a newer connection")
