"""The scale-out part of ``nox -s bench``: SQLite in one process, PostgreSQL with 1 and 2
worker processes, and REST commands routed across two PostgreSQL nodes, side by side.

    python -m bench --cluster-only [--cluster-size 2000]

PostgreSQL is a throwaway server started here (``tests/pgserver.py``) with fsync on, as
in production; on a 2-core machine it shares the cores with the workers and the load
generator, so the 2-worker figures show contention as much as scaling (the report
records the load average before and after).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

PY = sys.executable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_kib(pid: int) -> int:
    try:
        match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return 0
    return int(match.group(1)) if match else 0


def _tree_rss_kib(pid: int) -> int:
    """RSS of a process and its children (the workers of a supervisor)."""
    total = _rss_kib(pid)
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return total + sum(_tree_rss_kib(int(c)) for c in children)


class Node:
    """``v4e csms`` in its own process."""

    def __init__(self, db: str, *, workers: int = 1, cpu: int | None = None, extra=()) -> None:
        self.ws_port, self.api_port = _free_port(), _free_port()
        prefix = ["taskset", "-c", str(cpu)] if cpu is not None else []
        cmd = [
            *prefix,
            *(PY, "-m", "libv4e_apps", "--log-level", "ERROR", "csms", "--host", "127.0.0.1"),
            *("--ws-port", str(self.ws_port), "--api-port", str(self.api_port), "--db", db),
            *("--workers", str(workers), *extra),
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"http://127.0.0.1:{self.api_port}/status", timeout=2)
                if r.is_success:
                    self._wait_for_workers(db, workers)
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("v4e csms did not start")

    @staticmethod
    def _wait_for_workers(db: str, workers: int) -> None:
        if workers < 2:
            return
        import psycopg

        with psycopg.connect(db, autocommit=True) as conn:
            deadline = time.monotonic() + 60
            while conn.execute("SELECT count(*) FROM nodes").fetchone()[0] < workers:
                if time.monotonic() > deadline:
                    raise RuntimeError("the workers did not all start")
                time.sleep(0.2)  # (the API answered: the tables exist)
        time.sleep(0.5)  # each joins before it listens

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _loadgen(url: str, *args: str, cpu: int | None = None, on_ready=None) -> dict[str, Any]:
    cmd = [PY, "-m", "bench.loadgen", "--url", url, *args]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    result: dict[str, Any] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        data = json.loads(line)
        if data.get("ready") and on_ready is not None:
            on_ready(data)
            proc.terminate()
            break
        result = data
    proc.wait()
    return result


def _percentiles(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "p50_ms": round(samples[len(samples) // 2] * 1000, 2),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000, 2),
    }


def _rest(api_port: int, n: int, requests: int) -> dict[str, Any]:
    samples = []
    with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=30) as client:
        for i in range(requests):
            start = time.perf_counter()
            r = client.post(f"/commands/reset/LG{i % n:05d}", json={"type": "Soft"})
            samples.append(time.perf_counter() - start)
            if r.status_code != 200:
                raise RuntimeError(r.text)
    return {"requests": requests, **_percentiles(samples)}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run(size: int, steady: float, saturate: float, clients: int) -> dict[str, Any]:
    """Every figure of the scale-out comparison (a dict for the JSON report)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.pgserver import PgUnavailable, pg_server

    report: dict[str, Any] = {"load_before": _load(), "size": size}
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"v4e-bench-cluster-{os.getpid()}"
    tmp.mkdir(exist_ok=True)
    try:
        with pg_server(durable=True) as pg:
            report["postgresql"] = _pg_version(pg.url)
            setups = {
                "sqlite_1_process": lambda: Node(str(tmp / f"s{time.monotonic_ns()}.db"), cpu=0),
                "postgresql_1_worker": lambda: Node(_fresh(pg), cpu=0),
                "postgresql_2_workers": lambda: Node(_fresh(pg), workers=2),
            }
            for name, start in setups.items():
                print(f"scale-out: {name}, {size} chargers …", flush=True)
                node = start()
                memory: dict[str, int] = {}

                def at_ready(_: dict[str, Any], node: Node = node, memory=memory) -> None:
                    time.sleep(1.0)
                    memory["rss_kib"] = _tree_rss_kib(node.proc.pid)

                try:
                    ramp = _loadgen(
                        node.url,
                        *("--count", str(size), "--hold", "2", "--steady", str(steady)),
                        *("--rate", "0.1"),
                        cpu=1,
                    )
                    sat = _loadgen(
                        node.url, "--count", str(clients), "--saturate", str(saturate), cpu=1
                    )
                    memory["rss_kib"] = _tree_rss_kib(node.proc.pid)
                finally:
                    node.stop()
                report[name] = {
                    "ramp": ramp.get("ramp"),
                    "steady": ramp.get("steady"),
                    "saturation": sat.get("saturation"),
                    "rss_kib_after": memory.get("rss_kib"),
                }
            print("scale-out: REST round trip, local vs routed across two nodes …", flush=True)
            report["rest"] = _rest_across(_fresh(pg), tmp)
            print("scale-out: raw NOTIFY rate (8 senders, 4 listening nodes) …", flush=True)
            report["notify"] = notify_rate(pg.url)
    except PgUnavailable as exc:
        report["skipped"] = f"PostgreSQL unavailable: {exc}"
    report["load_after"] = _load()
    return report


