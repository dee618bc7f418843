"""The Trio shell: moves frames between an :class:`OcppSession` and a websocket."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum
from typing import Any

import trio

from libv4e._errors import (
    CallTimeoutError,
    ConnectionLostError,
    ErrorCode,
    OcppError,
    RemoteCallError,
    StoreError,
)
from libv4e.protocol._session import (
    CallErrorReceived,
    CallReceived,
    CallRejected,
    CallResultReceived,
    FrameDropped,
    LateAnswerReceived,
    MessageType,
    OcppSession,
    Outgoing,
)
from libv4e.protocol._time import utcnow
from libv4e.protocol._version import OcppVersion
from libv4e.transport._flow import CLOSE_FLOODING, FlowControl, TokenBucket
from libv4e.transport._lean import ConnectionClosed, WebSocket
from libv4e.transport._quietlog import QuietLog

log = logging.getLogger("libv4e.connection")
_STORE_FAILURES = QuietLog(log)
"""A failing store fails every charger's calls: logged once a minute, with a count."""

SUBPROTOCOL = "ocpp1.6"
"""The OCPP 1.6 subprotocol (``OcppVersion.V16.subprotocol``); a server negotiates among
:data:`~libv4e.protocol.DEFAULT_PREFERENCE` unless told otherwise."""
DEFAULT_CALL_TIMEOUT = 30.0
CLOSE_TIMEOUT = 2.0
"""Seconds a close handshake may take before the socket is just closed."""
MAX_AFTER_TASKS = 4
"""``Reply.after`` works running at once per connection; beyond, the next waits."""


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    """What a handler may return instead of a bare result: the result, plus work to run
    once the result has been sent (e.g. send StartTransaction after accepting
    RemoteStartTransaction). ``after`` runs in the connection's nursery, next to the
    following inbound calls (so it may itself call the peer)."""

    result: Any
    after: Callable[[], Awaitable[None]] | None = None
    undelivered: Callable[[], None] | None = None
    """Called instead of ``after`` when the result could not be sent (socket closed, or
    the result could not be framed: a CALLERROR went instead)."""
    logged: bool = False
    """The result's message-log row is already written (with the change the call caused):
    its :class:`MessageRecord` is marked ``logged``, so a message log does not write it
    again."""


Handler = Callable[[Any], Awaitable[Any]]
"""An inbound-call handler: takes the ``ocpp.v16.call`` payload, returns the
``ocpp.v16.call_result`` payload (or a :class:`Reply`); raise :class:`OcppError` to answer
with a CALLERROR."""


class Direction(StrEnum):
    """Which way a message went, seen from the side that logs it."""

    IN = "in"
    """Received."""
    OUT = "out"
    """Sent."""


