"""What the tests share: running servers and chargers, waiting for things, raw
clients, fixtures' building blocks (one module; test modules import only from here,
never from each other)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import trio
import trio.testing
from ocpp.v16 import call, call_result, enums
from trio_websocket import open_websocket_url

from libv4e import (
    Charger,
    ChargerConfig,
    OcppConnection,
    open_ocpp,
)
from libv4e.csms import CsmsConfig
from libv4e.csms._cluster import ClusterConfig
from libv4e.sandbox import (
    trio_clock,
)
from libv4e_apps.csms.backend import Backend, BackendConfig, serve_backend
from libv4e_apps.csms.tools import call_tool

NOW = "2024-05-01T12:00:00Z"


@contextlib.asynccontextmanager
async def running_backend(
    db_path: str, ws_port: int = 0, clock: Any = None, **csms: Any
) -> AsyncIterator[Backend]:
    """A backend (CSMS + API) for the duration of the block (its datetime ``clock``, e.g.
    ``trio_clock(EPOCH)`` under trio's MockClock, or the wall clock)."""
    config = BackendConfig(
        host="127.0.0.1", ws_port=ws_port, api_port=0, db_path=db_path, csms=CsmsConfig(**csms)
    )
    async with trio.open_nursery() as nursery:
        backend = await nursery.start(
            lambda task_status: serve_backend(config, clock=clock, task_status=task_status)
        )
        try:
            yield backend
        finally:
            nursery.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def simulated_backend(**csms: Any) -> AsyncIterator[tuple[Backend, httpx.AsyncClient]]:
    """A backend on an in-memory store and on the simulated clock of the running trio
    (a test with the ``autojump_clock`` fixture), and an HTTP client for it. The store
    works inline on the Trio thread, so time jumps only when everything waits for a
    deadline (a worker thread's query would count as idle); the client has no timeout
    (under autojump a timeout is the next deadline to jump to)."""
    async with (
        running_backend(":memory:", clock=trio_clock(EPOCH), **csms) as backend,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{backend.api_port}", timeout=None) as client,
    ):
        yield backend, client


def api(backend: Backend) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{backend.api_port}", timeout=10)


def ws_url(backend: Backend) -> str:
    return f"ws://127.0.0.1:{backend.ws_port}"


async def boot(conn: OcppConnection, connectors: int = 1) -> Any:
    """BootNotification then an Available StatusNotification per connector."""
    result = await conn.call(
        call.BootNotification(
            "Model-X", "Vendor-Y", charge_point_serial_number="SN1", firmware_version="1.2.3"
        ),
        timeout=5,
    )
    for c in range(connectors + 1):
        await conn.call(
            call.StatusNotification(
                c, enums.ChargePointErrorCode.no_error, enums.ChargePointStatus.available
            ),
            timeout=5,
        )
    return result


class PlainCharger:
    """A minimal OCPP charger for tests: answers commands, records what it was asked."""

    def __init__(self):
        self.received: list[Any] = []

    def handlers(self) -> dict[str, Any]:
        async def record(payload, answer):
            self.received.append(payload)
            return answer

        return {
            "Reset": lambda p: record(p, call_result.Reset("Accepted")),
            "ChangeAvailability": lambda p: record(p, call_result.ChangeAvailability("Accepted")),
            "ChangeConfiguration": lambda p: record(p, call_result.ChangeConfiguration("Accepted")),
            "RemoteStartTransaction": lambda p: record(
                p, call_result.RemoteStartTransaction("Accepted")
            ),
            "RemoteStopTransaction": lambda p: record(
                p, call_result.RemoteStopTransaction("Accepted")
            ),
            "UnlockConnector": lambda p: record(p, call_result.UnlockConnector("Unlocked")),
            "SendLocalList": lambda p: record(p, call_result.SendLocalList("Accepted")),
            "GetLocalListVersion": lambda p: record(p, call_result.GetLocalListVersion(3)),
        }


@contextlib.asynccontextmanager
async def plain_charger(
    backend: Backend, cp_id: str = "EVSE001"
) -> AsyncIterator[tuple[OcppConnection, PlainCharger]]:
    charger = PlainCharger()
    async with open_ocpp(ws_url(backend), cp_id, handlers=charger.handlers()) as conn:
        await boot(conn)
        yield conn, charger


BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}


