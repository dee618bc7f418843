"""OCPP-J over trio-websocket: a server for central systems, a client for charge points."""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import functools
import logging
import math
import re
import socket
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio
from trio_websocket import (
    CloseReason,
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    WebSocketRequest,
    WebSocketServer,
    open_websocket_url,
    serve_websocket,
)
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection
from wsproto.utilities import RemoteProtocolError

from libv4e._errors import ConnectError as ConnectError
from libv4e.protocol._session import OcppSession, Role
from libv4e.protocol._validation import STRICT, ValidationPolicy
from libv4e.transport._connection import SUBPROTOCOL, Handler, Observer, OcppConnection
from libv4e.transport._flow import FlowControl, TokenBucket
from libv4e.transport._lean import (
    FRAGMENT_BYTES,
    FRAGMENT_SLACK,
    PING_BURST,
    PING_RATE,
    LeanWebSocket,
)
from libv4e.transport._upgrade import (
    Handshake,
    HandshakeRefused,
    peer_certificate,
    serve_websockets,
)
from libv4e.transport._upgrade import connect as lean_connect

log = logging.getLogger("libv4e.transport")

DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024
TRANSPORTS = ("wsproto", "trio-websocket")
"""Server transports: ``wsproto`` (lean, driven directly on wsproto; the default, it is
about twice as fast, see docs/performance.md) and ``trio-websocket``."""
DEFAULT_TRANSPORT = "wsproto"
DEFAULT_CLIENT_TRANSPORT = "wsproto"
"""The charge point side's transport (:func:`open_ocpp`): also the lean one, as it halves
the simulator's memory per charger (no reader task, channel and lock per connection)."""
_CP_ID_RE = re.compile(r"[A-Za-z0-9*\-_=:+|@.]{1,48}")


def _close_frame_on_parse_failure() -> None:
    """Make trio-websocket answer a frame wsproto cannot parse (a text frame that is not
    UTF-8: 1007; a malformed frame: 1002) with a close frame naming the code, instead of
    dropping TCP silently. wsproto reports such frames as a CloseConnection event while
    the connection is still OPEN (a peer's real close frame arrives as REMOTE_CLOSING)."""
    original = WebSocketConnection._handle_close_connection_event
    if getattr(original, "_v4e_patched", False):
        return

    async def handle(self: WebSocketConnection, event: CloseConnection) -> None:
        if self._wsproto.state is ConnectionState.OPEN:
            log.warning("closing a websocket with %s: %s", event.code, event.reason)
            with contextlib.suppress(ConnectionClosed):
                await self._send(CloseConnection(code=event.code, reason=event.reason))
        await original(self, event)

    handle._v4e_patched = True  # type: ignore[attr-defined]
    WebSocketConnection._handle_close_connection_event = handle  # type: ignore[method-assign]


_close_frame_on_parse_failure()


def _budget_fragments_and_pings() -> None:
    """Give trio-websocket's reader the lean transport's bounds (``_lean.FRAGMENT_BYTES``,
    ``PING_RATE``): a message may arrive in at most one piece per FRAGMENT_BYTES bytes
    plus FRAGMENT_SLACK — beyond, the connection is closed with 1008, as on the lean
    transport (64 KiB in one-byte fragments cost 82 % of a core) — and pings get a pong
    only within PING_RATE per second after a burst of PING_BURST. trio-websocket has no
    hook for either: this wraps its two event handlers (class attributes its reader looks
    up when it starts), like the close handler above.

    Once a close is under way (this 1008, or trio-websocket's own 1009 for a message too
    big), the rest of the read is still handed to these handlers: a message is dropped,
    and a ping gets no pong — trio-websocket sent one, wsproto refused it in the closing
    state, and the error ended the whole server (a ping in the same write as a message
    past either limit)."""
    on_message = WebSocketConnection._handle_message_event
    on_ping = WebSocketConnection._handle_ping_event
    if getattr(on_message, "_v4e_patched", False):
        return

    async def handle_message(self: WebSocketConnection, event: Any) -> None:
        if not self._reader_running:
            return  # closed (1008, 1009): the rest of this read is dropped
        pieces = getattr(self, "_v4e_pieces", 0) + 1
        size = self._message_size + len(event.data)
        if pieces > 1 and pieces > size // FRAGMENT_BYTES + FRAGMENT_SLACK:
            self._v4e_pieces = 0  # type: ignore[attr-defined]
            self._message_size, self._message_parts = 0, []
            reason = "message in too many fragments"
            log.warning("closing a websocket with 1008: %s", reason)
            self._close_reason = CloseReason(1008, reason)
            with contextlib.suppress(ConnectionClosed):
                await self._send(CloseConnection(code=1008, reason=reason))
            await self._recv_channel.aclose()
            self._reader_running = False
            return
        self._v4e_pieces = 0 if event.message_finished else pieces  # type: ignore[attr-defined]
        await on_message(self, event)

    async def handle_ping(self: WebSocketConnection, event: Any) -> None:
        if self._wsproto.state is not ConnectionState.OPEN:
            return  # closing: a pong cannot be sent (wsproto raises)
        bucket = getattr(self, "_v4e_ping_bucket", None)
        if bucket is None:
            bucket = self._v4e_ping_bucket = TokenBucket(PING_RATE, PING_BURST)  # type: ignore[attr-defined]
        if bucket.take(trio.current_time()) <= 0:
            await on_ping(self, event)  # beyond the pace: no pong

    handle_message._v4e_patched = True  # type: ignore[attr-defined]
    WebSocketConnection._handle_message_event = handle_message  # type: ignore[method-assign]
    WebSocketConnection._handle_ping_event = handle_ping  # type: ignore[method-assign]


