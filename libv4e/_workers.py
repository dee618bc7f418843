"""Several worker processes serving the same ports (``v4e csms --workers N``).

The supervisor binds the OCPP and API ports once and passes the listening sockets to its
workers, which all accept on them: the kernel hands each new connection to one worker
(the pre-fork model of gunicorn and of Hypercorn's own ``--workers``). It works with
port 0, on every Unix, and needs no ``SO_REUSEPORT`` (with which the workers would bind
separately and the kernel would hash connections over them). The workers share nothing
but the database: a PostgreSQL store, where each worker is a cluster node
(see ``_cluster``).
"""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Callable, Sequence

import trio

log = logging.getLogger("libv4e.workers")


def listening_socket(host: str, port: int, *, backlog: int = 4096) -> socket.socket:
    """A TCP socket listening on ``host:port`` that child processes may inherit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(backlog)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


async def run_workers(
    command: Callable[[int], Sequence[str]],
    count: int,
    fds: Sequence[int],
    *,
    restart_delay: float = 1.0,
    stop_timeout: float = 10.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``count`` processes ``command(i)`` that inherit ``fds``, restarting any that
    exits, until cancelled; then stop each with SIGTERM (SIGKILL after ``stop_timeout``)."""

    async def keep_running(index: int) -> None:
        while True:
            proc = await trio.lowlevel.open_process(list(command(index)), pass_fds=tuple(fds))
            try:
                code = await proc.wait()
            finally:
                if proc.returncode is None:
                    with trio.CancelScope(shield=True):
                        proc.send_signal(signal.SIGTERM)
                        with trio.move_on_after(stop_timeout):
                            await proc.wait()
                        if proc.returncode is None:
                            proc.kill()
                            await proc.wait()
            log.warning("worker %d exited with code %s; restarting it", index, code)
            await trio.sleep(restart_delay)

    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(keep_running, index)
        task_status.started()
