"""trio-websocket as an optional adapter behind the lean transport's interface.

:func:`serve` has the signature of :func:`~libv4e.transport._upgrade.serve_websockets`
and hands ``on_handshake`` an object with the interface of
:class:`~libv4e.transport._upgrade.Handshake`; :func:`connect` yields an open client
websocket like the lean one. :func:`~libv4e.transport.serve_ocpp` and
:func:`~libv4e.transport.open_ocpp` then take one path whichever transport they use.

The hostile-input rules of the lean transport hold here too. trio-websocket has no hooks
for them, so its connections are a subclass (:class:`BoundedConnection`, used only by
this adapter's servers and clients: nothing global is patched):

* a frame wsproto cannot parse (a text frame that is not UTF-8: 1007; a malformed frame:
  1002) is answered with a close frame naming the code, not a silent TCP drop;
* a message may arrive in at most one piece per ``FRAGMENT_BYTES`` plus
  ``FRAGMENT_SLACK`` (else 1008), and pings get a pong only within ``PING_RATE`` per
  second after a burst of ``PING_BURST``;
* once a close is under way, the rest of a read is dropped (no pong in the closing state:
  wsproto refuses it);
* a failure in the handling of one connection ends that connection only.

trio-websocket is an optional dependency (``pip install 'libv4e[trio-websocket]'``; the
apps and the tests install it): this module is imported only when the transport is
chosen. Its connections raise libv4e's
:class:`~libv4e.transport._lean.ConnectionClosed`, as the lean ones do.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

import trio
from trio_websocket import (
    CloseReason,
    ConnectionClosed,
    ConnectionRejected,
    WebSocketConnection,
    WebSocketRequest,
    WebSocketServer,
)
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

from libv4e._errors import ConnectError
from libv4e.transport import _lean
from libv4e.transport._flow import TokenBucket
from libv4e.transport._lean import FRAGMENT_BYTES, FRAGMENT_SLACK, PING_BURST, PING_RATE
from libv4e.transport._upgrade import HandshakeRefused, WsTarget, peer_certificate

log = logging.getLogger("libv4e.transport")

DISCONNECT_TIMEOUT = 5.0
"""Seconds a closing handshake may take before the TCP connection is dropped."""


class BoundedConnection(WebSocketConnection):
    """A trio-websocket connection with the lean transport's bounds (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pieces = 0  # pieces of the message being received
        self._ping_budget = TokenBucket(PING_RATE, PING_BURST)

    # -- libv4e's websocket interface (``_lean.WebSocket``): its ConnectionClosed --------

    async def get_message(self) -> str | bytes:
        try:
            return await super().get_message()
        except ConnectionClosed as exc:
            raise _closed(exc) from exc

    async def send_message(self, message: str | bytes) -> None:
        try:
            await super().send_message(message)
        except ConnectionClosed as exc:
            raise _closed(exc) from exc

    async def ping(self, payload: bytes | None = None) -> None:
        try:
            await super().ping(payload)
        except ConnectionClosed as exc:
            raise _closed(exc) from exc

    # -- the bounds ------------------------------------------------------------------------

    async def _handle_close_connection_event(self, event: CloseConnection) -> None:
        # wsproto reports a frame it cannot parse as a CloseConnection while the
        # connection is still OPEN (a peer's real close frame comes as REMOTE_CLOSING)
        if self._wsproto.state is ConnectionState.OPEN:
            log.warning("closing a websocket with %s: %s", event.code, event.reason)
            with suppress(ConnectionClosed):
                await self._send(CloseConnection(code=event.code, reason=event.reason))
        await super()._handle_close_connection_event(event)

    async def _handle_message_event(self, event: BytesMessage | TextMessage) -> None:
        if not self._reader_running:
            return  # closed (1008, 1009): the rest of this read is dropped
        pieces = self._pieces + 1
        size = self._message_size + len(event.data)
        if pieces > 1 and pieces > size // FRAGMENT_BYTES + FRAGMENT_SLACK:
            self._pieces = 0
            self._message_size, self._message_parts = 0, []
            reason = "message in too many fragments"
            log.warning("closing a websocket with 1008: %s", reason)
            self._close_reason = CloseReason(1008, reason)
            with suppress(ConnectionClosed):
                await self._send(CloseConnection(code=1008, reason=reason))
            await self._recv_channel.aclose()
            self._reader_running = False
            return
        self._pieces = 0 if event.message_finished else pieces
        await super()._handle_message_event(event)

    async def _handle_ping_event(self, event: Ping) -> None:
        if self._wsproto.state is not ConnectionState.OPEN:
            return  # closing: a pong cannot be sent (wsproto raises)
        if self._ping_budget.take(trio.current_time()) <= 0:
            await super()._handle_ping_event(event)  # beyond the pace: no pong