async def raw_call(ws: Any, uid: str, action: str, payload: dict[str, Any]) -> list[Any]:
    """Send a CALL on a raw websocket and return the frame that answers it (CALLRESULT or
    CALLERROR)."""
    await ws.send_message(json.dumps([2, uid, action, payload]))
    while True:
        frame = json.loads(await ws.get_message())
        if frame[0] in (3, 4) and frame[1] == uid:
            return frame


@contextlib.asynccontextmanager
async def booted_ws(url: str, **options: Any) -> AsyncIterator[Any]:
    """A raw websocket (subprotocol ocpp1.6) whose id has booted (before that, the CSMS
    stores nothing)."""
    options.setdefault("subprotocols", ["ocpp1.6"])
    async with open_websocket_url(url, **options) as ws:
        assert (await raw_call(ws, "boot0", "BootNotification", BOOT))[2]["status"] == "Accepted"
        yield ws


@contextlib.asynccontextmanager
async def charger_running(backend, clock=None, **config):
    """The simulated charger EVSE001 (or ``cp_id``) connected and booted, on ``clock``
    (default the backend's: under a MockClock, both on trio's)."""
    defaults = {
        "cp_id": "EVSE001",
        "reboot_delay": 0.2,
        "unplug_delay": 0.3,
        "reconnect_min": 0.1,
        "reconnect_max": 0.5,
    }
    charger = Charger(ChargerConfig(**{**defaults, **config}), clock=clock or backend.csms.clock)
    async with trio.open_nursery() as nursery:
        await nursery.start(charger.run, ws_url(backend))
        with trio.fail_after(10):
            await charger.connected_event.wait()
            await charger.drain(5)
        try:
            yield charger
        finally:
            nursery.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def charger_setup(db, clock=None, **config):
    """A backend, the simulated charger EVSE001 connected to it, and an API client (both
    on the datetime ``clock``, e.g. ``trio_clock(EPOCH)`` under trio's MockClock)."""
    async with (
        running_backend(db, clock=clock) as backend,
        charger_running(backend, clock=clock, **config) as charger,
        api(backend) as client,
    ):
        yield charger, client


async def wait_for(predicate, timeout=10.0, interval=0.05):
    """Await ``predicate()`` until it returns something truthy (its value), within
    ``timeout`` seconds of trio's clock (simulated under a MockClock)."""
    with trio.fail_after(timeout):
        while True:
            result = await predicate()
            if result:
                return result
            await trio.sleep(interval)


