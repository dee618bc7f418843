"""What the CSMS knows of its peers between connections, as a plain object: the open
connections per remote address (to cap them, and those not booted yet) and the call
budgets that outlive a connection (per charger id, per remote address), so reconnecting
neither escapes a cap nor refills a budget. The caller supplies the time."""

from __future__ import annotations

import collections
from collections.abc import Callable

from libv4e.csms._config import CsmsConfig
from libv4e.transport._flow import FlowControl, TokenBucket
from libv4e.transport._hosts import is_loopback

__all__ = ["Peers"]


class Peers:
    """Connections per address and the budgets kept across reconnects."""

    def __init__(self) -> None:
        self._from: dict[str, collections.Counter[str]] = {}
        """Remote address → open connections from it, per charger id."""
        self._buckets: dict[str, TokenBucket] = {}
        """Call budgets: ``id:<cp_id>`` and ``addr:<address>``."""

    def load(self, address: str, registered: Callable[[str], bool]) -> tuple[int, int]:
        """Open connections from ``address``, and how many of them have not booted."""
        ids = self._from.get(address)
        if not ids:
            return 0, 0
        return sum(ids.values()), sum(n for cp_id, n in ids.items() if not registered(cp_id))

    def budgets(
        self, cp_id: str, address: str, config: CsmsConfig, now: float
    ) -> list[TokenBucket]:
        """The budgets a connection of ``cp_id`` from ``address`` takes its calls from:
        its id's, and its address's (not for loopback unless configured)."""
        found = [self._bucket(f"id:{cp_id}", config.flow, now)]
        local = is_loopback(address) and not config.address_flow_loopback
        if config.address_flow is not None and address and not local:
            found.append(self._bucket(f"addr:{address}", config.address_flow, now))
        return [b for b in found if b is not None]

    def open(self, address: str, cp_id: str) -> None:
        """A connection of ``cp_id`` from ``address`` opened."""
        self._from.setdefault(address, collections.Counter())[cp_id] += 1

    def closed(self, address: str, cp_id: str) -> None:
        """That connection closed."""
        ids = self._from.get(address)
        if ids is None:
            return
        ids[cp_id] -= 1
        if ids[cp_id] <= 0:
            del ids[cp_id]
        if not ids:
            del self._from[address]

    def _bucket(self, key: str, flow: FlowControl, now: float) -> TokenBucket | None:
        """The budget ``key``, made from ``flow`` the first time and then kept; refilled
        ones (the same as new) are forgotten when there are many."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = flow.bucket()
            if bucket is None:
                return None
            open_connections = sum(sum(ids.values()) for ids in self._from.values())
            if len(self._buckets) >= 4 * (open_connections + 1000):
                for old in [k for k, b in self._buckets.items() if b.full(now)]:
                    del self._buckets[old]
            self._buckets[key] = bucket
        return bucket
