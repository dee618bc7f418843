"""Events for agents, the I/O side: the event hub that turns the CSMS's changes into
semantic events (:class:`~libv4e.csms.AgentEventFeed`) and delivers them to the
``/events`` streams and to webhooks (:class:`~libv4e.csms.WebhookBook`), and the routes
``/events/recent`` and ``/webhooks…``.

:meth:`EventHub.run` is started in the backend's nursery: it looks at every charger once
a second (time and disconnections change links without a message) and sends the
webhooks. Changes that come with a message are seen as the message passes.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import re
import secrets
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal

import httpx
import trio
from pydantic import Field, field_validator
from quart import Blueprint, request

from libv4e.csms import (
    EVENT_KINDS,
    AgentEvent,
    AgentEventFeed,
    Delivery,
    WebhookBook,
    WebhookPolicy,
    WebhookSubscription,
    sign_webhook,
)

from .errors import ApiError, body, int_arg
from .models import _Body

if TYPE_CHECKING:
    from libv4e.csms import CentralSystem
    from libv4e.scenarios import ScenarioManager
    from libv4e.transport import MessageRecord

log = logging.getLogger("libv4e.events")

RECENT_EVENTS = 1000
"""Semantic events kept for ``GET /events/recent``."""
TICK_SECONDS = 1.0
STREAM_KINDS = ("message", "state", "semantic", *EVENT_KINDS)
"""What ``/events?kind=`` takes: raw OCPP records, the dashboard state, every semantic
kind at once, or one semantic kind."""


class _Listener:
    def __init__(
        self,
        send: trio.MemorySendChannel[Any],
        cp_ids: frozenset[str] | None,
        kinds: frozenset[str] | None,
    ) -> None:
        self.send, self.cp_ids, self.kinds = send, cp_ids, kinds
        self.dropped = 0

    def offer(self, event: AgentEvent) -> None:
        if self.cp_ids is not None and event.cp_id not in self.cp_ids:
            return
        if self.kinds is not None and event.kind not in self.kinds:
            return
        try:
            self.send.send_nowait(event)
        except trio.WouldBlock:
            self.dropped += 1  # a slow reader misses events, it never blocks the hub
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


class EventHub:
    """Semantic events of ``csms`` to streams and webhooks."""

    def __init__(
        self,
        csms: CentralSystem,
        scenarios: ScenarioManager | None = None,
        *,
        policy: WebhookPolicy | None = None,
    ) -> None:
        self.csms = csms
        self.feed = AgentEventFeed(csms, _runs_of(scenarios) if scenarios is not None else None)
        self.webhooks = WebhookBook(policy)
        self.recent: collections.deque[AgentEvent] = collections.deque(maxlen=RECENT_EVENTS)
        self._listeners: set[_Listener] = set()
        self._wake = trio.Event()
        self.feed.baseline()
        csms.messages.add_observer(self._observe)

    # -- events ---------------------------------------------------------------------------

    def _observe(self, record: MessageRecord) -> None:
        self.publish(self.feed.look(record.cp_id))

    def publish(self, events: list[AgentEvent]) -> None:
        """Hand ``events`` to the streams, the recent list and the webhooks."""
        if not events:
            return
        self.recent.extend(events)
        for listener in list(self._listeners):
            for event in events:
                listener.offer(event)
        if self.webhooks.subscriptions and self.webhooks.enqueue(events, trio.current_time()):
            self._wake.set()

    @contextlib.contextmanager
    def listen(
        self,
        send: trio.MemorySendChannel[Any],
        cp_ids: Iterable[str] | None = None,
        kinds: Iterable[str] | None = None,
    ) -> Iterator[_Listener]:
        """Send the semantic events wanted into ``send`` while the block runs."""
        listener = _Listener(
            send,
            frozenset(cp_ids) if cp_ids is not None else None,
            frozenset(kinds) if kinds is not None else None,
        )
        self._listeners.add(listener)
        try:
            yield listener
        finally:
            self._listeners.discard(listener)

    def wake(self) -> None:
        """Look at the webhook queue now (something was queued)."""
        self._wake.set()

    # -- the task -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Look at every charger each second and deliver the webhooks, until cancelled."""
        timeout = httpx.Timeout(self.webhooks.policy.timeout)
        async with httpx.AsyncClient(timeout=timeout) as client, trio.open_nursery() as nursery:
            nursery.start_soon(self._ticks)
            nursery.start_soon(self._send_webhooks, client, nursery)
            task_status.started()

    async def _ticks(self) -> None:
        while True:
            await trio.sleep(TICK_SECONDS)
            self.publish(self.feed.tick())

    async def _send_webhooks(self, client: httpx.AsyncClient, nursery: trio.Nursery) -> None:
        book = self.webhooks
        while True:
            for delivery in book.due(trio.current_time()):
                nursery.start_soon(self._deliver, client, delivery)
            next_due = book.next_due()
            with trio.move_on_at(next_due if next_due is not None else float("inf")):
                await self._wake.wait()
            self._wake = trio.Event()

    async def _deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        book = self.webhooks
        sub = book.subscriptions.get(delivery.subscription)
        error: str | None = "unsubscribed"
        if sub is not None:
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "libv4e-webhooks",
                "V4E-Event-Id": str(delivery.event_id),
                "V4E-Event-Kind": delivery.kind,
                "V4E-Delivery-Id": str(delivery.id),
                "V4E-Delivery-Attempt": str(delivery.attempts + 1),
                "V4E-Signature": sign_webhook(sub.secret, delivery.body, int(time.time())),
            }
            error = "timed out"
            with trio.move_on_after(book.policy.timeout):
                try:
                    # streamed and closed unread: only the status counts (a body could be
                    # gigabytes, or never end)
                    async with client.stream(
                        "POST", sub.url, content=delivery.body, headers=headers
                    ) as response:
                        error = None if response.is_success else f"HTTP {response.status_code}"
                except Exception as exc:  # any failure is this delivery's, never the hub's
                    error = f"{type(exc).__name__}: {exc}"
        book.outcome(delivery, error, trio.current_time())
        if error is not None and delivery.id in book.dead:
            log.warning(
                "webhook %s: event %d is a dead letter after %d attempts (%s)",
                delivery.subscription,
                delivery.event_id,
                delivery.attempts,
                error,
            )
        self._wake.set()


