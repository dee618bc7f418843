"""Serving an ASGI app with Hypercorn on Trio: the one place the apps bind HTTP."""

from __future__ import annotations

import functools
import logging
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve


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
