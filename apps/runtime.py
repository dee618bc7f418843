"""What every ``v4e`` subcommand shares: options that fall back to environment variables,
logging, running until a signal, the ``--db`` check, and turning a known startup failure
into one line."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import ssl
import sys
from collections.abc import Callable
from typing import Any

import trio

ENV_PREFIX = "V4E_"


def env_default(name: str, default: Any) -> Any:
    return os.environ.get(ENV_PREFIX + name, default)


def add(
    parser: argparse.ArgumentParser, flag: str, env: str, default: Any, help: str, **kw: Any
) -> None:
    parser.add_argument(
        flag,
        default=env_default(env, default),
        help=f"{help} (env {ENV_PREFIX}{env}; default: %(default)s)",
        **kw,
    )


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "httpcore", "hypercorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.root.level))


async def until_signal(main: Callable[[trio.Nursery], Any]) -> None:
    """Run ``main(nursery)``; SIGTERM and Ctrl-C end it cleanly."""
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    print("\nshutting down…", file=sys.stderr)
                    nursery.cancel_scope.cancel()
                    return

        nursery.start_soon(watch)
        await main(nursery)


def check_db(args: argparse.Namespace) -> str | None:
    """One line saying what is wrong with --db / --workers, or None."""
    from libv4e.csms import is_postgres_url, store_for

    try:
        store_for(args.db)
    except ValueError as exc:
        return str(exc)
    workers = getattr(args, "workers", 1)
    if workers < 1:
        return "--workers: must be at least 1"
    if workers > 1 and not is_postgres_url(args.db):
        return (
            "--workers: several workers share their state in PostgreSQL: use --db postgresql://..."
        )
    return None


def raise_fd_limit() -> tuple[int, int]:
    """Raise this process's soft limit of open files to its hard limit (a CSMS holds one
    per charger: the inherited 1,024 let only 1,011 of 1,100 chargers connect); returns
    (soft, hard) after."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            logging.getLogger("libv4e").warning("could not raise the open-files limit")
    return soft, hard


class OncePerInterval(logging.Filter):
    """Lets one record through per ``interval`` seconds, then one saying how many were
    left out: trio logs every failed accept (EMFILE when out of file descriptors), with a
    traceback, many times a second."""

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self.interval = interval
        self._next = 0.0
        self._dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        import time

        now = time.monotonic()
        if now < self._next:
            self._dropped += 1
            return False
        self._next = now + self.interval
        if self._dropped:
            record.msg = f"{record.msg} ({self._dropped} more like it in the last interval)"
            self._dropped = 0
        record.exc_info = None  # the traceback says nothing the message does not
        return True


def run_server(args: argparse.Namespace, main: Callable[[trio.Nursery], Any]) -> int:
    """Run a server command; a startup failure (a port in use, a database that cannot be
    opened or written) is one line naming the problem and the option to change, not a
    traceback. Exit status 2 then. The open-files limit is raised first, and failed
    accepts (out of file descriptors) are logged once a minute."""
    raise_fd_limit()
    accepts = logging.getLogger("trio.serve_listeners")
    if not any(isinstance(f, OncePerInterval) for f in accepts.filters):
        accepts.addFilter(OncePerInterval())
    try:
        trio.run(until_signal, main)
    except (Exception, BaseExceptionGroup) as exc:
        message = startup_error(exc, args)
        if message is None:
            raise
        print(f"v4e: {message}", file=sys.stderr)
        return 2
    return 0


class StartupProblem(Exception):
    """A startup failure whose message is already the one line to print (naming the fix)."""


def startup_error(exc: BaseException, args: argparse.Namespace) -> str | None:
    """The one-line explanation of a known startup failure (None: not one we know)."""
    import errno

    from libv4e import StoreError

    from .csms.workers import WorkersFailed

    leaves = list(_leaves(exc))
    for leaf in leaves:
        if isinstance(leaf, StartupProblem):
            return str(leaf)
        if isinstance(leaf, WorkersFailed):
            return str(leaf)
        if isinstance(leaf, StoreError):
            return f"{leaf} — check the database file or choose another with --db (V4E_DB)"
        if isinstance(leaf, OSError) and leaf.errno in (errno.EADDRINUSE, errno.EACCES):
            problem = "is already in use" if leaf.errno == errno.EADDRINUSE else "is not allowed"
            busy = [
                f"port {port} {problem} — choose another with {flag} "
                f"(V4E_{flag[2:].upper().replace('-', '_')})"
                for flag, port in (("--ws-port", args.ws_port), ("--api-port", args.api_port))
                if port and not _can_bind(args.host, port)
            ]
            if busy:
                return "cannot listen: " + "; ".join(busy)
        if isinstance(leaf, OSError) and leaf.filename is not None:
            return (
                f"{leaf.strerror}: {leaf.filename} — check --db (V4E_DB) and the "
                "permissions of its directory"
            )
        if isinstance(leaf, OSError) and leaf.errno == errno.EADDRNOTAVAIL:
            return f"cannot listen: {leaf} — check --host (V4E_HOST)"
        if isinstance(leaf, ssl.SSLError | FileNotFoundError) and getattr(args, "tls_cert", None):
            return f"cannot load the TLS certificate: {leaf} — check --tls-cert / --tls-key"
    return None


def _can_bind(host: str, port: int) -> bool:
    import socket

    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1" if host == "localhost" else host, port))
    except OSError:
        return False
    return True


def _leaves(exc: BaseException) -> Any:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc
        if exc.__cause__ is not None:
            yield from _leaves(exc.__cause__)


def client_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    ca = getattr(args, "ca_cert", None)
    return ssl.create_default_context(cafile=ca) if ca else None