def _runs_of(scenarios: ScenarioManager) -> Any:
    """``runs(cp_id)`` for the feed: the charger's scenario runs, keyed by their place in
    the manager's (append-only) list. Indexed per charger as runs are added, so a look
    after each message costs the charger's runs, not the whole fleet's."""
    by_charger: dict[str, dict[str, Any]] = {}
    indexed = 0

    def runs(cp_id: str) -> dict[str, tuple[str, int | None, str]]:
        nonlocal indexed
        every = scenarios.runs
        if len(every) < indexed:  # never shrinks today; start over if it ever does
            by_charger.clear()
            indexed = 0
        for i in range(indexed, len(every)):
            by_charger.setdefault(every[i].cp_id, {})[str(i)] = every[i]
        indexed = len(every)
        return {
            key: (r.spec.name, r.params.get("connector_id"), str(r.phase))
            for key, r in by_charger.get(cp_id, {}).items()
        }

    return runs


# -- routes -----------------------------------------------------------------------------------


WEBHOOK_URL_PATTERN = r"^https?://[A-Za-z0-9._~%!$&'()*+,;=:@\[\]-]+(/[!-~]*)?$"
"""An http(s) URL of printable ASCII (the same rule in every regex engine)."""


def webhook_url_problem(url: str) -> str | None:
    """Why ``url`` cannot receive webhooks (None: it can): an http(s) URL of printable
    ASCII (:data:`WEBHOOK_URL_PATTERN`) that httpx can also parse (``http://a:b:c/`` fits
    the pattern but has no valid port)."""
    if len(url) > 2000 or not re.fullmatch(WEBHOOK_URL_PATTERN[1:-1], url):
        return "not an http:// or https:// URL"
    try:
        httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        return f"not a valid URL: {exc}"
    return None


EventKind = Literal[EVENT_KINDS]  # type: ignore[valid-type]


class WebhookBody(_Body):
    """A webhook subscription: where to POST which semantic events."""

    url: str = Field(
        min_length=8,
        max_length=2000,
        pattern=WEBHOOK_URL_PATTERN,
        description="http:// or https:// URL (printable ASCII: an IDN host as punycode) "
        "that receives a POST per event.",
    )
    secret: str | None = Field(
        None,
        min_length=16,
        max_length=200,
        description="HMAC key for V4E-Signature; omitted: one is generated and shown once.",
    )
    kinds: list[EventKind] | None = Field(
        None,
        max_length=len(EVENT_KINDS),
        description=f"Only these kinds ({', '.join(EVENT_KINDS)}); omitted: all.",
    )
    cp_ids: list[str] | None = Field(
        None, max_length=1000, description="Only these chargers; omitted: all."
    )

    @field_validator("url")
    @classmethod
    def _parsable(cls, url: str) -> str:
        problem = webhook_url_problem(url)
        if problem is not None:
            raise ValueError(problem)
        return url