_budget_fragments_and_pings()


def _one_connection_fails_alone() -> None:
    """Make a failure inside trio-websocket's handling of one connection end that
    connection only. Its reader task runs beside the connection's handler (which has its
    own guard, :func:`serve_ocpp`), in a nursery the listener awaits, so an error there
    (a pong sent in the closing state was one) ended the whole server. This wraps the
    per-connection entry point: the error is logged and the stream closed."""
    original = WebSocketServer._handle_connection
    if getattr(original, "_v4e_patched", False):
        return

    async def handle_connection(self: WebSocketServer, stream: Any) -> None:
        try:
            await original(self, stream)
        except Exception:  # nothing one peer sends may end the server (Cancelled passes)
            log.exception("a websocket connection failed in trio-websocket; closing it")
            await trio.aclose_forcefully(stream)

    handle_connection._v4e_patched = True  # type: ignore[attr-defined]
    WebSocketServer._handle_connection = handle_connection  # type: ignore[method-assign]


_one_connection_fails_alone()


def valid_cp_id(cp_id: str) -> bool:
    """Whether ``cp_id`` is an acceptable charge point id: 1 to 48 characters of
    ``A-Z a-z 0-9 * - _ = : + | @ .`` (OCPP 2.0.1's identifierString, a safe default),
    the whole string (no final newline: ``EVSE001\n`` is not ``EVSE001``), and not only
    dots (``.`` and ``..`` are path segments, not names)."""
    return bool(_CP_ID_RE.fullmatch(cp_id)) and cp_id.strip(".") != ""


def cp_id_from_path(path: str) -> str | None:
    """The charge point id of a websocket request path (its last segment, decoded), or
    ``None`` if there is none or it is not valid."""
    path = path.split("?", 1)[0]
    segment = urllib.parse.unquote(path.rstrip("/").rsplit("/", 1)[-1]) if path else ""
    if not path.rstrip("/"):
        return None
    return segment if valid_cp_id(segment) else None


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionRequest:
    """A charger asking to connect, as an admission policy sees it."""

    cp_id: str
    path: str
    headers: Mapping[str, str]
    remote: str
    tls: bool
    client_certificate: Mapping[str, Any] | None = None
    """The client certificate the TLS layer verified against the trusted CA (the
    ``ssl.getpeercert()`` dict), or None."""

    @property
    def certificate_cn(self) -> str | None:
        """The subject commonName of :attr:`client_certificate`, if any."""
        if not self.client_certificate:
            return None
        for rdn in self.client_certificate.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    return str(value)
        return None

    def basic_auth(self) -> tuple[str, str] | None:
        """The (user, password) of an HTTP Basic ``Authorization`` header, if any."""
        value = self.headers.get("authorization", "")
        scheme, _, encoded = value.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return (user, password) if sep else None


@dataclasses.dataclass(frozen=True, slots=True)
class Refusal:
    """An admission policy's answer that refuses the handshake with an HTTP status."""

    status: int
    message: str
    headers: tuple[tuple[str, str], ...] = ()


