"""OCPP-J over websockets: a server for central systems (:func:`serve_ocpp`), a client for
charge points (:func:`open_ocpp`).

Two transports sit behind one interface (:class:`Transport`): ``wsproto``, the lean one
(``_lean``, ``_upgrade``: driven directly on wsproto, the default), and ``trio-websocket``
(``_tws``, an adapter). Both serve by handing an upgrade request (``Handshake``: path,
subprotocols, headers, remote, certificate, ``accept``, ``reject``) to one callback, and
connect as an async context manager yielding an open websocket (``get_message``,
``send_message``, ``aclose``, ``closed``, ``subprotocol``); the OCPP layer above takes
one path whichever is used."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import logging
import re
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

import trio
from wsproto.utilities import RemoteProtocolError

from libv4e._errors import ConnectError as ConnectError
from libv4e.protocol._session import OcppSession, Role
from libv4e.protocol._validation import STRICT, ValidationPolicy
from libv4e.protocol._version import DEFAULT_PREFERENCE, OcppVersion, negotiate, versions
from libv4e.transport._connection import Handler, Observer, OcppConnection
from libv4e.transport._flow import FlowControl
from libv4e.transport._lean import LeanWebSocket
from libv4e.transport._upgrade import (
    Handshake,
    HandshakeRefused,
    WsTarget,
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


@dataclasses.dataclass(frozen=True)
class Transport:
    """A websocket transport: how to serve and how to connect (see the module)."""

    serve: Callable[..., Awaitable[None]]
    """``serve(on_handshake, host, port, *, ssl_context, handshake_timeout,
    max_message_size, handler_nursery, fd, task_status)``: reports the bound port."""
    connect: Callable[..., AbstractAsyncContextManager[Any]]
    """``connect(url, *, ssl_context, subprotocols, headers, connect_timeout,
    max_message_size)``: an open websocket; raises ``HandshakeRefused`` for an HTTP
    refusal, ``ConnectError``, ``OSError`` or ``trio.TooSlowError`` otherwise."""


async def _lean_serve(
    on_handshake: Callable[[Handshake], Awaitable[None]],
    host: str,
    port: int,
    *,
    max_message_size: int,
    **options: Any,
) -> None:
    # (the lean transport takes the size bound when a request is accepted)
    await serve_websockets(on_handshake, host, port, **options)


@asynccontextmanager
async def _lean_connect(
    url: str,
    *,
    ssl_context: ssl.SSLContext | None,
    subprotocols: list[str],
    headers: list[tuple[bytes, bytes]],
    connect_timeout: float,
    max_message_size: int,
) -> AsyncIterator[LeanWebSocket]:
    target = WsTarget.of(url)
    with trio.fail_after(connect_timeout):
        ws = await lean_connect(
            target.host,
            target.port,
            target.resource,
            ssl_context=target.tls(ssl_context),
            subprotocols=subprotocols,
            headers=headers,
            max_message_size=max_message_size,
        )
    try:
        yield ws
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            await ws.aclose()


def transport_named(name: str | None, *, client: bool = False) -> Transport:
    """The transport called ``name`` (one of :data:`TRANSPORTS`; None: the default)."""
    name = name or (DEFAULT_CLIENT_TRANSPORT if client else DEFAULT_TRANSPORT)
    if name == "wsproto":
        return Transport(_lean_serve, _lean_connect)
    if name == "trio-websocket":
        try:
            from libv4e.transport import _tws
        except ModuleNotFoundError as exc:
            if exc.name != "trio_websocket":
                raise
            raise ValueError(
                "the trio-websocket transport needs trio-websocket: "
                "pip install 'libv4e[trio-websocket]'"
            ) from None
        return Transport(_tws.serve, _tws.connect)
    raise ValueError(f"unknown transport {name!r}; one of {', '.join(TRANSPORTS)}")


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
    version: OcppVersion = OcppVersion.V16
    """The OCPP version the handshake will agree on if the charger is admitted."""

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
    clock: Callable[[], dt.datetime] | None = None,
    subprotocols: Sequence[OcppVersion | str] = DEFAULT_PREFERENCE,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve OCPP-J (2.0.1 and 1.6) at ``ws[s]://host:port/<any path>/<cp_id>`` as a
    central system.

    The version is negotiated from the websocket subprotocols the charger offers:
    ``subprotocols`` is the server's order of preference (default ``ocpp2.0.1`` first,
    then ``ocpp1.6``; ``["ocpp1.6"]`` serves 1.6 only) and the first of them the charger
    offered wins, whatever the charger's own order; a charger offering none of them is
    refused (HTTP 400). The connection's :attr:`OcppConnection.version` says which.

    For every charger that offers one of those subprotocols, has a valid id and passes
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
    worker processes share one). ``clock`` stamps each connection's message records
    (default: the wall clock).
    """
    adapter = transport_named(transport)
    preference = versions(subprotocols)
    required = (
        f"the {preference[0].subprotocol} websocket subprotocol is required"
        if len(preference) == 1
        else "one of the websocket subprotocols "
        + ", ".join(v.subprotocol for v in preference)
        + " is required"
    )

    async def check(
        path: str,
        offered: Sequence[str],
        headers: Callable[[], dict[str, str]],
        remote: str,
        certificate: Mapping[str, Any] | None = None,
    ) -> tuple[str, OcppVersion | None, Refusal | None]:
        cp_id = cp_id_from_path(path)
        if cp_id is None:
            return "", None, Refusal(404, "invalid or missing charge point id in the URL")
        version = negotiate(offered, preference)
        if version is None:
            return cp_id, None, Refusal(400, required)
        if admit is not None:
            request = ConnectionRequest(
                cp_id, path, headers(), remote, ssl_context is not None, certificate, version
            )
            return cp_id, version, await admit(request)
        return cp_id, version, None

    async def run(ws: Any, cp_id: str, remote: str, version: OcppVersion) -> None:
        chosen = policy(cp_id) if callable(policy) else policy
        session = OcppSession(Role.CENTRAL_SYSTEM, policy=chosen, version=version)
        conn = OcppConnection(ws, session, cp_id, flow=flow, clock=clock)
        conn.observer = observer
        conn.remote = remote
        try:
            await on_connect(conn)
        except Exception:  # one charger's failure must not stop the server or the others
            log.exception("%s: connection handler failed; closing it", cp_id)
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await conn.aclose(1011, "internal error")

    async def on_handshake(request: Handshake) -> None:
        cp_id, version, refusal = await check(
            request.path,
            request.subprotocols,
            lambda: request.headers,
            request.remote,
            request.certificate,
        )
        if refusal is not None or version is None:
            refusal = refusal or Refusal(400, required)
            log.info(
                "refused %s from %s: %s %s",
                request.path,
                request.remote,
                refusal.status,
                refusal.message,
            )
            await request.reject(refusal.status, *_refusal_parts(refusal))
            return
        ws = await request.accept(version.subprotocol, max_message_size)
        try:
            await run(ws, cp_id, request.remote, version)
        finally:
            with trio.move_on_after(handshake_timeout):
                await ws.aclose()

    await adapter.serve(
        on_handshake,
        host,
        port,
        ssl_context=ssl_context,
        handshake_timeout=handshake_timeout,
        max_message_size=max_message_size,
        handler_nursery=handler_nursery,
        fd=fd,
        task_status=task_status,
    )


