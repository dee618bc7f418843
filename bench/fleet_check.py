"""The scale-out "done when" check: ``v4e csms --db postgresql://... --workers 2`` serves a
``v4e sim --count N`` fleet and answers a command to every charger from either worker.

    python -m bench.fleet_check [--count 2000] [--workers 2]

Starts a throwaway PostgreSQL (``tests/pgserver.py``, fsync on), the CSMS and the
simulator as separate processes, waits until the whole fleet is online, sends
GetConfiguration to every charger through the shared API port (each request lands on
either worker, so about half are routed to the other), and prints one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cluster import _free_port, _percentiles
from tests.pgserver import pg_server

PY = sys.executable


def _wait_for_workers(url: str, workers: int) -> None:
    deadline = time.monotonic() + 60
    with psycopg.connect(url, autocommit=True) as db:
        while time.monotonic() < deadline:
            try:
                if db.execute("SELECT count(*) FROM nodes").fetchone()[0] >= workers:
                    return
            except psycopg.errors.UndefinedTable:
                pass  # the first worker has not created the tables yet
            time.sleep(0.2)
    raise RuntimeError("the workers did not start")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    out: dict = {"chargers": args.count, "workers": args.workers}
    with pg_server(durable=True) as pg:
        url = pg.create_database("fleet")
        ws, api = _free_port(), _free_port()
        csms = subprocess.Popen(
            [
                *(PY, "-m", "libv4e_apps", "--log-level", "WARNING", "csms", "--host", "127.0.0.1"),
                *("--ws-port", str(ws), "--api-port", str(api), "--db", url),
                *("--workers", str(args.workers), "--node-id", "w"),
            ],
            stdout=subprocess.DEVNULL,
        )
        sim = None
        try:
            _wait_for_workers(url, args.workers)
            time.sleep(0.5)
            sim = subprocess.Popen(
                [
                    *(PY, "-m", "libv4e_apps", "--log-level", "ERROR", "sim"),
                    *("--url", f"ws://127.0.0.1:{ws}", "--id", "SIM00001"),
                    *("--count", str(args.count)),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            start = time.monotonic()
            with httpx.Client(base_url=f"http://127.0.0.1:{api}", timeout=60) as client:
                status: dict = {}
                while time.monotonic() - start < 300:
                    status = client.get("/status").json()
                    if min(status["total_online"], status["total_connected"]) >= args.count:
                        break
                    time.sleep(1)
                out["online"] = status.get("total_online")
                out["seconds_to_online"] = round(time.monotonic() - start, 1)
                with psycopg.connect(url) as db:
                    out["chargers_per_worker"] = dict(
                        db.execute(
                            "SELECT node_id, count(*) FROM presence WHERE connected "
                            "GROUP BY 1 ORDER BY 1"
                        ).fetchall()
                    )
                codes: collections.Counter[int] = collections.Counter()
                samples = []
                for i in range(1, args.count + 1):
                    t = time.perf_counter()
                    r = client.post(
                        f"/commands/get_configuration/SIM{i:05d}",
                        json={"keys": ["HeartbeatInterval"]},
                    )
                    samples.append(time.perf_counter() - t)
                    codes[r.status_code] += 1
                out["answers_by_http_status"] = dict(codes)
                out["command"] = _percentiles(samples)
                out["total_connected_seen"] = [
                    client.get("/status").json()["total_connected"] for _ in range(10)
                ]
        finally:
            if sim is not None:
                sim.terminate()
                sim.wait(30)
            csms.terminate()
            out["csms_exit_code"] = csms.wait(30)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