class _Request:
    """A trio-websocket upgrade request behind the lean ``Handshake`` interface."""

    __slots__ = ("_request", "certificate", "headers", "path", "remote", "subprotocols")

    def __init__(self, request: WebSocketRequest, stream: trio.abc.Stream) -> None:
        self._request = request
        self.path = request.path
        self.subprotocols = list(request.proposed_subprotocols)
        self.headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers
        }
        self.remote = address(request.remote)
        self.certificate = peer_certificate(stream)

    async def accept(self, subprotocol: str, max_message_size: int) -> WebSocketConnection:
        # (the size bound is the connection's, set when the server made it)
        return await self._request.accept(subprotocol=subprotocol)

    async def reject(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        await self._request.reject(status, extra_headers=headers, body=body)


def _closed(exc: ConnectionClosed) -> _lean.ConnectionClosed:
    reason = exc.reason
    code = 1006 if reason is None else reason.code
    return _lean.ConnectionClosed(
        _lean.CloseReason(code, None if reason is None else reason.reason)
    )


def address(endpoint: Any) -> str:
    """``host:port`` of a trio-websocket Endpoint (its repr is verbose)."""
    host, port = getattr(endpoint, "address", None), getattr(endpoint, "port", None)
    if host is None:
        return str(endpoint)
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


class _Server(WebSocketServer):
    """trio-websocket's server making :class:`BoundedConnection` objects, handing
    ``on_handshake`` a :class:`_Request`, and ending only the connection that fails."""

    def __init__(
        self,
        on_handshake: Callable[[_Request], Awaitable[None]],
        listeners: Sequence[Any],
        *,
        handler_nursery: trio.Nursery | None,
        max_message_size: int,
        handshake_timeout: float,
    ) -> None:
        super().__init__(
            self._unused,
            listeners,
            handler_nursery=handler_nursery,
            max_message_size=max_message_size,
            connect_timeout=handshake_timeout,
            disconnect_timeout=DISCONNECT_TIMEOUT,
        )
        self._on_handshake = on_handshake

    @staticmethod
    async def _unused(request: WebSocketRequest) -> None:  # pragma: no cover
        raise AssertionError("_Server hands requests to on_handshake")

    async def _handle_connection(self, stream: trio.abc.Stream) -> None:
        try:
            async with trio.open_nursery() as nursery:
                connection = BoundedConnection(
                    stream,
                    WSConnection(ConnectionType.SERVER),
                    message_queue_size=self._message_queue_size,
                    max_message_size=self._max_message_size,
                    receive_buffer_size=self._receive_buffer_size,
                )
                nursery.start_soon(connection._reader_task)
                with trio.move_on_after(self._connect_timeout) as connect_scope:
                    request = await connection._get_request()
                if connect_scope.cancelled_caught:
                    nursery.cancel_scope.cancel()
                    await stream.aclose()
                    return
                try:
                    await self._on_handshake(_Request(request, stream))
                finally:
                    with trio.move_on_after(self._disconnect_timeout):
                        await connection.aclose()
        except Exception:  # nothing one peer sends may end the server (Cancelled passes)
            log.exception("a websocket connection failed in trio-websocket; closing it")
            await trio.aclose_forcefully(stream)


async def serve(
    on_handshake: Callable[[Any], Awaitable[None]],
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None,
    handshake_timeout: float,
    max_message_size: int,
    handler_nursery: trio.Nursery | None = None,
    fd: int | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on ``host:port`` (or the listening socket ``fd``) and hand every upgrade
    request to ``on_handshake`` (see the module); reports the bound port."""
    listeners: list[Any]
    if fd is not None:
        listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(socket.socket(fileno=fd)))]
    else:
        listeners = list(await trio.open_tcp_listeners(port, host=host))
    bound = listeners[0].socket.getsockname()[1]
    if ssl_context is not None:
        listeners = [trio.SSLListener(ln, ssl_context, https_compatible=True) for ln in listeners]
    server = _Server(
        on_handshake,
        listeners,
        handler_nursery=handler_nursery,
        max_message_size=max_message_size,
        handshake_timeout=handshake_timeout,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        task_status.started(bound)


@asynccontextmanager
async def connect(
    url: str,
    *,
    ssl_context: ssl.SSLContext | None,
    subprotocols: list[str],
    headers: list[tuple[bytes, bytes]],
    connect_timeout: float,
    max_message_size: int,
) -> AsyncIterator[WebSocketConnection]:
    """An open client websocket to ``url`` (closed when the block ends). Raises
    :class:`~libv4e.transport._upgrade.HandshakeRefused` for an HTTP refusal, and
    ``ConnectError`` when there is no websocket within ``connect_timeout`` seconds."""
    target = WsTarget.of(url)
    host, port, secure, resource = target.host, target.port, target.secure, target.resource
    ssl_context = target.tls(ssl_context)
    host_header = host if port in (80, 443) else f"{host}:{port}"
    stream: trio.abc.Stream | None = None
    opened = False
    try:
        async with trio.open_nursery() as nursery:
            with trio.move_on_after(connect_timeout) as connecting:
                if secure:
                    stream = await trio.open_ssl_over_tcp_stream(
                        host, port, ssl_context=ssl_context, https_compatible=True
                    )
                else:
                    stream = await trio.open_tcp_stream(host, port)
                ws = BoundedConnection(
                    stream,
                    WSConnection(ConnectionType.CLIENT),
                    host=host_header,
                    path=resource,
                    client_subprotocols=subprotocols,
                    client_extra_headers=headers,
                    max_message_size=max_message_size,
                )

                async def read() -> None:
                    await ws._reader_task()
                    if not opened and not ws._open_handshake.is_set():
                        raise ConnectError(f"{url} closed the connection during the handshake")

                nursery.start_soon(read)
                await ws._open_handshake.wait()
            if connecting.cancelled_caught:
                raise ConnectError(
                    f"cannot connect to {url}: no handshake within {connect_timeout:g} s"
                )
            opened = True
            try:
                yield ws
            finally:
                with trio.CancelScope(shield=True):
                    with trio.move_on_after(DISCONNECT_TIMEOUT):
                        await ws.aclose()
                    # trio-websocket's client never closes its own socket after a
                    # server-initiated close, which then leaks (ResourceWarning)
                    await trio.aclose_forcefully(ws._stream)
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:  # one error from the reader or the block: itself
        if len(group.exceptions) != 1:
            raise
        error = group.exceptions[0]
        if isinstance(error, ConnectionRejected) and not opened:
            raise HandshakeRefused(
                error.status_code, list(error.headers), error.body or b""
            ) from None
        raise error from None
    except ConnectionRejected as exc:
        if opened:
            raise
        raise HandshakeRefused(exc.status_code, list(exc.headers), exc.body or b"") from None
    finally:
        if stream is not None and not opened:  # a failed connect leaves no socket behind
            await trio.aclose_forcefully(stream)
