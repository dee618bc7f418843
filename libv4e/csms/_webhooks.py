"""Outbound webhooks, without I/O: subscriptions, the delivery queue with exponential
backoff, the dead letters, and the signature.

Every event (:class:`~libv4e.csms.AgentEvent`) a subscription wants becomes one
:class:`Delivery`. A delivery that fails (anything but a 2xx answer, a timeout, a refused
connection) is tried again after 1, 2, 4, 8… seconds (``WebhookPolicy``), and after
``max_attempts`` it becomes a dead letter, kept (the newest ``max_dead_letters``) until an
operator retries or clears it. Times are the caller's monotonic clock (Trio's in the
apps, so tests run on a mock clock). The apps' sender (``apps/csms/events.py``) takes
:meth:`WebhookBook.due` deliveries, POSTs them and reports each outcome.

The body is the event's JSON; ``V4E-Signature: t=<unix time>,v1=<hex>`` where hex is
HMAC-SHA256 of ``f"{t}.{body}"`` with the subscription's secret (as Stripe signs), so a
receiver can check who sent it and refuse replays older than a few minutes.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import hmac
import itertools
import json
from collections.abc import Iterable
from typing import Any

from libv4e.csms._events import AgentEvent

__all__ = [
    "Delivery",
    "WebhookBook",
    "WebhookPolicy",
    "WebhookSubscription",
    "sign_webhook",
    "verify_webhook",
]


def sign_webhook(secret: str, body: bytes, timestamp: int) -> str:
    """The ``V4E-Signature`` header of ``body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_webhook(
    secret: str, body: bytes, header: str, now: float, tolerance: float = 300
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` and is at most ``tolerance``
    seconds old at ``now`` (unix seconds): what a receiver checks."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign_webhook(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


@dataclasses.dataclass(frozen=True)
class WebhookPolicy:
    """How hard deliveries are tried, and how much is kept."""

    max_attempts: int = 6
    backoff: float = 1.0
    """Seconds before the second attempt; doubled after each failure."""
    backoff_cap: float = 300.0
    timeout: float = 10.0
    """Seconds one attempt may take (connect, send, answer)."""
    max_subscriptions: int = 100
    max_pending: int = 10_000
    """Deliveries waiting at once; past this the oldest becomes a dead letter."""
    max_dead_letters: int = 1_000
    concurrency: int = 16
    """Deliveries in flight at once (one per subscription: its events stay in order)."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.backoff <= 0 or self.timeout <= 0:
            raise ValueError("max_attempts >= 1, backoff > 0 and timeout > 0 are required")

    def delay(self, attempts: int) -> float:
        """Seconds to wait after ``attempts`` failed attempts."""
        return float(min(self.backoff * 2 ** (attempts - 1), self.backoff_cap))


@dataclasses.dataclass(frozen=True)
class WebhookSubscription:
    """Where to POST which events."""

    id: str
    url: str
    secret: str
    kinds: frozenset[str] | None = None
    """None: every kind."""
    cp_ids: frozenset[str] | None = None
    """None: every charger."""

    def wants(self, event: AgentEvent) -> bool:
        return (self.kinds is None or event.kind in self.kinds) and (
            self.cp_ids is None or event.cp_id in self.cp_ids
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, without the secret."""
        return {
            "id": self.id,
            "url": self.url,
            "kinds": sorted(self.kinds) if self.kinds is not None else None,
            "cp_ids": sorted(self.cp_ids) if self.cp_ids is not None else None,
        }


@dataclasses.dataclass
class Delivery:
    """One event to one subscription."""

    id: int
    subscription: str
    event_id: int
    kind: str
    body: bytes
    attempts: int = 0
    next_at: float = 0.0
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subscription": self.subscription,
            "event_id": self.event_id,
            "kind": self.kind,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "event": json.loads(self.body),
        }


class WebhookBook:
    """The subscriptions, the pending deliveries and the dead letters (no I/O)."""

    def __init__(self, policy: WebhookPolicy | None = None) -> None:
        self.policy = policy or WebhookPolicy()
        self.subscriptions: dict[str, WebhookSubscription] = {}
        self._pending: collections.OrderedDict[int, Delivery] = collections.OrderedDict()
        self._in_flight: dict[int, Delivery] = {}
        self.dead: collections.OrderedDict[int, Delivery] = collections.OrderedDict()
        self.delivered = 0
        self._ids = itertools.count(1)

    # -- subscriptions --------------------------------------------------------------------

    def subscribe(self, subscription: WebhookSubscription) -> None:
        """Add ``subscription``; ValueError when there are ``max_subscriptions``."""
        if len(self.subscriptions) >= self.policy.max_subscriptions:
            raise ValueError(f"at most {self.policy.max_subscriptions} webhook subscriptions")
        self.subscriptions[subscription.id] = subscription

    def unsubscribe(self, subscription_id: str) -> bool:
        """Remove a subscription and its pending deliveries; whether it existed."""
        if self.subscriptions.pop(subscription_id, None) is None:
            return False
        for d in [d for d in self._pending.values() if d.subscription == subscription_id]:
            del self._pending[d.id]
        return True

    # -- deliveries -----------------------------------------------------------------------

    def enqueue(self, events: Iterable[AgentEvent], now: float) -> int:
        """Queue each event for every subscription that wants it; how many queued."""
        queued = 0
        for event in events:
            body: bytes | None = None
            for sub in self.subscriptions.values():
                if not sub.wants(event):
                    continue
                if body is None:
                    body = json.dumps(event.as_dict(), separators=(",", ":")).encode()
                d = Delivery(next(self._ids), sub.id, event.id, event.kind, body, next_at=now)
                self._pending[d.id] = d
                queued += 1
        while len(self._pending) > self.policy.max_pending:
            _, oldest = self._pending.popitem(last=False)
            oldest.last_error = "dropped: too many deliveries pending"
            self._bury(oldest)
        return queued

    def due(self, now: float) -> list[Delivery]:
        """Deliveries to attempt now, marked in flight: the oldest of each subscription
        with none in flight (events stay in order), at most ``concurrency`` in flight."""
        busy = {d.subscription for d in self._in_flight.values()}
        out = []
        for d in list(self._pending.values()):
            if len(self._in_flight) >= self.policy.concurrency:
                break
            if d.subscription in busy:
                continue
            busy.add(d.subscription)  # its older ones first, even when not yet due
            if d.next_at <= now:
                del self._pending[d.id]
                self._in_flight[d.id] = d
                out.append(d)
        return out

    def next_due(self) -> float | None:
        """When :meth:`due` will next have something (None: nothing pending, or only
        deliveries that wait for one in flight — its outcome comes first)."""
        if len(self._in_flight) >= self.policy.concurrency:
            return None
        busy = {d.subscription for d in self._in_flight.values()}
        soonest: float | None = None
        for d in self._pending.values():
            if d.subscription in busy:
                continue
            busy.add(d.subscription)  # the oldest of a subscription goes first
            soonest = d.next_at if soonest is None else min(soonest, d.next_at)
        return soonest

    def outcome(self, delivery: Delivery, error: str | None, now: float) -> None:
        """Record an attempt: delivered (``error`` None), retried later, or dead."""
        self._in_flight.pop(delivery.id, None)
        delivery.attempts += 1
        if error is None:
            self.delivered += 1
            return
        delivery.last_error = error[:500]
        if delivery.subscription not in self.subscriptions:
            return  # unsubscribed meanwhile
        if delivery.attempts >= self.policy.max_attempts:
            self._bury(delivery)
            return
        delivery.next_at = now + self.policy.delay(delivery.attempts)
        self._pending[delivery.id] = delivery  # back in its place: the oldest of its kind
        self._pending = collections.OrderedDict(sorted(self._pending.items()))

    def retry(self, delivery_id: int, now: float) -> Delivery | None:
        """Send a dead letter again (attempts start over); None if there is none."""
        d = self.dead.pop(delivery_id, None)
        if d is None:
            return None
        d.attempts, d.next_at = 0, now
        self._pending[d.id] = d
        self._pending = collections.OrderedDict(sorted(self._pending.items()))
        return d

    def clear_dead(self) -> int:
        """Forget every dead letter; how many."""
        count = len(self.dead)
        self.dead.clear()
        return count

    @property
    def pending(self) -> int:
        return len(self._pending) + len(self._in_flight)

    def _bury(self, delivery: Delivery) -> None:
        self.dead[delivery.id] = delivery
        while len(self.dead) > self.policy.max_dead_letters:
            self.dead.popitem(last=False)