def _refusal_parts(refusal: Refusal) -> tuple[list[tuple[bytes, bytes]], bytes]:
    headers = [(k.encode(), v.encode()) for k, v in refusal.headers]
    headers.append((b"content-type", b"text/plain"))
    return headers, refusal.message.encode()


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
    clock: Callable[[], dt.datetime] | None = None,
    version: OcppVersion | str = OcppVersion.V16,
) -> AsyncIterator[OcppConnection]:
    """Connect to a central system as charge point ``cp_id`` and yield the connection.

    ``url`` is the central system's base URL (``ws://host:9000``); ``cp_id`` is appended
    as the last path segment (leave it ``None`` if ``url`` already ends with it).
    ``version`` (default 1.6; ``"2.0.1"`` or :attr:`OcppVersion.V201`) is the one
    subprotocol offered and required: a server that does not agree to it fails with
    :class:`ConnectError`. ``basic_auth`` adds an HTTP Basic header
    (OCPP Security Profile 1/2). Inbound calls go to ``handlers`` while the block runs;
    leaving the block closes the connection. Raises :class:`ConnectError` if the
    handshake fails. ``transport`` is one of :data:`TRANSPORTS` (default
    :data:`DEFAULT_CLIENT_TRANSPORT`). ``on_close`` is called (synchronously, from the
    reader) once the connection has closed — e.g. to cancel work tied to it without a
    task of its own waiting for that. ``clock`` stamps the message records (default: the
    wall clock).
    """
    version = OcppVersion.parse(version)
    if cp_id is not None:
        url = url.rstrip("/") + "/" + urllib.parse.quote(cp_id, safe="")
    else:
        cp_id = urllib.parse.unquote(url.rstrip("/").rsplit("/", 1)[-1])
    headers: list[tuple[bytes, bytes]] = []
    if basic_auth is not None:
        token = base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
        headers.append((b"authorization", f"Basic {token}".encode()))
    adapter = transport_named(transport, client=True)
    opening = adapter.connect(
        url,
        ssl_context=ssl_context,
        subprotocols=[version.subprotocol],
        headers=headers,
        connect_timeout=connect_timeout,
        max_message_size=max_message_size,
    )
    async with AsyncExitStack() as stack:
        try:
            ws = await stack.enter_async_context(opening)
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
        if ws.subprotocol != version.subprotocol:
            raise ConnectError(f"{url} did not agree to the {version.subprotocol} subprotocol")
        session = OcppSession(role, policy=policy, version=version)
        conn = OcppConnection(ws, session, cp_id, observer=observer, clock=clock)
        async with _unwrapped_nursery() as nursery:
            await nursery.start(_serve_then_close, conn, handlers, ping_interval, on_close)
            try:
                yield conn
            finally:
                nursery.cancel_scope.cancel()


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
