"""The HTTP upgrade of the lean websocket (``_lean.py``): the client's :func:`connect`, the
server's :func:`serve_websockets` (handshake within a deadline, then a callback accepts or
refuses it with :class:`Handshake`)."""

from __future__ import annotations

import dataclasses
import functools
import socket
import ssl
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from wsproto import ConnectionType
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request
from wsproto.handshake import H11Handshake
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from libv4e._errors import ConnectError
from libv4e.transport._lean import RECEIVE_BYTES, LeanWebSocket


class Handshake:
    """A websocket upgrade request, read but not yet answered."""

    __slots__ = (
        "_handshake",
        "_stream",
        "_trailing",
        "certificate",
        "headers",
        "path",
        "remote",
        "subprotocols",
    )

    def __init__(
        self, stream: trio.abc.Stream, handshake: H11Handshake, request: Request, trailing: bytes
    ) -> None:
        self._stream = stream
        self._handshake: H11Handshake | None = handshake
        self._trailing = trailing
        self.path = request.target
        self.subprotocols = list(request.subprotocols)
        self.headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.extra_headers
        }
        self.remote = _remote(stream)
        self.certificate = peer_certificate(stream)

    async def accept(self, subprotocol: str, max_message_size: int) -> LeanWebSocket:
        handshake, self._handshake = self._handshake, None  # not kept for the connection's life
        assert handshake is not None
        data = handshake.send(AcceptConnection(subprotocol=subprotocol))
        conn = handshake.connection
        assert conn is not None
        if self._trailing:  # frames sent right behind the request (wsproto drops them)
            conn.receive_data(self._trailing)
        await self._stream.send_all(data)
        return LeanWebSocket(self._stream, conn, max_message_size)

    async def reject(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        headers = [*headers, (b"content-length", str(len(body)).encode())]
        assert self._handshake is not None
        data = self._handshake.send(
            RejectConnection(status_code=status, headers=headers, has_body=True)
        )
        data += self._handshake.send(RejectData(data=body, body_finished=True))
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


def peer_certificate(stream: object) -> dict[str, Any] | None:
    """The verified client certificate of a TLS stream (``ssl.getpeercert()``'s dict), or
    None: no TLS, or the client presented none."""
    if not isinstance(stream, trio.SSLStream):
        return None
    try:
        cert = stream.getpeercert()
    except (ValueError, trio.NeedHandshakeError):
        return None
    return cert or None


def _remote(stream: trio.abc.Stream) -> str:
    inner = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
    try:
        host, port = getattr(inner, "socket").getpeername()[:2]  # noqa: B009
    except (AttributeError, OSError):
        return "unknown"
    return f"{host}:{port}"


@dataclasses.dataclass(frozen=True, slots=True)
class WsTarget:
    """Where a ``ws://`` or ``wss://`` URL points: host, port, TLS or not, and the
    request target (path and query)."""

    host: str
    port: int
    secure: bool
    resource: str

    @classmethod
    def of(cls, url: str) -> WsTarget:
        """The target of ``url``; ConnectError if it is not a ws:// or wss:// URL."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ConnectError(f"{url} is not a ws:// or wss:// URL")
        secure = parts.scheme == "wss"
        resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.hostname, parts.port or (443 if secure else 80), secure, resource)

    def tls(self, ssl_context: ssl.SSLContext | None) -> ssl.SSLContext | None:
        """The TLS context to connect with: the one given, a default one for wss://."""
        if not self.secure:
            return None
        return ssl_context if ssl_context is not None else ssl.create_default_context()


class HandshakeRefused(Exception):
    """The server answered the websocket upgrade with an HTTP status instead."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        super().__init__(f"HTTP {status} {body[:200]!r}")
        self.status, self.headers, self.body = status, headers, body


async def connect(
    host: str,
    port: int,
    target: str,
    *,
    ssl_context: ssl.SSLContext | None,
    subprotocols: list[str],
    headers: list[tuple[bytes, bytes]],
    max_message_size: int,
) -> LeanWebSocket:
    """Open a websocket to ``host:port`` (TLS with ``ssl_context``) at path ``target``.

    Raises :class:`HandshakeRefused` for an HTTP refusal, ``OSError`` or
    ``trio.BrokenResourceError`` if the connection fails; the caller bounds the time.
    """
    stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
    try:
        if ssl_context is not None:
            stream = trio.SSLStream(stream, ssl_context, server_hostname=host)
            await stream.do_handshake()
        handshake = H11Handshake(ConnectionType.CLIENT)
        hostport = host if port in (80, 443) else f"{host}:{port}"
        request = Request(
            host=hostport, target=target, subprotocols=subprotocols, extra_headers=headers
        )
        await stream.send_all(handshake.send(request))
        refused: RejectConnection | None = None
        body = b""
        while True:
            data = await stream.receive_some(RECEIVE_BYTES)
            handshake.receive_data(data or None)  # type: ignore[arg-type]
            for event in handshake.events():
                if isinstance(event, AcceptConnection):
                    conn = handshake.connection
                    assert conn is not None
                    return LeanWebSocket(
                        stream,
                        conn,
                        max_message_size,
                        client=True,
                        subprotocol=event.subprotocol,
                    )
                if isinstance(event, RejectConnection):
                    refused = event
                    if not event.has_body:
                        raise HandshakeRefused(event.status_code, list(event.headers), b"")
                elif isinstance(event, RejectData):
                    body += event.data
                    if event.body_finished and refused is not None:
                        raise HandshakeRefused(refused.status_code, list(refused.headers), body)
            if not data:
                raise trio.BrokenResourceError("the server closed during the handshake")
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise


async def read_handshake(stream: trio.abc.Stream) -> Handshake | None:
    """Read a websocket upgrade request (``None`` if the peer leaves or sends no valid
    one; a malformed request is answered 400 first)."""
    handshake = H11Handshake(ConnectionType.SERVER)
    received = b""
    while True:
        try:
            data = await stream.receive_some(RECEIVE_BYTES)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return None
        if not data:
            return None
        received += data
        try:
            handshake.receive_data(data)  # type: ignore[arg-type]
        except RemoteProtocolError as exc:
            if exc.event_hint is not None:
                try:
                    await stream.send_all(handshake.send(exc.event_hint))
                except (trio.BrokenResourceError, LocalProtocolError):
                    pass
            return None
        for event in handshake.events():
            if isinstance(event, Request):  # a GET has no body: the rest is frames
                trailing = received[received.index(b"\r\n\r\n") + 4 :]
                return Handshake(stream, handshake, event, trailing)


async def serve_websockets(
    on_handshake: Callable[[Handshake], Awaitable[None]],
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None,
    handshake_timeout: float,
    handler_nursery: trio.Nursery | None = None,
    fd: int | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on ``host:port`` (TLS with ``ssl_context``); for every client that completes
    its TLS and HTTP handshake within ``handshake_timeout`` seconds, call ``on_handshake``
    (which accepts or rejects it). The TCP connection is closed when it returns. With
    ``fd``, accept on that already listening socket instead (worker processes share one)."""
    listeners: list[trio.abc.Listener[trio.abc.Stream]]
    if fd is not None:
        sock = trio.socket.from_stdlib_socket(socket.socket(fileno=fd))
        listeners = [trio.SocketListener(sock)]
    else:
        listeners = list(await trio.open_tcp_listeners(port, host=host))
    bound = listeners[0].socket.getsockname()[1]  # type: ignore[attr-defined]
    if ssl_context is not None:
        listeners = [
            trio.SSLListener(listener, ssl_context, https_compatible=False)
            for listener in listeners
        ]

    async def serve_one(stream: trio.abc.Stream) -> None:
        handshake = None
        try:
            with trio.move_on_after(handshake_timeout):  # slowloris: dropped at the deadline
                handshake = await read_handshake(stream)
            if handshake is not None:
                await on_handshake(handshake)
        finally:
            await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        await nursery.start(
            functools.partial(
                trio.serve_listeners, serve_one, listeners, handler_nursery=handler_nursery
            )
        )
        task_status.started(bound)