def _fresh(pg: Any) -> str:
    return pg.create_database(f"bench{time.monotonic_ns()}")


def _pg_version(url: str) -> str:
    import psycopg

    with psycopg.connect(url) as db:
        return str(db.execute("SHOW server_version").fetchone()[0])


def _rest_across(url: str, tmp: Path, n: int = 200, requests: int = 300) -> dict[str, Any]:
    """Chargers on node A; the same commands sent to A (local) and to B (routed)."""
    out: dict[str, Any] = {}
    sqlite = Node(str(tmp / f"r{time.monotonic_ns()}.db"))
    try:
        _loadgen(
            sqlite.url,
            *("--count", str(n), "--hold", "600"),
            on_ready=lambda _: out.__setitem__("sqlite_local", _rest(sqlite.api_port, n, requests)),
        )
    finally:
        sqlite.stop()
    a, b = Node(url), Node(url)
    try:

        def measure(_: dict[str, Any]) -> None:
            time.sleep(1.5)  # let B's fleet view catch up (not needed for routing)
            out["postgresql_local"] = _rest(a.api_port, n, requests)
            out["postgresql_routed"] = _rest(b.api_port, n, requests)

        _loadgen(a.url, *("--count", str(n), "--hold", "600"), on_ready=measure)
    finally:
        a.stop()
        b.stop()
    return out


def notify_rate(url: str, seconds: float = 5.0, senders: int = 8, nodes: int = 4) -> dict:
    """How many NOTIFYs per second the database commits and delivers: ``senders`` threads
    each send one-notification transactions to ``nodes`` listening connections."""
    import threading

    import psycopg

    listeners = []
    for i in range(nodes):
        conn = psycopg.connect(url, autocommit=True)
        conn.execute(f"LISTEN bench{i}")
        listeners.append(conn)
    received = [0] * nodes
    sent = [0] * senders
    stop = time.monotonic() + seconds
    body = '{"kind":"call","id":"0123456789abcdef","cp_id":"LG00001","action":"Reset"}'

    def listen(i: int) -> None:
        for _ in listeners[i].notifies(timeout=seconds + 2):
            received[i] += 1

    def send(k: int) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            while time.monotonic() < stop:
                conn.execute("SELECT pg_notify(%s, %s)", (f"bench{k % nodes}", body))
                sent[k] += 1

    threads = [threading.Thread(target=listen, args=(i,)) for i in range(nodes)]
    threads += [threading.Thread(target=send, args=(k,)) for k in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for conn in listeners:
        conn.close()
    return {
        "notify_per_s": round(sum(sent) / seconds),
        "sent": sum(sent),
        "received": sum(received),
        "senders": senders,
        "listening_nodes": nodes,
    }


def rows(report: dict[str, Any]) -> list[list[Any]]:
    """Table rows for the scale-out comparison."""
    out = []
    for name in ("sqlite_1_process", "postgresql_1_worker", "postgresql_2_workers"):
        r = report.get(name) or {}
        ramp, steady, sat = r.get("ramp") or {}, r.get("steady") or {}, r.get("saturation") or {}
        out.append(
            [
                name,
                ramp.get("seconds"),
                ramp.get("failures"),
                steady.get("achieved_per_s"),
                steady.get("rtt_p99_ms"),
                sat.get("round_trips_per_s"),
                sat.get("rtt_p99_ms"),
                r.get("rss_kib_after"),
            ]
        )
    return out
