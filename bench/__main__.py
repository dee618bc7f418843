"""``nox -s bench`` / ``python -m bench``: the benchmark, side by side with the reference.

Runs, on loopback, in one go: connect + boot of N chargers, steady state with all N
connected, saturation, REST command latency, and the simulator's capacity — for libv4e's
CSMS and for the `ocpp` package's documented asyncio central system, plus bare websocket
echo servers on both transports. Prints tables and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import httpx
import trio

from bench import cluster

PY = sys.executable
RESULTS = Path(__file__).parent / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) if match else 0


class Server:
    """A server process under test, optionally pinned to one CPU."""

    def __init__(self, kind: str, cpu: int | None, tmp: str) -> None:
        self.kind = kind
        self.ws_port, self.api_port = free_port(), free_port()
        prefix = ["taskset", "-c", str(cpu)] if cpu is not None else []
        if kind == "libv4e":
            cmd = [
                PY,
                "-m",
                "apps",
                "--log-level",
                "ERROR",
                "csms",
                "--host",
                "127.0.0.1",
                "--ws-port",
                str(self.ws_port),
                "--api-port",
                str(self.api_port),
                "--db",
                os.path.join(tmp, f"bench-{time.monotonic_ns()}.db"),
                # saturation sends back-to-back calls per connection: measure throughput,
                # not the per-charger rate limit (100/s after a burst of 500 by default)
                "--call-rate",
                "0",
            ]
        else:
            cmd = [PY, "-m", "bench.servers", kind, str(self.ws_port)]
        self.proc = subprocess.Popen(
            prefix + cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self._wait_ready()
        self.idle_rss = rss_kib(self.proc.pid)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.ws_port), timeout=0.5):
                    time.sleep(0.3)
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.kind} did not start")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def loadgen(
    url: str, *args: str, cpu: int | None = None, on_ready=None, stop_when_ready=False
) -> dict:
    cmd = [PY, "-m", "bench.loadgen", "--url", url, *args]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    result = None
    for line in proc.stdout:
        data = json.loads(line)
        if data.get("ready") and on_ready is not None:
            on_ready(data)
            if stop_when_ready:
                proc.terminate()
                break
        else:
            result = data
    proc.wait()
    return result or {}


def ramp_and_steady(kind: str, n: int, tmp: str, steady: float) -> dict:
    server = Server(kind, 0, tmp)
    memory = {}

    def at_ready(_: dict) -> None:
        time.sleep(1.0)
        memory["rss_kib"] = rss_kib(server.proc.pid)

    try:
        out = loadgen(
            server.url,
            "--count",
            str(n),
            "--hold",
            "2",
            "--steady",
            str(steady),
            "--rate",
            "0.1",
            cpu=1,
            on_ready=at_ready,
        )
    finally:
        server.stop()
    booted = out.get("ramp", {}).get("booted", 0)
    out["server_rss_kib"] = memory.get("rss_kib")
    out["server_idle_rss_kib"] = server.idle_rss
    if booted and memory.get("rss_kib"):
        out["kib_per_charger"] = round((memory["rss_kib"] - server.idle_rss) / booted, 1)
    return out


def saturation(kind: str, tmp: str, clients: int, seconds: float, cores: int) -> dict:
    server = Server(kind, 0, tmp)
    try:
        return loadgen(
            server.url,
            "--count",
            str(clients),
            "--saturate",
            str(seconds),
            cpu=0 if cores == 1 else 1,
        )
    finally:
        server.stop()


def rest_latency(n: int, tmp: str, requests: int) -> dict:
    server = Server("libv4e", 0, tmp)
    result: dict = {}

    def at_ready(_: dict) -> None:
        samples = []
        with httpx.Client(base_url=f"http://127.0.0.1:{server.api_port}", timeout=30) as client:
            for i in range(requests):
                start = time.perf_counter()
                r = client.post(f"/commands/reset/LG{i % n:05d}", json={"type": "Soft"})
                samples.append(time.perf_counter() - start)
                assert r.status_code == 200, r.text
        samples.sort()
        result.update(
            p50_ms=round(samples[len(samples) // 2] * 1000, 2),
            p99_ms=round(samples[int(len(samples) * 0.99)] * 1000, 2),
            requests=requests,
        )

    try:
        loadgen(
            server.url,
            "--count",
            str(n),
            "--hold",
            "600",
            cpu=1,
            on_ready=at_ready,
            stop_when_ready=True,
        )
    finally:
        server.stop()
    return result


def simulator_capacity(n: int, tmp: str) -> dict:
    server = Server("libv4e", 0, tmp)
    sim = subprocess.Popen(
        [
            PY,
            "-m",
            "apps",
            "--log-level",
            "ERROR",
            "sim",
            "--url",
            server.url,
            "--id",
            "SIM00001",
            "--count",
            str(n),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    start = time.perf_counter()
    online = 0
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.api_port}", timeout=30) as client:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                online = client.get("/status").json()["total_online"]
                if online >= n:
                    break
                time.sleep(1)
        seconds = time.perf_counter() - start
        time.sleep(2)
        rss = rss_kib(sim.pid)
    finally:
        sim.terminate()
        sim.wait(timeout=30)
        server.stop()
    return {
        "chargers": n,
        "online": online,
        "seconds_to_online": round(seconds, 1),
        "sim_rss_kib": rss,
        "kib_per_charger": round(rss / max(online, 1), 1),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else round(a / b, 2)


def table(title: str, header: list[str], rows: list[list]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    line = lambda r: "  ".join(str(x).rjust(w) for x, w in zip(r, widths, strict=False))  # noqa: E731
    return "\n".join(
        [f"\n{title}", line(header), line(["-" * w for w in widths]), *map(line, rows)]
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,5000,10000")
    p.add_argument("--steady", type=float, default=20)
    p.add_argument("--saturate", type=float, default=8)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--sim", type=int, default=2000)
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    p.add_argument("--cluster-size", type=int, default=2000, help="chargers in the scale-out part")
    p.add_argument("--cluster-only", action="store_true", help="only the scale-out part")
    p.add_argument("--no-cluster", action="store_true", help="skip the scale-out part")
    args = p.parse_args()
    if args.quick:
        args.sizes, args.steady, args.saturate, args.sim = "200,500", 5, 3, 200
        args.cluster_size = 300
    sizes = [int(x) for x in args.sizes.split(",")]
    tmp = tempfile.mkdtemp(prefix="v4e-bench-")
    report: dict = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "processor": platform.processor(),
        },
        "versions": {
            pkg: metadata.version(pkg)
            for pkg in ("libv4e", "ocpp", "trio", "trio-websocket", "websockets", "hypercorn")
        },
        "ramp_steady": {},
        "saturation": {},
        "rest": {},
        "simulator": {},
    }
    started = time.monotonic()
    if args.cluster_only:
        cluster_main(args, report, started)
        return
    for n in sizes:
        for kind in ("libv4e", "reference"):
            print(f"ramp + steady: {kind}, {n} chargers …", flush=True)
            report["ramp_steady"].setdefault(str(n), {})[kind] = ramp_and_steady(
                kind, n, tmp, args.steady
            )
    n_max = max(sizes)
    for kind in ("echo-trio", "echo-websockets"):
        print(f"ramp + steady: {kind}, {n_max} chargers …", flush=True)
        report["ramp_steady"][str(n_max)][kind] = ramp_and_steady(kind, n_max, tmp, args.steady)
    for kind in ("libv4e", "reference", "echo-trio", "echo-websockets"):
        for cores in (1, 2):
            print(f"saturation: {kind}, {cores} core(s) …", flush=True)
            report["saturation"].setdefault(kind, {})[f"{cores}_core"] = saturation(
                kind, tmp, args.clients, args.saturate, cores
            )
    for n in (1, n_max):
        print(f"REST command latency with {n} chargers …", flush=True)
        report["rest"][str(n)] = rest_latency(n, tmp, 200)
    print(f"simulator capacity: {args.sim} chargers …", flush=True)
    report["simulator"] = simulator_capacity(args.sim, tmp)
    print("diagnosis latency while 100 chargers charge …", flush=True)
    from .diagnosis import measure

    report["diagnosis"] = trio.run(measure, 100, 300)
    if not args.no_cluster:
        report["cluster"] = cluster.run(args.cluster_size, args.steady, args.saturate, args.clients)
    report["seconds"] = round(time.monotonic() - started)

    rows = []
    for n, by_kind in report["ramp_steady"].items():
        for kind, r in by_kind.items():
            s = r.get("steady", {})
            rows.append(
                [
                    n,
                    kind,
                    r.get("ramp", {}).get("seconds"),
                    r.get("ramp", {}).get("failures"),
                    r.get("kib_per_charger"),
                    s.get("offered_per_s"),
                    s.get("achieved_per_s"),
                    s.get("rtt_p50_ms"),
                    s.get("rtt_p99_ms"),
                    s.get("rtt_max_ms"),
                    s.get("loadgen_cpu_share"),
                ]
            )
    print(
        table(
            "Connect + boot, then steady state (1 msg / 10 s per charger)",
            [
                "N",
                "server",
                "boot s",
                "fail",
                "KiB/cp",
                "offered/s",
                "achieved/s",
                "p50 ms",
                "p99 ms",
                "max ms",
                "loadgen cpu",
            ],
            rows,
        )
    )
    rows = []
    for kind, by_cores in report["saturation"].items():
        for cores, r in by_cores.items():
            rows.append(
                [
                    kind,
                    cores,
                    r.get("saturation", {}).get("round_trips_per_s"),
                    r.get("saturation", {}).get("rtt_p99_ms"),
                    r.get("saturation", {}).get("loadgen_cpu_share"),
                ]
            )
    print(
        table(
            f"Saturation: {args.clients} chargers, back-to-back Heartbeats",
            ["server", "cores", "round trips/s", "p99 ms", "loadgen cpu"],
            rows,
        )
    )
    sat = report["saturation"]
    for cores in ("1_core", "2_core"):
        mine = sat["libv4e"][cores].get("saturation", {}).get("round_trips_per_s")
        ref = sat["reference"][cores].get("saturation", {}).get("round_trips_per_s")
        report.setdefault("ratios", {})[f"saturation_{cores}"] = ratio(mine, ref)
    for n, by_kind in report["ramp_steady"].items():
        mine, ref = by_kind["libv4e"], by_kind["reference"]
        report["ratios"][f"memory_{n}"] = ratio(
            ref.get("kib_per_charger"), mine.get("kib_per_charger")
        )
        report["ratios"][f"boot_time_{n}"] = ratio(
            ref.get("ramp", {}).get("seconds"), mine.get("ramp", {}).get("seconds")
        )
    print(
        table(
            "REST command → charger → answer",
            ["chargers", "p50 ms", "p99 ms"],
            [[n, r["p50_ms"], r["p99_ms"]] for n, r in report["rest"].items()],
        )
    )
    sim = report["simulator"]
    print(
        table(
            "One simulator process",
            ["chargers", "online", "s to online", "KiB/charger"],
            [[sim["chargers"], sim["online"], sim["seconds_to_online"], sim["kib_per_charger"]]],
        )
    )
    print("\nratios (libv4e vs reference; >1 is better for libv4e):", json.dumps(report["ratios"]))
    if "cluster" in report:
        print_cluster(report["cluster"], args.clients)
    write(report)


def print_cluster(result: dict, clients: int) -> None:
    if "skipped" in result:
        print(f"\nscale-out: skipped ({result['skipped']})")
        return
    print(
        table(
            f"Scale-out: {result['size']} chargers (steady 1 msg / 10 s each), "
            f"saturation with {clients} chargers",
            [
                "setup",
                "boot s",
                "fail",
                "steady/s",
                "steady p99 ms",
                "sat round trips/s",
                "sat p99 ms",
                "RSS KiB",
            ],
            cluster.rows(result),
        )
    )
    rest = result.get("rest", {})
    print(
        table(
            "REST command → charger → answer (chargers on node A)",
            ["path", "p50 ms", "p99 ms"],
            [[k, v["p50_ms"], v["p99_ms"]] for k, v in rest.items()],
        )
    )
    notify = result.get("notify", {})
    print(
        f"NOTIFY: {notify.get('notify_per_s')}/s committed and delivered "
        f"({notify.get('received')} of {notify.get('sent')} received)"
    )
    print(f"load average before {result['load_before']}, after {result['load_after']}")


def cluster_main(args: argparse.Namespace, report: dict, started: float) -> None:
    report["cluster"] = cluster.run(args.cluster_size, args.steady, args.saturate, args.clients)
    report["seconds"] = round(time.monotonic() - started)
    print_cluster(report["cluster"], args.clients)
    write(report)


def write(report: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench-{report['date'].replace(':', '')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out} ({report['seconds']} s)")


if __name__ == "__main__":
    main()
