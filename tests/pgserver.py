"""A throwaway PostgreSQL server for the tests and the benchmark.

Uses the Debian/Ubuntu ``postgresql`` package's binaries (``initdb``, ``postgres``), found
on ``$PATH``, under ``$V4E_PG_BIN`` or in ``/usr/lib/postgresql/<version>/bin``. PostgreSQL
refuses to run as root, so as root the server runs as the ``postgres`` user (through
``runuser``) on a data directory that user owns. It listens on 127.0.0.1 on a free port
and on a unix socket in its own directory, trusts local connections, and is deleted when
stopped.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


class PgUnavailable(Exception):
    """PostgreSQL cannot be started here (not installed, no postgres user, ...)."""


def _bin_dir() -> Path:
    env = os.environ.get("V4E_PG_BIN")
    if env:
        if not (Path(env) / "initdb").exists():
            raise PgUnavailable(f"no initdb in V4E_PG_BIN={env}")
        return Path(env)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not versions:
        raise PgUnavailable(
            "PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin; "
            "apt-get install postgresql)"
        )
    return versions[-1].parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One PostgreSQL server in a temporary directory. Use :func:`pg_server`."""

    def __init__(self, *, durable: bool = False, max_connections: int = 300) -> None:
        self.bin = _bin_dir()
        self.durable = durable
        self.max_connections = max_connections
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="v4e-pg-"))
        self.data = self.dir / "data"
        self.sock = self.dir / "sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self._prefix: list[str] = []
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise PgUnavailable("running as root and there is no postgres user") from None
            if shutil.which("runuser") is None:
                raise PgUnavailable("running as root and runuser is missing")
            self._prefix = ["runuser", "-u", "postgres", "--"]
            os.chmod(self.dir, 0o755)
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        for sub in (self.data, self.sock):
            sub.mkdir()
            if self._prefix:
                os.chown(sub, user.pw_uid, user.pw_gid)

    @property
    def url(self) -> str:
        """The URL of the ``postgres`` database."""
        return self.url_for("postgres")

    def url_for(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self, timeout: float = 30.0) -> None:
        out = subprocess.run(
            [
                *self._prefix,
                *(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres"),
                *("-A", "trust", "-E", "UTF8", "--no-sync"),
            ],
            capture_output=True,
            check=False,
        )
        if out.returncode != 0:
            raise PgUnavailable(f"initdb failed: {out.stderr.decode(errors='replace')[-500:]}")
        options = [
            "-c",
            f"max_connections={self.max_connections}",
            "-c",
            "shared_buffers=64MB",
            "-c",
            "listen_addresses=127.0.0.1",
        ]
        if not self.durable:  # a throwaway test database: no need to survive power loss
            options += ["-c", "fsync=off", "-c", "full_page_writes=off"]
        self.proc = subprocess.Popen(
            [
                *self._prefix,
                *(str(self.bin / "postgres"), "-D", str(self.data)),
                *("-p", str(self.port), "-k", str(self.sock), *options),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise PgUnavailable(f"postgres exited: {err[-500:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                if self._ready():
                    return
            time.sleep(0.1)  # wall: PostgreSQL starting in another process, polled
        self.stop()
        raise PgUnavailable(f"postgres did not start within {timeout:.0f} s")

    def _ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            pidfile = self.data / "postmaster.pid"
            try:  # SIGINT: "fast" shutdown (SIGTERM would wait for clients); signal the
                # postmaster itself, not runuser
                pid = int(pidfile.read_text().split()[0])
                os.kill(pid, signal.SIGINT)
            except (OSError, ValueError, IndexError):
                self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def pg_server(*, durable: bool = False) -> Iterator[PgServer]:
    """A started throwaway server for the duration of the block (PgUnavailable if not)."""
    server = PgServer(durable=durable)
    try:
        server.start()
        yield server
    finally:
        server.stop()
