"""Serving an ASGI app with Hypercorn on Trio: the one place the apps bind HTTP."""

from __future__ import annotations

import functools
import logging
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Updated
from hypercorn.protocol import ProtocolWrapper
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.trio import serve as hypercorn_serve


def _idle_bound_after_http2_preface() -> None:
    """Keep Hypercorn's idle timer (``keep_alive_timeout``) running on an HTTP/2
    connection that has no request yet (slowloris). With prior knowledge the
    preface ``PRI * HTTP/2.0`` is first read as an HTTP/1.1 request, which stops the
    timer; HTTP/2 then restarts it only when a stream ends, so a client that sent the
    preface and then nothing, or its first HEADERS a byte at a time, was held with no
    bound. This wraps the protocol switch: once on HTTP/2 with no stream open, the timer
    runs again."""
    original = ProtocolWrapper.handle
    if getattr(original, "_v4e_patched", False):
        return

    async def handle(self: ProtocolWrapper, event: Any) -> None:
        was_h2 = isinstance(self.protocol, H2Protocol)
        await original(self, event)
        now = self.protocol
        if not was_h2 and isinstance(now, H2Protocol) and not now.closed and now.idle:
            await self.send(Updated(idle=True))

    handle._v4e_patched = True  # type: ignore[attr-defined]
    ProtocolWrapper.handle = handle  # type: ignore[method-assign]


_idle_bound_after_http2_preface()


def bind_address(host: str, port: int) -> str:
    """Hypercorn's bind string for ``host:port`` (IPv6 literals bracketed)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve_http(
    app: Any,
    host: str,
    port: int,
    *,
    fd: int | None = None,
    keep_alive_timeout: float | None = None,
    graceful_timeout: float | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` until cancelled, on ``host:port`` (or the listening socket ``fd``:
    several worker processes share one); reports the bound port."""
    config = HypercornConfig()
    config.bind = [f"fd://{fd}"] if fd is not None else [bind_address(host, port)]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    if keep_alive_timeout is not None:
        config.keep_alive_timeout = keep_alive_timeout
    if graceful_timeout is not None:
        config.graceful_timeout = graceful_timeout
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(functools.partial(hypercorn_serve, app, config))
        task_status.started(int(binds[0].rsplit(":", 1)[1]))
