"""Several worker processes serving the same ports (``v4e csms --workers N``).

Each worker binds the OCPP and API ports itself with ``SO_REUSEPORT`` and listens: the
kernel spreads new connections over the listening workers by a hash of the client's
address and port, so chargers divide evenly and a busy worker does not take them all (as
it may with one shared accepting socket). The supervisor first binds the ports with
``SO_REUSEPORT`` without listening (a bound socket that does not listen receives no
connections), so that port 0 resolves to one port for every worker and the ports stay
reserved while workers restart. The workers share nothing but the database: a PostgreSQL
store, where each worker is a cluster node (see ``_cluster``).
"""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Callable, Sequence

import trio

log = logging.getLogger("libv4e.workers")


class WorkersFailed(Exception):
    """A worker keeps exiting right after it starts (e.g. the database is unreachable)."""


def reuse_port_socket(
    host: str, port: int, *, listen: bool = True, backlog: int = 4096
) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT`` (listening if ``listen``:
    only listening sockets receive connections)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host.strip("[]"), port))
        if listen:
            sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


async def run_workers(
    command: Callable[[int], Sequence[str]],
    count: int,
    *,
    restart_delay: float = 1.0,
    stop_timeout: float = 10.0,
    early: float = 10.0,
    give_up_after: int = 3,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``count`` processes ``command(i)``, restarting any that exits, until cancelled;
    then stop each with SIGTERM (SIGKILL after ``stop_timeout``). Raises WorkersFailed when
    a worker fails ``give_up_after`` times in a row within ``early`` seconds of starting."""

    async def keep_running(index: int) -> None:
        failures = 0
        while True:
            started = trio.current_time()
            proc = await trio.lowlevel.open_process(list(command(index)))
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
            failures = failures + 1 if code and trio.current_time() - started < early else 0
            if failures >= give_up_after:
                raise WorkersFailed(
                    f"worker {index} exited {failures} times in a row right after starting "
                    f"(code {code}); stopping"
                )
            log.warning("worker %d exited with code %s; restarting it", index, code)
            await trio.sleep(restart_delay)

    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(keep_running, index)
        task_status.started()
