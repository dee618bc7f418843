"""A flood of unread calls from one charger: ``python -m bench.flood`` prints JSON and
writes bench/results/flood.json.

An embedded backend; one charger (a `websockets` client in a process of its own) sends
``--total`` Heartbeats without ever reading an answer (it is closed with 1008 and comes
back); meanwhile a quiet charger sends a Heartbeat every 20 ms. Figures: the quiet
charger's latency (p50, p99, max) and the backend's memory growth (RSS) during the flood.
Targets: p99 < 100 ms, growth < 64 MiB. (tests/csms/test_hardening.py checks the behaviour:
the flood is closed for flooding only and the quiet charger stays served.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import trio
from ocpp.v16 import call

from libv4e import open_ocpp
from libv4e_apps.csms.backend import BackendConfig, serve_backend

RESULTS = Path(__file__).parent / "results"
TARGETS = {"p99_ms": 100.0, "rss_growth_mib": 64.0}

FLOOD_CLIENT = r"""
import asyncio, json, sys
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

async def main(url, total):
    sent, closes = 0, {}
    frame = '[2,"%d","Heartbeat",{}]'
    while sent < total:
        try:
            async with connect(url, subprotocols=["ocpp1.6"], max_queue=None) as ws:
                try:
                    while sent < total:  # never reads an answer
                        await ws.send(frame % sent)
                        sent += 1
                        await asyncio.sleep(0)  # let the client see a close frame
                except ConnectionClosed as exc:
                    code = exc.rcvd.code if exc.rcvd else 1006
                    closes[code] = closes.get(code, 0) + 1
        except (OSError, ConnectionClosed) as exc:
            closes[repr(type(exc))] = closes.get(repr(type(exc)), 0) + 1
    print(json.dumps({"sent": sent, "closes": closes}))

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""

BOOT = call.BootNotification("Bench", "libv4e")


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def measure(total: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        config = BackendConfig(host="127.0.0.1", ws_port=0, api_port=0, db_path=f"{tmp}/b.db")
        async with trio.open_nursery() as nursery:
            backend = await nursery.start(
                lambda task_status: serve_backend(config, task_status=task_status)
            )
            url = f"ws://127.0.0.1:{backend.ws_port}"
            async with open_ocpp(url, "QUIET01") as quiet:
                await quiet.call(BOOT, timeout=10)
                for _ in range(50):  # warm up
                    await quiet.call(call.Heartbeat(), timeout=5)
                await backend.csms.flush_log()
                before = peak = rss_bytes()
                latencies: list[float] = []
                done = trio.Event()
                result: dict = {}

                async def flood() -> None:
                    proc = await trio.run_process(
                        [sys.executable, "-c", FLOOD_CLIENT, f"{url}/FLOOD01", str(total)],
                        capture_stdout=True,
                    )
                    result.update(json.loads(proc.stdout))
                    done.set()

                async def heartbeats() -> None:
                    while not done.is_set():
                        start = trio.current_time()
                        await quiet.call(call.Heartbeat(), timeout=5)
                        latencies.append(trio.current_time() - start)
                        await trio.sleep(0.02)

                async def sample() -> None:
                    nonlocal peak
                    while not done.is_set():
                        peak = max(peak, rss_bytes())
                        await trio.sleep(0.05)

                async with trio.open_nursery() as inner:
                    inner.start_soon(flood)
                    inner.start_soon(heartbeats)
                    inner.start_soon(sample)
            nursery.cancel_scope.cancel()
    latencies.sort()
    return {
        "total": total,
        "flood": result,
        "heartbeats_meanwhile": len(latencies),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2),
        "rss_growth_mib": round((peak - before) / 2**20, 1),
        "targets": TARGETS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--total", type=int, default=150_000)
    args = parser.parse_args()
    figures = trio.run(measure, args.total)
    figures["within_targets"] = all(figures[k] <= v for k, v in TARGETS.items())
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "flood.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