@dataclasses.dataclass(frozen=True, slots=True)
class MessageRecord:
    """One OCPP message as seen on the wire, for message logs and metrics.

    ``direction`` and ``message_type`` accept their plain values (``"in"``, ``2``: what a
    log row holds) and are stored as :class:`Direction` and :class:`MessageType`."""

    cp_id: str
    direction: Direction
    message_type: MessageType
    unique_id: str
    action: str | None
    payload: dict[str, Any]
    at: dt.datetime
    late: bool = False
    """An answer that came after the call had timed out (the caller saw the timeout)."""
    logged: bool = False
    """Already in the message log: written before it was sent, with the change it answers
    (observers see it as usual; the log's batched writer skips it)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "direction", Direction(self.direction))
        object.__setattr__(self, "message_type", MessageType(self.message_type))


Observer = Callable[[MessageRecord], None]


def handlers_from(obj: object) -> dict[str, Handler]:
    """Collect ``on_<snake_case_action>`` coroutine methods of ``obj`` into a handler map.

    ``on_boot_notification`` handles ``BootNotification``, and so on, for the actions of
    every OCPP version (the session refuses an action its version does not have before
    any handler sees it).
    """
    from libv4e.protocol._convert import CATALOGUES

    table: dict[str, Handler] = {}
    for action in dict.fromkeys(a for c in CATALOGUES.values() for a in c.calls):
        name = "on_" + "".join("_" + c.lower() if c.isupper() else c for c in action).lstrip("_")
        method = getattr(obj, name, None)
        if method is not None:
            table[action] = method
    return table


class OcppConnection:
    """One OCPP-J link over a websocket, in either role.

    Run :meth:`serve` (the reader loop) in a nursery; while it runs, :meth:`call` sends
    calls (one at a time, callers queue in FIFO order) and inbound calls are dispatched to
    ``handlers``, one at a time in arrival order, under ``flow`` (see :mod:`._flow`).
    Nothing started by the connection outlives :meth:`serve`.
    """

    def __init__(
        self,
        ws: WebSocket,
        session: OcppSession,
        cp_id: str,
        *,
        observer: Observer | None = None,
        flow: FlowControl | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.ws = ws
        self.flow = flow or FlowControl()
        bucket = self.flow.bucket()
        self.buckets: list[TokenBucket] = [bucket] if bucket is not None else []
        """Every inbound call takes a token of each (the server may put buckets that
        outlive the connection here: per charger id, per address)."""
        self.session = session
        self.cp_id = cp_id
        self.observer = observer
        self._draining = False
        self._pacing = trio.CancelScope()
        """The wait for a token; cancelled when the connection starts draining."""
        self.remote: str | None = None
        """The peer's address (``host:port``) on a server's connections."""
        self.clock: Callable[[], dt.datetime] = clock or utcnow
        """What stamps the message records: the clock of the side that owns the connection
        (a central system's or a charger's, injectable: simulated time in a sandbox)."""
        self._call_lock = trio.Lock()
        self._answer: CallResultReceived | CallErrorReceived | None = None
        self._answer_ready: trio.Event | None = None
        self._closed = trio.Event()
        self._handlers: Mapping[str, Handler] = {}
        self._nursery: trio.Nursery | None = None
        self.handling: str | None = None
        """The unique id of the inbound call whose handler runs now (handlers run one at
        a time), e.g. to log its answer with the change it causes."""

    @property
    def version(self) -> OcppVersion:
        """The OCPP version the websocket handshake agreed on (the session's)."""
        return self.session.version

    @property
    def closed(self) -> bool:
        """True once the reader loop has ended (the websocket is closed)."""
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        """Wait until the connection has closed."""
        await self._closed.wait()

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None:
        """Close the websocket (close handshake, at most :data:`CLOSE_TIMEOUT` seconds,
        then the socket is closed anyway); :meth:`serve` then returns."""
        with trio.move_on_after(CLOSE_TIMEOUT):
            await self.ws.aclose(code, reason)

    async def ping(self, timeout: float) -> bool:
        """Whether the peer answers a websocket ping within ``timeout`` seconds."""
        if self.closed:
            return False
        with trio.move_on_after(timeout):
            try:
                await self.ws.ping()
            except ConnectionClosed:
                return False
            return True
        return False

    # -- calls we make ---------------------------------------------------------------------

    async def call(self, payload: Any, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> Any:
        """Send a call and return the peer's typed ``call_result`` payload.

        Waits its turn if another call is outstanding (the timeout counts from sending,
        and includes it: a peer that stops reading cannot hold the call longer; the
        connection is then closed, as a frame may be half written).
        Raises :class:`RemoteCallError` for a CALLERROR (or an invalid answer),
        :class:`CallTimeoutError` after ``timeout`` seconds, :class:`ConnectionLostError`
        if the connection closes first, and :class:`LocalProtocolError` for a payload we
        may not send.
        """
        async with self._call_lock:
            if self.closed:
                raise ConnectionLostError(f"connection to {self.cp_id} is closed")
            outgoing = self.session.send_call(payload)
            pending = self.session.pending_call
            self._answer, self._answer_ready = None, trio.Event()
            sent = False
            try:
                with trio.move_on_after(timeout):  # sending counts: a peer may stop reading
                    await self._send(outgoing)
                    sent = True
                    await _first_of(self._answer_ready.wait, self._closed.wait)
                answer = self._answer
            finally:
                if self.session.pending_call == pending:
                    self.session.abandon_call()
                self._answer_ready = None
            if not sent:  # a frame half written: the stream is unusable, close it
                log.warning(
                    "%s: %s not sent within %gs (the charger does not read); closing",
                    self.cp_id,
                    outgoing.action,
                    timeout,
                )
                await self.aclose(1011, "send timeout")
            if answer is None:
                if self.closed:
                    raise ConnectionLostError(
                        f"connection to {self.cp_id} closed before {outgoing.action} was answered"
                    )
                raise CallTimeoutError(outgoing.action or "", timeout)
            if isinstance(answer, CallErrorReceived):
                raise RemoteCallError(
                    answer.action, answer.code, answer.description, answer.details
                )
            return answer.payload

    async def _send(self, outgoing: Outgoing, *, logged: bool = False) -> None:
        try:
            await self.ws.send_message(outgoing.text)
        except ConnectionClosed as exc:
            raise ConnectionLostError(f"connection to {self.cp_id} is closed") from exc
        self._observe(
            Direction.OUT,
            outgoing.message_type,
            outgoing.unique_id,
            outgoing.action,
            outgoing.payload,
            logged=logged,
        )

    def _observe(
        self,
        direction: Direction,
        message_type: MessageType,
        unique_id: str,
        action: str | None,
        payload: dict[str, Any],
        late: bool = False,
        *,
        logged: bool = False,
    ) -> None:
        if self.observer is None:
            return
        record = MessageRecord(
            self.cp_id,
            direction,
            message_type,
            unique_id,
            action,
            payload,
            self.clock(),
            late,
            logged,
        )
        try:
            self.observer(record)
        except Exception:
            log.exception("message observer failed")

    # -- the reader loop -------------------------------------------------------------------

    async def serve(
        self,
        handlers: Mapping[str, Handler] | None = None,
        *,
        ping_interval: float | None = None,
        ping_timeout: float = 20.0,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Read frames until the websocket closes, dispatching inbound calls to ``handlers``.

        Inbound calls are handled one at a time by one dispatcher task; those that arrive
        meanwhile wait in a buffer of ``flow.backlog`` calls, and a peer that overflows it
        is disconnected with 1008. With ``ping_interval``, a websocket ping is sent that
        often and a peer that does not pong within ``ping_timeout`` is disconnected
        (half-open sockets). Returns when the connection is closed and the calls received
        before the close are handled (within ``flow.drain`` seconds: a StopTransaction
        sent just before the close is recorded, its answer is lost); ``Reply.after`` work
        still running is cancelled then.
        """
        self._handlers = handlers or {}
        calls_in, calls_out = trio.open_memory_channel[CallReceived](self.flow.backlog)
        drained = trio.Event()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if ping_interval:
                    nursery.start_soon(self._keepalive, ping_interval, ping_timeout)
                nursery.start_soon(self._dispatcher, calls_out, nursery, drained)
                task_status.started()
                with calls_in:  # closed at the end of the reading: the dispatcher drains
                    await self._read_loop(calls_in)
                self._draining = True  # what is left was received: handled unpaced
                self._pacing.cancel()
                with trio.move_on_after(self.flow.drain) as scope:
                    await drained.wait()
                if scope.cancelled_caught:
                    log.warning(
                        "%s: calls received before the close were not all handled within "
                        "%gs; dropped",
                        self.cp_id,
                        self.flow.drain,
                    )
                nursery.cancel_scope.cancel()
        finally:
            self._closed.set()
            self._nursery = None

    async def _read_loop(self, calls: trio.MemorySendChannel[CallReceived]) -> None:
        while True:
            try:
                text = await self.ws.get_message()
            except ConnectionClosed as exc:
                reason = exc.reason
                if reason is not None and reason.code == 1007:
                    log.warning(
                        "%s sent a text frame that is not UTF-8; closed with 1007", self.cp_id
                    )
                return
            event = self.session.receive(text)
            if isinstance(event, CallReceived):
                self._observe(
                    Direction.IN, MessageType.CALL, event.unique_id, event.action, event.raw
                )
                try:
                    calls.send_nowait(event)
                except trio.WouldBlock:
                    log.warning(
                        "%s sent more than %d calls without waiting for answers; closing with %d",
                        self.cp_id,
                        self.flow.backlog + 1,
                        CLOSE_FLOODING,
                    )
                    await self.aclose(CLOSE_FLOODING, "too many calls without waiting for answers")
                    return
            elif isinstance(event, CallResultReceived | CallErrorReceived):
                if isinstance(event, CallResultReceived):
                    self._observe(
                        Direction.IN,
                        MessageType.CALLRESULT,
                        event.unique_id,
                        event.action,
                        event.raw,
                    )
                elif not event.local:
                    self._observe(
                        Direction.IN,
                        MessageType.CALLERROR,
                        event.unique_id,
                        event.action,
                        {
                            "errorCode": event.code,
                            "errorDescription": event.description,
                            "errorDetails": event.details,
                        },
                    )
                self._answer = event
                if self._answer_ready is not None:
                    self._answer_ready.set()
            elif isinstance(event, LateAnswerReceived):
                log.info("%s answered %s after it had timed out", self.cp_id, event.action)
                self._observe(
                    Direction.IN,
                    event.message_type,
                    event.unique_id,
                    event.action,
                    event.raw,
                    late=True,
                )
            elif isinstance(event, CallRejected):
                self._observe(
                    Direction.IN,
                    MessageType.CALL,
                    event.unique_id,
                    event.action,
                    {"rejected": str(event.error.code), "text": _clip(text)},
                )
                await self._pace()  # refused calls cost a token too (the reader waits)
                await self._send_quietly(event.reply)
            elif isinstance(event, FrameDropped) and event.close:
                log.warning("%s keeps sending unreadable frames; closing", self.cp_id)
                await self.aclose(1002, "unreadable OCPP-J frames")
                return

    async def _dispatcher(
        self,
        calls: trio.MemoryReceiveChannel[CallReceived],
        nursery: trio.Nursery,
        drained: trio.Event,
    ) -> None:
        """Handle inbound calls one at a time, paced by the flow's token bucket, until
        the reader closes the channel and every call in it is handled; then set
        ``drained``."""
        afters = trio.Semaphore(MAX_AFTER_TASKS)
        async for event in calls:
            await self._pace()
            after = await self._dispatch(event)
            if after is not None:
                await afters.acquire()
                nursery.start_soon(self._run_after, after, event.action, afters)
        drained.set()

    async def _pace(self) -> None:
        """Wait for a token of each of the connection's buckets (every inbound call takes
        one of each). Not while draining: the calls left were received before the close
        (at most the backlog), and a closed connection must not linger paced."""
        if self.buckets and not self._draining:
            now = trio.current_time()
            delay = max(bucket.take(now) for bucket in self.buckets)
            if delay > 0:
                with self._pacing:
                    await trio.sleep(delay)
                self._pacing = trio.CancelScope()

    async def _dispatch(self, event: CallReceived) -> Callable[[], Awaitable[None]] | None:
        """Answer one call; returns its ``Reply.after`` work, if any, once answered."""
        handler = self._handlers.get(event.action)
        after = undelivered = None
        logged = False
        try:
            if handler is None:
                raise OcppError(ErrorCode.NOT_SUPPORTED, f"{event.action} is not supported here")
            self.handling = event.unique_id
            try:
                outcome = await handler(event.payload)
            finally:
                self.handling = None
            if isinstance(outcome, Reply):
                outcome, after, undelivered, logged = (
                    outcome.result,
                    outcome.after,
                    outcome.undelivered,
                    outcome.logged,
                )
            reply = self.session.send_result(event.unique_id, outcome)
        except Exception as exc:
            if isinstance(exc, StoreError):
                _STORE_FAILURES.error("could not store a charger's call: %s", exc)
            elif not isinstance(exc, OcppError):
                log.exception("%s: handler for %s failed", self.cp_id, event.action)
            if undelivered is not None:  # a result that could not be framed is not sent
                undelivered()
            reply, after, undelivered = self.session.send_failure(event.unique_id, exc), None, None
            logged = False
        if not await self._send_quietly(reply, logged=logged):
            if undelivered is not None:
                undelivered()
            return None
        return after

    async def _run_after(
        self, after: Callable[[], Awaitable[None]], action: str, limiter: trio.Semaphore
    ) -> None:
        try:
            await after()
        except Exception:  # a failing follow-up must not take the connection down
            log.exception("%s: work after answering %s failed", self.cp_id, action)
        finally:
            limiter.release()

    async def _send_quietly(self, outgoing: Outgoing, *, logged: bool = False) -> bool:
        try:
            await self._send(outgoing, logged=logged)
        except ConnectionLostError:
            log.info("%s: closed before %s was answered", self.cp_id, outgoing.action)
            return False
        return True

    async def _keepalive(self, interval: float, timeout: float) -> None:
        while True:
            await trio.sleep(interval)
            with trio.move_on_after(timeout) as scope:
                try:
                    await self.ws.ping()
                except ConnectionClosed:
                    return
            if scope.cancelled_caught:
                log.warning("%s did not answer a ping within %gs; closing", self.cp_id, timeout)
                await self.aclose(1011, "ping timeout")
                return


def _clip(text: str | bytes, limit: int = 500) -> str:
    if isinstance(text, bytes):
        return repr(text[:limit])
    return text if len(text) <= limit else text[:limit] + "…"


async def _first_of(*waits: Callable[[], Awaitable[Any]]) -> None:
    async with trio.open_nursery() as nursery:
        for wait in waits:

            async def run(wait: Callable[[], Awaitable[Any]] = wait) -> None:
                await wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(run)