def parse_list(name: str, allowed: Iterable[str] | None = None) -> list[str] | None:
    """A query parameter given as ``?x=a,b`` and/or ``?x=a&x=b`` (None when absent)."""
    values = request.args.getlist(name)
    if not values:
        return None
    if sum(len(v) for v in values) > 64_000:
        raise ApiError(400, "bad_query", f"{name}: at most 64,000 characters")
    items = [v.strip() for value in values for v in value.split(",") if v.strip()]
    if any(len(i) > 64 for i in items):
        raise ApiError(400, "bad_query", f"{name}: each value at most 64 characters")
    if allowed is not None:
        unknown = sorted(set(items) - set(allowed))
        if unknown:
            raise ApiError(
                400,
                "bad_query",
                f"{name}: unknown {', '.join(unknown)}; choose from {', '.join(allowed)}",
            )
    return items


def blueprint(hub: EventHub) -> Blueprint:
    """``/events/recent`` and the webhook routes over ``hub``."""
    bp = Blueprint("events", __name__)
    book = hub.webhooks

    @bp.get("/events/recent")
    async def recent_events() -> Any:
        """The latest semantic events (newest last), for agents that poll:
        ?cp_id=&kind=&after_id=&limit=100."""
        cp_ids = parse_list("cp_id")
        kinds = parse_list("kind", EVENT_KINDS)
        after = int_arg("after_id", 0, 0, 2**53)
        limit = int_arg("limit", 100, 1, RECENT_EVENTS)
        events = [
            e.as_dict()
            for e in hub.recent
            if e.id > after
            and (cp_ids is None or e.cp_id in cp_ids)
            and (kinds is None or e.kind in kinds)
        ]
        return {"events": events[-limit:], "last_id": hub.feed.last_id}

    @bp.get("/webhooks")
    async def webhooks() -> Any:
        """The webhook subscriptions (secrets are never shown again) and their counters."""
        return {
            "webhooks": [s.as_dict() for s in book.subscriptions.values()],
            "pending": book.pending,
            "delivered": book.delivered,
            "dead_letters": len(book.dead),
        }

    @bp.post("/webhooks")
    @body(WebhookBody)
    async def add_webhook(data: WebhookBody) -> Any:
        """Subscribe a URL to semantic events: each is POSTed as JSON, signed
        (``V4E-Signature: t=…,v1=HMAC-SHA256(secret, "t.body")``), retried with backoff,
        then kept as a dead letter. Subscriptions live in memory (``--webhook`` for ones
        that come back at start)."""
        secret = data.secret or secrets.token_hex(32)
        sub = WebhookSubscription(
            f"wh_{secrets.token_hex(6)}",
            data.url,
            secret,
            frozenset(data.kinds) if data.kinds is not None else None,
            frozenset(data.cp_ids) if data.cp_ids is not None else None,
        )
        try:
            book.subscribe(sub)
        except ValueError as exc:
            raise ApiError(409, "too_many_webhooks", str(exc)) from None
        return {**sub.as_dict(), "secret": secret}, 201

    @bp.delete("/webhooks/<webhook_id>")
    async def delete_webhook(webhook_id: str) -> Any:
        """Remove a subscription and its pending deliveries."""
        if not book.unsubscribe(webhook_id):
            raise ApiError(404, "unknown_webhook", f"no webhook {webhook_id}")
        return {"id": webhook_id, "deleted": True}

    @bp.get("/webhooks/dead_letters")
    async def dead_letters() -> Any:
        """Deliveries that failed every attempt, oldest first, with the last error."""
        return {"dead_letters": [d.as_dict() for d in book.dead.values()]}

    @bp.post("/webhooks/dead_letters/<int:delivery_id>/retry")
    async def retry_dead_letter(delivery_id: int) -> Any:
        """Send a dead letter again (its attempts start over); 409 when its webhook was
        deleted (the letter stays listed)."""
        letter = book.dead.get(delivery_id)
        if letter is not None and letter.subscription not in book.subscriptions:
            raise ApiError(
                409,
                "unknown_webhook",
                f"webhook {letter.subscription} was deleted; nothing to send it to",
            )
        delivery = book.retry(delivery_id, trio.current_time())
        if delivery is None:
            raise ApiError(404, "unknown_dead_letter", f"no dead letter {delivery_id}")
        hub.wake()
        return {"id": delivery_id, "requeued": True}

    @bp.delete("/webhooks/dead_letters")
    async def clear_dead_letters() -> Any:
        """Forget every dead letter."""
        return {"cleared": book.clear_dead()}

    return bp
