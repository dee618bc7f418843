"""A lean websocket server driven directly on wsproto, from Trio streams.

trio-websocket (the layer libv4e used before) runs a reader task per connection that
parses frames with wsproto and hands every message over a memory channel, and takes a
``trio.Lock`` around every send. Under load those hand-offs, not OCPP or Python, set the
ceiling (docs/performance.md). Here the connection's own reader (``OcppConnection``'s
read loop calling :meth:`LeanWebSocket.get_message`) reads ``receive_some``, feeds
wsproto and returns the message; sends are one ``send_all`` of the frame wsproto built.
There is no extra task, no channel and no lock: concurrent writers (the reader answering
a ping while a handler sends a result) are serialised by a flag, and wait on a parking
lot only when they actually collide.

:class:`LeanWebSocket` offers what :class:`~libv4e.OcppConnection` uses of a websocket
(:class:`WebSocket`: ``get_message``, ``send_message``, ``ping``, ``aclose``, ``closed``)
and raises :class:`ConnectionClosed` once it is closed; the trio-websocket adapter
(``_tws``) offers the same, so the two transports are interchangeable. The HTTP upgrade
that opens one (client and server) is in ``_upgrade.py``.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
from typing import Protocol

import trio
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from libv4e.transport._flow import TokenBucket

log = logging.getLogger("libv4e.transport")

RECEIVE_BYTES = 16 * 1024
_TOO_BIG = b"\x00too big"  # a sentinel (compared by identity)
_TOO_FRAGMENTED = b"\x00too fragmented"  # a sentinel (compared by identity)
FRAGMENT_BYTES = 64
"""A message may come in as many pieces (frames, or parts of frames as they arrive) as
one per this many bytes, plus FRAGMENT_SLACK: 64 KiB in one-byte fragments cost 82 % of
a core at 1.7 messages/s."""
FRAGMENT_SLACK = 64
PING_RATE, PING_BURST = 5.0, 20
"""Pings answered per second after a burst; the ones beyond get no pong (38,000 pongs/s
came from four connections)."""
CLOSE_TIMEOUT = 5.0
"""Seconds to wait for the peer's answer to our close frame before dropping TCP."""


@dataclasses.dataclass(frozen=True, slots=True)
class CloseReason:
    """Why a websocket closed: the close code (RFC 6455; 1006: no close frame) and the
    reason the closing side gave, if any."""

    code: int
    reason: str | None = None


class ConnectionClosed(Exception):
    """The websocket is closed (``reason`` says how); raised by a websocket of either
    transport once nothing more can be sent or received."""

    def __init__(self, reason: CloseReason) -> None:
        super().__init__(reason)
        self.reason = reason


class WebSocket(Protocol):
    """What :class:`~libv4e.OcppConnection` needs of a websocket (either transport)."""

    @property
    def closed(self) -> CloseReason | None: ...

    async def get_message(self) -> str | bytes: ...

    async def send_message(self, message: str | bytes) -> None: ...

    async def ping(self, payload: bytes | None = None) -> None: ...

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None: ...