Admission = Callable[[ConnectionRequest], Awaitable[Refusal | None]]
"""Decides whether a charger may connect: return ``None`` to accept."""


async def serve_ocpp(
    on_connect: Callable[[OcppConnection], Awaitable[None]],
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    admit: Admission | None = None,
    policy: ValidationPolicy | Callable[[str], ValidationPolicy] = STRICT,
    observer: Observer | None = None,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    handshake_timeout: float = 20.0,
    handler_nursery: trio.Nursery | None = None,
    transport: str | None = None,
    flow: FlowControl | None = None,
    fd: int | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve OCPP 1.6-J at ``ws[s]://host:port/<any path>/<cp_id>`` as a central system.

    For every charger that offers the ``ocpp1.6`` subprotocol, has a valid id and passes
    ``admit``, ``on_connect`` is called with its :class:`OcppConnection`; it must run
    ``await conn.serve(handlers)`` (directly or in a nursery of its own). The connection
    closes when ``on_connect`` returns. ``policy`` may be a function of the charge point
    id, for per-charger leniency. Frames over ``max_message_size`` bytes close the
    connection with code 1009; a client that has not finished its handshake (TLS and
    HTTP) within ``handshake_timeout`` seconds is dropped. ``flow`` limits each
    connection's inbound calls (see :class:`FlowControl`). Reports the bound port through
    ``task_status.started`` (so port 0 works) and runs until cancelled. ``transport`` is
    one of :data:`TRANSPORTS` (default :data:`DEFAULT_TRANSPORT`); both apply the same
    policy. With ``fd``, it accepts on that already listening socket instead (several
    worker processes share one).
    """
    transport = transport or DEFAULT_TRANSPORT
    if transport not in TRANSPORTS:
        raise ValueError(f"unknown transport {transport!r}; one of {', '.join(TRANSPORTS)}")

    async def check(
        path: str,
        subprotocols: Sequence[str],
        headers: Callable[[], dict[str, str]],
        remote: str,
        certificate: Mapping[str, Any] | None = None,
    ) -> tuple[str, Refusal | None]:
        cp_id = cp_id_from_path(path)
        if cp_id is None:
            return "", Refusal(404, "invalid or missing charge point id in the URL")
        if SUBPROTOCOL not in subprotocols:
            return cp_id, Refusal(400, "the ocpp1.6 websocket subprotocol is required")
        if admit is not None:
            request = ConnectionRequest(
                cp_id, path, headers(), remote, ssl_context is not None, certificate
            )
            return cp_id, await admit(request)
        return cp_id, None

    async def run(ws: Any, cp_id: str, remote: str) -> None:
        chosen = policy(cp_id) if callable(policy) else policy
        conn = OcppConnection(ws, OcppSession(Role.CENTRAL_SYSTEM, policy=chosen), cp_id, flow=flow)
        conn.observer = observer
        conn.remote = remote
        try:
            await on_connect(conn)
        except Exception:  # one charger's failure must not stop the server or the others
            log.exception("%s: connection handler failed; closing it", cp_id)
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await conn.aclose(1011, "internal error")

    if transport == "wsproto":

        async def on_handshake(request: Handshake) -> None:
            cp_id, refusal = await check(
                request.path,
                request.subprotocols,
                lambda: request.headers,
                request.remote,
                request.certificate,
            )
            if refusal is not None:
                log.info(
                    "refused %s from %s: %s %s",
                    request.path,
                    request.remote,
                    refusal.status,
                    refusal.message,
                )
                await request.reject(refusal.status, *_refusal_parts(refusal))
                return
            ws = await request.accept(SUBPROTOCOL, max_message_size)
            try:
                await run(ws, cp_id, request.remote)
            finally:
                with trio.move_on_after(handshake_timeout):
                    await ws.aclose()

        await serve_websockets(
            on_handshake,
            host,
            port,
            ssl_context=ssl_context,
            handshake_timeout=handshake_timeout,
            handler_nursery=handler_nursery,
            fd=fd,
            task_status=task_status,
        )
        return

    async def handle(request: WebSocketRequest) -> None:
        cp_id, refusal = await check(
            request.path,
            request.proposed_subprotocols,
            lambda: {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers},
            _address(request.remote),
            # trio-websocket keeps the stream private; the optional adapter reaches for it
            peer_certificate(getattr(getattr(request, "_connection", None), "_stream", None)),
        )
        if refusal is not None:
            await _reject(request, refusal)
            return
        await run(await request.accept(subprotocol=SUBPROTOCOL), cp_id, _address(request.remote))

    if fd is not None:
        sock = trio.socket.from_stdlib_socket(socket.socket(fileno=fd))
        listener: Any = trio.SocketListener(sock)
        if ssl_context is not None:
            listener = trio.SSLListener(listener, ssl_context, https_compatible=True)
        ws_server = WebSocketServer(
            handle,
            [listener],
            handler_nursery=handler_nursery,
            max_message_size=max_message_size,
            connect_timeout=handshake_timeout,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(ws_server.run)
            task_status.started(sock.getsockname()[1])
        return
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            functools.partial(
                serve_websocket,
                handle,
                host,
                port,
                ssl_context,
                handler_nursery=handler_nursery,
                max_message_size=max_message_size,
                connect_timeout=handshake_timeout,
            )
        )
        task_status.started(server.port)


def _refusal_parts(refusal: Refusal) -> tuple[list[tuple[bytes, bytes]], bytes]:
    headers = [(k.encode(), v.encode()) for k, v in refusal.headers]
    headers.append((b"content-type", b"text/plain"))
    return headers, refusal.message.encode()


def _address(endpoint: Any) -> str:
    """``host:port`` of a trio-websocket Endpoint (its repr is verbose)."""
    address, port = getattr(endpoint, "address", None), getattr(endpoint, "port", None)
    if address is None:
        return str(endpoint)
    return f"[{address}]:{port}" if ":" in str(address) else f"{address}:{port}"


async def _reject(request: WebSocketRequest, refusal: Refusal) -> None:
    log.info(
        "refused %s from %s: %s %s",
        request.path,
        _address(request.remote),
        refusal.status,
        refusal.message,
    )
    headers, body = _refusal_parts(refusal)
    await request.reject(refusal.status, extra_headers=headers, body=body)


@asynccontextmanager
async def open_ocpp(
    url: str,
    cp_id: str | None = None,
    *,
    handlers: Mapping[str, Handler] | None = None,
    role: Role = Role.CHARGE_POINT,
    policy: ValidationPolicy = STRICT,
    ssl_context: ssl.SSLContext | None = None,
    basic_auth: tuple[str, str] | None = None,
    observer: Observer | None = None,
    connect_timeout: float = 10.0,
    ping_interval: float | None = None,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    transport: str | None = None,
    on_close: Callable[[], object] | None = None,
) -> AsyncIterator[OcppConnection]:
    """Connect to a central system as charge point ``cp_id`` and yield the connection.

    ``url`` is the central system's base URL (``ws://host:9000``); ``cp_id`` is appended
    as the last path segment (leave it ``None`` if ``url`` already ends with it). The
    ``ocpp1.6`` subprotocol is required; ``basic_auth`` adds an HTTP Basic header
    (OCPP Security Profile 1/2). Inbound calls go to ``handlers`` while the block runs;
    leaving the block closes the connection. Raises :class:`ConnectError` if the
    handshake fails. ``transport`` is one of :data:`TRANSPORTS` (default
    :data:`DEFAULT_CLIENT_TRANSPORT`). ``on_close`` is called (synchronously, from the
    reader) once the connection has closed — e.g. to cancel work tied to it without a
    task of its own waiting for that.
    """
    if cp_id is not None:
        url = url.rstrip("/") + "/" + urllib.parse.quote(cp_id, safe="")
    else:
        cp_id = urllib.parse.unquote(url.rstrip("/").rsplit("/", 1)[-1])
    headers: list[tuple[bytes, bytes]] = []
    if basic_auth is not None:
        token = base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
        headers.append((b"authorization", f"Basic {token}".encode()))
    transport = transport or DEFAULT_CLIENT_TRANSPORT
    if transport not in TRANSPORTS:
        raise ValueError(f"unknown transport {transport!r}; one of {', '.join(TRANSPORTS)}")
    if transport == "wsproto":
        lean = await _lean_open(url, ssl_context, headers, connect_timeout, max_message_size)
        try:
            if lean.subprotocol != SUBPROTOCOL:
                raise ConnectError(f"{url} did not agree to the ocpp1.6 subprotocol")
            conn = OcppConnection(lean, OcppSession(role, policy=policy), cp_id, observer=observer)
            async with _unwrapped_nursery() as nursery:
                await nursery.start(_serve_then_close, conn, handlers, ping_interval, on_close)
                try:
                    yield conn
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            with trio.move_on_after(5):
                await lean.aclose()
        return
    entered = False
    # trio-websocket leaves its reader task waiting when a handshake times out; a
    # deadline of our own on the connect phase ends everything at once.
    with trio.CancelScope(deadline=trio.current_time() + connect_timeout + 1) as connecting:
        try:
            async with open_websocket_url(
                url,
                ssl_context,
                subprotocols=[SUBPROTOCOL],
                extra_headers=headers,
                connect_timeout=connect_timeout,
                disconnect_timeout=5,
                max_message_size=max_message_size,
            ) as ws:
                entered = True
                connecting.deadline = math.inf
                if ws.subprotocol != SUBPROTOCOL:
                    raise ConnectError(f"{url} did not agree to the ocpp1.6 subprotocol")
                conn = OcppConnection(
                    ws, OcppSession(role, policy=policy), cp_id, observer=observer
                )
                async with _unwrapped_nursery() as nursery:
                    await nursery.start(_serve_then_close, conn, handlers, ping_interval, on_close)
                    try:
                        yield conn
                    finally:
                        # the websocket is closed (gracefully unless we are being cancelled)
                        # when open_websocket_url exits; stop our reader loop now.
                        nursery.cancel_scope.cancel()
            await _close_tcp(ws)
        except ConnectionRejected as exc:
            if entered:
                raise
            raise ConnectError(
                f"{url} refused the connection: HTTP {exc.status_code} {exc.body!r}",
                exc.status_code,
            ) from exc
        except (HandshakeError, OSError, trio.TooSlowError) as exc:
            if entered:
                raise
            raise ConnectError(f"cannot connect to {url}: {exc!r}") from exc
    if connecting.cancelled_caught:
        raise ConnectError(f"cannot connect to {url}: no handshake within {connect_timeout:g} s")


async def _lean_open(
    url: str,
    ssl_context: ssl.SSLContext | None,
    headers: list[tuple[bytes, bytes]],
    connect_timeout: float,
    max_message_size: int,
) -> LeanWebSocket:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ConnectError(f"{url} is not a ws:// or wss:// URL")
    secure = parts.scheme == "wss"
    if secure and ssl_context is None:
        ssl_context = ssl.create_default_context()
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        with trio.fail_after(connect_timeout):
            return await lean_connect(
                parts.hostname,
                parts.port or (443 if secure else 80),
                target,
                ssl_context=ssl_context if secure else None,
                subprotocols=[SUBPROTOCOL],
                headers=headers,
                max_message_size=max_message_size,
            )
    except HandshakeRefused as exc:
        raise ConnectError(
            f"{url} refused the connection: HTTP {exc.status} {exc.body!r}", exc.status
        ) from exc
    except trio.TooSlowError as exc:
        raise ConnectError(
            f"cannot connect to {url}: no handshake within {connect_timeout:g} s"
        ) from exc
    except (OSError, trio.BrokenResourceError, RemoteProtocolError) as exc:
        raise ConnectError(f"cannot connect to {url}: {exc!r}") from exc


async def _close_tcp(ws: Any) -> None:
    # trio-websocket's client waits for the server to close TCP after a server-initiated
    # close but never closes its own socket object, which then leaks (ResourceWarning).
    stream = getattr(ws, "_stream", None)
    if stream is not None:
        with trio.CancelScope(shield=True):
            await stream.aclose()


async def _serve_then_close(
    conn: OcppConnection,
    handlers: Mapping[str, Handler] | None,
    ping_interval: float | None,
    on_close: Callable[[], object] | None,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    try:
        await conn.serve(handlers, ping_interval=ping_interval, task_status=task_status)
    finally:
        if on_close is not None:
            on_close()


@asynccontextmanager
async def _unwrapped_nursery() -> AsyncIterator[trio.Nursery]:
    """A nursery that re-raises a lone exception bare, so errors raised in a context
    manager's body reach the caller as themselves rather than in an ExceptionGroup."""
    try:
        async with trio.open_nursery() as nursery:
            yield nursery
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