def poll(check, timeout=10.0, interval=0.1, *, ignore=()):
    """The same from a thread that is not Trio's (a browser, a process under test):
    call ``check()`` until it returns something truthy (its value); ``ignore`` lists
    exceptions that count as "not yet"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
        except ignore:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def start(*args, cwd):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "libv4e_apps", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(*procs, timeout=20):
    """End started processes (SIGINT, then kill after ``timeout``) and close their pipes;
    None entries (never started) are skipped."""
    for proc in procs:
        if proc is None:
            continue
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()


def read_until(proc, pattern, timeout=20):
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(pattern, line)
        if match:
            return match, lines
    raise AssertionError("".join(lines))


ROOT = Path(__file__).resolve().parent.parent
"""The repository."""
INTEROP = Path(__file__).resolve().parent / "interop"
"""The peers we did not write (programs on the `ocpp` package and `websockets`)."""


@contextlib.asynccontextmanager
async def node(url: str, **cluster: Any) -> AsyncIterator[Backend]:
    """One CSMS node (OCPP + API on ephemeral ports) on the database at ``url``."""
    cluster.setdefault("sync_interval", 0.2)
    config = BackendConfig(
        host="127.0.0.1",
        ws_port=0,
        api_port=0,
        db_path=url,
        csms=CsmsConfig(),
        cluster=ClusterConfig(**cluster),
        tune_gc=False,
    )
    async with trio.open_nursery() as nursery:
        backend = await nursery.start(
            lambda task_status: serve_backend(config, task_status=task_status)
        )
        try:
            yield backend
        finally:
            nursery.cancel_scope.cancel()


async def synced(*backends: Backend) -> None:
    """What each node wrote is in the database, and each has read what the others wrote
    (normally within ``log_flush_interval`` + ``sync_interval``)."""
    for b in backends:
        await b.csms.flush_log()
    for b in backends:
        assert b.node is not None
        await b.node.sync()


def holders(url: str) -> dict[str, tuple[str, bool]]:
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT p.cp_id, p.node_id, p.connected AND coalesce(n.lease_until > now(), false) "
            "FROM presence p LEFT JOIN nodes n USING (node_id)"
        ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


HANDSHAKE = (
    "GET /{cp_id} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
)


async def handshake(port: int, cp_id: str, source: str = "127.0.0.1") -> tuple[int, object]:
    """A raw websocket handshake from ``source``: (HTTP status, the open socket)."""
    sock = trio.socket.socket()
    await sock.bind((source, 0))
    await sock.connect(("127.0.0.1", port))
    await sock.send(HANDSHAKE.format(cp_id=cp_id).encode())
    answer = b""
    with trio.fail_after(10):
        while b"\r\n\r\n" not in answer:
            chunk = await sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1]), sock


DRIVER, NEIGHBOUR = "DRIVER42", "NEIGHBOUR7"


async def tool(client, name, /, **arguments):
    outcome = await call_tool(client, name, arguments)
    assert outcome["ok"], outcome
    return outcome["result"]


async def neighbour_charging(client, charger, cid):
    """A second driver charges on connector ``cid``."""
    r = await tool(client, "remote_start", cp_id="EVSE001", connector_id=cid, id_tag=NEIGHBOUR)
    assert r["status"] == "Accepted"
    await wait_for(lambda: _true(cid in charger.sessions))

    async def known():  # the CSMS has the session, and the charger's notifications are in
        state = await tool(client, "get_charger", cp_id="EVSE001")
        c = next(c for c in state["connectors"] if c["connector_id"] == cid)
        return c["status"] == "Charging"

    await wait_for(known, timeout=5, interval=0.1)
    await charger.drain(5)
    return charger.sessions[cid]


async def _true(value):
    return value


async def run_phase(client, scenario, connector_id=None):
    body = (await client.get("/demo/scenarios")).json()
    runs = [
        r
        for s in body["scenarios"]
        for r in s["runs"]
        if r["scenario"] == scenario and connector_id in (None, r["connector_id"])
    ]
    return runs[-1]["phase"] if runs else None


class Peer:
    """A subprocess that prints JSON events on stdout."""

    def __init__(self, proc: trio.Process):
        self.proc = proc
        self.events: list[dict] = []
        self._buffer = b""

    async def wait_for(self, event: str, timeout: float = 15, **match) -> dict:
        with trio.fail_after(timeout):
            while True:
                for e in self.events:
                    if e.get("event") == event and all(e.get(k) == v for k, v in match.items()):
                        return e
                chunk = await self.proc.stdout.receive_some(4096)
                if not chunk:
                    raise AssertionError(f"peer exited before {event}: {self.events}")
                self._buffer += chunk
                *lines, self._buffer = self._buffer.split(b"\n")
                self.events += [json.loads(line) for line in lines if line.strip()]


async def start_peer(nursery, *args) -> Peer:
    proc = await trio.lowlevel.open_process([sys.executable, *args], stdout=subprocess.PIPE)
    nursery.start_soon(_reap, proc)
    return Peer(proc)


async def _reap(proc):
    try:
        await proc.wait()
    finally:
        with trio.CancelScope(shield=True):
            proc.kill()
            await proc.wait()
            await proc.stdout.aclose()


@contextlib.asynccontextmanager
async def sandbox_backend(db, clock=None, **csms):
    config = BackendConfig(
        host="127.0.0.1",
        ws_port=0,
        api_port=0,
        db_path=db,
        csms=CsmsConfig(**csms),
        sandbox=True,
        tune_gc=False,
    )
    async with trio.open_nursery() as nursery:
        backend = await nursery.start(
            lambda task_status: serve_backend(config, clock=clock, task_status=task_status)
        )
        try:
            yield backend
        finally:
            nursery.cancel_scope.cancel()


EPOCH = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


@contextlib.asynccontextmanager
async def simulated_sandbox():
    """A sandbox backend on an in-memory store, on the simulated clock of the running
    trio (start it under ``MockClock(autojump_threshold=0)``), and an HTTP client for it
    (no client timeout: under autojump a timeout is the next deadline to jump to)."""
    async with (
        sandbox_backend(":memory:", clock=trio_clock(EPOCH)) as backend,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{backend.api_port}", timeout=None) as client,
    ):
        yield backend, client


async def start_cli(url: str, *extra: str) -> tuple[Any, int, int]:
    """``v4e csms`` on ephemeral ports in a process of its own; its ports, once listening.
    It runs in a folder of its own (with a PostgreSQL ``url`` the development charger CA
    goes in the working folder: never the repository's)."""
    proc = await trio.lowlevel.open_process(
        [
            *(sys.executable, "-m", "libv4e_apps", "--log-level", "WARNING", "csms"),
            *("--host", "127.0.0.1", "--ws-port", "0", "--api-port", "0", "--db", url, *extra),
        ],
        cwd=tempfile.mkdtemp(prefix="v4e-cli-"),
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    out = b""
    with trio.fail_after(60):
        while not (b"OCPP" in out and b"REST API" in out and out.endswith(b"\n")):
            chunk = await proc.stdout.receive_some(4096)
            if not chunk:
                raise AssertionError(f"v4e csms exited: {out.decode()}")
            out += chunk
    ws_port = int(re.search(rb"OCPP 1\.6-J: ws://[^:]+:(\d+)", out).group(1))
    api_port = int(re.search(rb"REST API: +http://[^:]+:(\d+)", out).group(1))
    with trio.fail_after(60):  # with --workers, the workers may still be starting
        async with httpx.AsyncClient(timeout=5) as client:
            while True:
                try:
                    if (await client.get(f"http://127.0.0.1:{api_port}/status")).is_success:
                        break
                except httpx.TransportError:
                    pass
                await trio.sleep(0.2)  # wall: the CLI is another process, polled
    return proc, ws_port, api_port


async def run_fleet(
    script: str, url: str, prefix: str, count: int, *args: str, timeout: float = 300
) -> list[dict[str, Any]]:
    """Run an independent raw fleet (``tests/interop/<script>``: raw_fleet.py for 1.6,
    raw_fleet201.py for 2.0.1) to completion; its JSON events."""
    with trio.fail_after(timeout):
        done = await trio.run_process(
            [sys.executable, str(INTEROP / script), url, prefix, str(count), *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    events = [json.loads(line) for line in done.stdout.decode().splitlines() if line.strip()]
    assert done.returncode == 0, (done.stderr.decode()[-3000:], events[-5:])
    return events


async def all_rows(db: str) -> tuple[list[Any], list[Any]]:
    """Every transaction row and unmatched stop in the store at ``db`` (a path or URL)."""
    from libv4e.csms import store_for

    store = store_for(db)
    await store.open()
    try:
        rows = await store.transactions(cp_id=None, active=None, limit=10**6, offset=0)
        unmatched = await store.unmatched_stops(cp_id=None, limit=10**6, offset=0)
    finally:
        await store.close()
    return rows, unmatched


def accepting_set_variables(received: list[Any]) -> Any:
    """A 2.0.1 station's SetVariables handler that accepts every variable and keeps
    each ``SetVariableDataType`` it was sent in ``received``."""
    from ocpp.v201 import call_result as result201
    from ocpp.v201 import datatypes as data201

    async def set_variables(msg: Any) -> Any:
        received.extend(msg.set_variable_data)
        return result201.SetVariables(
            set_variable_result=[
                data201.SetVariableResultType(
                    attribute_status="Accepted", component=d.component, variable=d.variable
                )
                for d in msg.set_variable_data
            ]
        )

    return set_variables