class LeanWebSocket:
    """One accepted websocket on a Trio stream (server side).

    Exactly one task reads (calls :meth:`get_message`); any task may send.
    """

    __slots__ = (
        "_close_done",
        "_close_reason",
        "_conn",
        "_fragments",
        "_fragments_size",
        "_fresh",
        "_inbox",
        "_max_message_size",
        "_pieces",
        "_ping_bucket",
        "_pings",
        "_reading",
        "_send_waiters",
        "_sending",
        "_stream",
        "client",
        "subprotocol",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        conn: Connection,
        max_message_size: int,
        *,
        client: bool = False,
        subprotocol: str | None = None,
    ) -> None:
        self.client = client
        self.subprotocol = subprotocol
        self._stream = stream
        self._conn = conn
        self._fresh = True
        self._max_message_size = max_message_size
        self._close_reason: CloseReason | None = None
        self._inbox: collections.deque[str | bytes] | None = None  # made when needed
        self._fragments: list[str | bytes] | None = None
        self._fragments_size = 0
        self._pieces = 0
        self._ping_bucket = TokenBucket(PING_RATE, PING_BURST)
        self._pings: dict[bytes, trio.Event] | None = None
        self._close_done: trio.Event | None = None
        self._reading = False
        self._sending = False
        self._send_waiters: trio.lowlevel.ParkingLot | None = None

    @property
    def closed(self) -> CloseReason | None:
        """``None`` while open; then the close code and reason."""
        return self._close_reason

    # -- reading ---------------------------------------------------------------------------

    async def get_message(self) -> str | bytes:
        """The next message; raises ``ConnectionClosed`` once the connection is closed."""
        while True:
            if self._inbox:
                return self._inbox.popleft()
            if self._close_reason is not None:
                raise ConnectionClosed(self._close_reason)
            message = await self._read_some()
            if message is not None:
                return message

    async def _read_some(self) -> str | bytes | None:
        """Read once from the stream, handle the events; the first complete message (more
        are queued) or ``None``."""
        conn = self._conn
        if self._fresh:
            # bytes that came with the HTTP handshake are already in wsproto
            self._fresh = False
            first = await self._handle_events()
            if first is not None or self._close_reason is not None:
                return first
        self._reading = True
        try:
            data = await self._receive()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            data = b""
        finally:
            self._reading = False
        if not data:
            self._abort(1006, None)
            return None
        if conn.state is ConnectionState.CLOSED:
            return None
        if not self._inbox:
            messages = _simple_text_frames(data, self._max_message_size, not self.client)
            if messages is not None and _wsproto_idle(conn):
                # the common case, without wsproto's general parser: whole, masked,
                # final text frames of valid UTF-8 (anything else goes to wsproto)
                if len(messages) > 1:
                    self._inbox = collections.deque(messages[1:])
                return messages[0]
        try:
            conn.receive_data(data)
        except RemoteProtocolError:
            self._abort(1002, "protocol error")
            return None
        return await self._handle_events()

    async def _handle_events(self) -> str | bytes | None:
        first: str | bytes | None = None
        for event in self._conn.events():
            if type(event) is TextMessage or type(event) is BytesMessage:
                message = self._on_message(event)
                if message is None:
                    continue
                if message is _TOO_BIG or message is _TOO_FRAGMENTED:
                    if message is _TOO_BIG:
                        await self._send_close(1009, "message too big")
                    else:
                        await self._send_close(1008, "message in too many fragments")
                    if self._close_done is not None:
                        self._close_done.set()
                    await trio.aclose_forcefully(self._stream)
                    return None
                if first is None:
                    first = message
                else:
                    if self._inbox is None:
                        self._inbox = collections.deque()
                    self._inbox.append(message)
            elif type(event) is Ping:
                if self._ping_bucket.take(trio.current_time()) <= 0:
                    await self._write_event(event.response())  # beyond the pace: no pong
            elif type(event) is Pong:
                self._on_pong(event.payload)
            elif type(event) is CloseConnection:
                await self._on_close(event)
                return first
        return first

    async def _receive(self) -> bytes:
        stream = self._stream
        if type(stream) is not trio.SocketStream:
            return await stream.receive_some(RECEIVE_BYTES)  # type: ignore[return-value]
        # SocketStream.receive_some, minus its wrappers: read if data is there, else wait
        # until it is. Exactly one yield to the scheduler either way (as any trio
        # operation makes): the wait, or a checkpoint if the data was already there.
        sock = stream.socket
        waited = False
        while True:
            fd = sock.fileno()
            if fd < 0:
                return b""
            try:
                data = os.read(fd, RECEIVE_BYTES)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(sock)
                waited = True
                continue
            if not waited:
                await trio.lowlevel.checkpoint()
            return data

    def _on_message(self, event: TextMessage | BytesMessage) -> str | bytes | None:
        data: str | bytes = event.data  # type: ignore[assignment]  # bytearray never here
        if event.message_finished and self._fragments is None:
            return data if len(data) <= self._max_message_size else _TOO_BIG
        if self._fragments is None:
            self._fragments, self._pieces = [], 0
        self._fragments.append(data)
        self._fragments_size += len(data)
        self._pieces += 1
        if self._fragments_size > self._max_message_size:
            self._fragments, self._fragments_size = None, 0
            return _TOO_BIG
        if self._pieces > self._fragments_size // FRAGMENT_BYTES + FRAGMENT_SLACK:
            self._fragments, self._fragments_size = None, 0
            return _TOO_FRAGMENTED
        if not event.message_finished:
            return None
        parts, self._fragments, self._fragments_size = self._fragments, None, 0
        return "".join(parts) if isinstance(data, str) else b"".join(parts)  # type: ignore[arg-type]

    async def _on_close(self, event: CloseConnection) -> None:
        conn = self._conn
        if conn.state is ConnectionState.REMOTE_CLOSING:
            # the peer closed: answer, then drop TCP (a server closes first, RFC 6455 7.1.1)
            reason = CloseReason(event.code, event.reason or None)
            self._close_reason = reason
            try:
                await self._write_bytes(conn.send(event.response()))
            except ConnectionClosed:
                pass
            self._close_reason = reason
        elif conn.state is ConnectionState.OPEN:
            # wsproto found a bad frame (e.g. 1007, invalid UTF-8): tell the peer why
            await self._send_close(event.code, event.reason or None)
        # else: the answer to our own close
        if self._close_reason is None:
            self._close_reason = CloseReason(event.code, event.reason or None)
        if self._close_done is not None:
            self._close_done.set()
        self._release_pings()
        await trio.aclose_forcefully(self._stream)

    def _abort(self, code: int, reason: str | None) -> None:
        if self._close_reason is None:
            self._close_reason = CloseReason(code, reason)
        if self._close_done is not None:
            self._close_done.set()
        self._release_pings()

    def _release_pings(self) -> None:
        """Wake every ping still waiting: no pong will come (they raise ConnectionClosed)."""
        if self._pings:
            for event in self._pings.values():
                event.set()

    def _on_pong(self, payload: bytes | bytearray) -> None:
        pings = self._pings
        if not pings or bytes(payload) not in pings:
            return
        # a pong answers its ping and every earlier one (RFC 6455 5.5.3)
        for key in list(pings):
            pings.pop(key).set()
            if key == payload:
                break

    # -- writing ---------------------------------------------------------------------------

    async def send_message(self, message: str | bytes) -> None:
        """Send one text (``str``) or binary (``bytes``) message."""
        if self._close_reason is not None or self._conn.state is not ConnectionState.OPEN:
            raise ConnectionClosed(self._close_reason or CloseReason(1006, None))
        if self.client:
            data = self._conn.send(
                TextMessage(data=message)
                if isinstance(message, str)
                else BytesMessage(data=message)
            )
        elif isinstance(message, str):
            # what wsproto's send(TextMessage) builds for a server without extensions
            # (one final, unmasked text frame), without its general frame writer
            payload = message.encode()
            n = len(payload)
            if n < 126:
                data = bytes((0x81, n)) + payload
            elif n < 65536:
                data = b"\x81\x7e" + n.to_bytes(2, "big") + payload
            else:
                data = b"\x81\x7f" + n.to_bytes(8, "big") + payload
        else:
            data = self._conn.send(BytesMessage(data=message))
        await self._write_bytes(data)

    async def ping(self, payload: bytes | None = None) -> None:
        """Send a ping and wait for its pong."""
        if self._close_reason is not None:
            raise ConnectionClosed(self._close_reason)
        if payload is None:
            payload = os.urandom(4)
        if self._pings is None:
            self._pings = {}
        if payload in self._pings:
            raise ValueError(f"a ping with payload {payload!r} is already waiting")
        event = self._pings[payload] = trio.Event()
        try:
            await self._write_event(Ping(payload=payload))
            await event.wait()
        finally:
            if self._pings.get(payload) is event:
                del self._pings[payload]
        if self._close_reason is not None:
            raise ConnectionClosed(self._close_reason)

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None:
        """Close (send a close frame and wait, within a bound, for the peer's); idempotent."""
        try:
            if self._close_reason is None and self._conn.state is ConnectionState.OPEN:
                self._close_done = trio.Event()
                await self._send_close(code, reason)
                with trio.move_on_after(CLOSE_TIMEOUT):
                    if self._reading:  # the reader will see the answer
                        await self._close_done.wait()
                    else:
                        while not self._close_done.is_set():
                            await self._read_some()
        finally:
            if self._close_reason is None:
                self._close_reason = CloseReason(code, reason)
            self._release_pings()
            await trio.aclose_forcefully(self._stream)

    async def _send_close(self, code: int, reason: str | None) -> None:
        self._close_reason = CloseReason(code, reason)
        try:
            await self._write_bytes(self._conn.send(CloseConnection(code=code, reason=reason)))
        except (ConnectionClosed, LocalProtocolError):
            pass

    async def _write_event(self, event: Ping | Pong) -> None:
        try:
            data = self._conn.send(event)
        except LocalProtocolError:
            return
        try:
            await self._write_bytes(data)
        except ConnectionClosed:
            pass

    async def _write_bytes(self, data: bytes) -> None:
        if not data:
            return
        stream = self._stream
        if not self._sending and type(stream) is trio.SocketStream:
            # Fast path: the kernel usually takes a small frame at once. Writing it
            # directly skips SocketStream's conflict detector and the scheduler round
            # trip every trio send makes, even when it need not wait. The fd is read
            # anew each time (-1 once closed), so a reused descriptor is never written.
            fd = stream.socket.fileno()
            if fd < 0:
                self._abort(1006, None)
                raise ConnectionClosed(self._close_reason or CloseReason(1006, None))
            try:
                sent = os.write(fd, data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                self._abort(1006, None)
                raise ConnectionClosed(self._close_reason or CloseReason(1006, None)) from exc
            if sent == len(data):
                return
            data = data[sent:]
        while self._sending:  # rare: another task is mid-send_all
            if self._send_waiters is None:
                self._send_waiters = trio.lowlevel.ParkingLot()
            await self._send_waiters.park()
        self._sending = True
        try:
            await stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._abort(1006, None)
            raise ConnectionClosed(self._close_reason or CloseReason(1006, None)) from exc
        finally:
            self._sending = False
            if self._send_waiters:
                self._send_waiters.unpark()


def _wsproto_idle(conn: Connection) -> bool:
    """Whether wsproto holds no partial frame or message (so the next bytes start a new
    frame). Reads wsproto internals; if they change, the answer is False (slow path)."""
    try:
        proto = conn._proto
        decoder = proto._frame_decoder
        return (
            decoder.header is None
            and not decoder.buffer.buffer
            and proto._message_decoder.opcode is None
        )
    except AttributeError:  # pragma: no cover - another wsproto
        return False


def _simple_text_frames(data: bytes, limit: int, masked: bool = True) -> list[str] | None:
    """The messages of ``data`` if it is nothing but whole, final text frames of at most
    ``limit`` bytes, no reserved bits, masked if ``masked`` (frames from a client) and not
    otherwise, and valid UTF-8; else ``None``."""
    messages: list[str] = []
    i, end = 0, len(data)
    while i < end:
        if end - i < 2 or data[i] != 0x81:
            return None
        n = data[i + 1]
        if (n >= 0x80) is not masked:  # client frames are masked, server frames not
            return None
        n &= 0x7F
        i += 2
        if n == 126:
            n = int.from_bytes(data[i : i + 2], "big")
            i += 2
        elif n == 127:
            return None
        if not masked:
            if n > limit or i + n > end:
                return None
            try:
                messages.append(data[i : i + n].decode())
            except UnicodeDecodeError:
                return None
            i += n
            continue
        if n > limit or i + 4 + n > end:
            return None
        mask = data[i : i + 4]
        i += 4
        payload = data[i : i + n]
        i += n
        key = int.from_bytes(mask * (n // 4 + 1), "little") & ((1 << (8 * n)) - 1)
        plain = (int.from_bytes(payload, "little") ^ key).to_bytes(n, "little")
        try:
            messages.append(plain.decode())
        except UnicodeDecodeError:
            return None
    return messages or None
