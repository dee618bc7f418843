"""``nox -s bench`` / ``python -m bench``: the benchmark, side by side with the reference.

Runs, on loopback, in one go: connect + boot of N chargers, steady state with all N
connected, saturation, REST command latency, and the simulator's capacity — for libv4e's
CSMS (on its lean wsproto transport, and on trio-websocket) and for the `ocpp` package's
documented asyncio central system, plus bare websocket echo servers on trio-websocket, on
the lean wsproto transport and on `websockets`; 20,000 chargers at once; garbage-collection
pauses. Prints tables and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
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
        if kind.startswith("libv4e"):
            transport = "trio-websocket" if kind == "libv4e-trio-websocket" else "wsproto"
            cmd = [
                PY,
                "-m",
                "libv4e_apps",
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
                "--transport",
                transport,
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


PER_LOADGEN = 10_000
"""Chargers per load-generator process (each needs a file descriptor per socket)."""


def gc_pauses(api_port: int) -> dict:
    """The CSMS's garbage-collection pauses so far, per generation (from /metrics)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{api_port}/metrics", timeout=30).text
    except httpx.HTTPError:
        return {}
    out: dict = {}
    for line in text.splitlines():
        m = re.match(
            r'v4e_gc_pause_(seconds_count|seconds_sum|max_seconds)\{generation="(\d)"\} (\S+)', line
        )
        if m:
            key = {"seconds_count": "count", "seconds_sum": "total_ms", "max_seconds": "max_ms"}
            value = float(m.group(3))
            out.setdefault(m.group(2), {})[key[m.group(1)]] = (
                int(value) if m.group(1) == "seconds_count" else round(value * 1000, 1)
            )
    return out


def ramp_and_steady(
    kind: str, n: int, tmp: str, steady: float, per_loadgen: int = PER_LOADGEN
) -> dict:
    """Connect + boot ``n`` chargers (one load generator per 10,000), hold, then steady
    Heartbeats; server memory once all are booted, GC pauses of the whole run."""
    server = Server(kind, 0, tmp)
    parts = max(1, -(-n // per_loadgen))
    counts = [n // parts + (1 if i < n % parts else 0) for i in range(parts)]
    ready = threading.Barrier(parts + 1)
    memory: dict = {}
    outs: list[dict] = [{} for _ in range(parts)]

    def run(i: int) -> None:
        def at_ready(_: dict) -> None:
            ready.wait(timeout=600)  # every generator has booted its share
            ready.wait(timeout=600)  # memory has been read

        outs[i] = loadgen(
            server.url,
            "--count",
            str(counts[i]),
            "--prefix",
            f"LG{chr(65 + i)}" if parts > 1 else "LG",
            "--hold",
            "4" if parts > 1 else "2",
            "--steady",
            str(steady),
            "--rate",
            "0.1",
            cpu=1,
            on_ready=at_ready,
        )

    threads = [threading.Thread(target=run, args=(i,)) for i in range(parts)]
    try:
        for t in threads:
            t.start()
        try:
            ready.wait(timeout=600)
            time.sleep(1.0)
            memory["rss_kib"] = rss_kib(server.proc.pid)
            ready.wait(timeout=600)
        except threading.BrokenBarrierError:
            pass
        for t in threads:
            t.join(timeout=900)
        pauses = gc_pauses(server.api_port) if kind.startswith("libv4e") else None
    finally:
        server.stop()
    out = _merge(outs) if parts > 1 else outs[0]
    booted = out.get("ramp", {}).get("booted", 0)
    out["server_rss_kib"] = memory.get("rss_kib")
    out["server_idle_rss_kib"] = server.idle_rss
    if pauses is not None:
        out["gc_pauses"] = pauses
    if booted and memory.get("rss_kib"):
        out["kib_per_charger"] = round((memory["rss_kib"] - server.idle_rss) / booted, 1)
    return out


def _merge(outs: list[dict]) -> dict:
    """One result from several load generators (percentiles: the worst one's)."""
    ramps = [o.get("ramp", {}) for o in outs]
    steadies = [o.get("steady", {}) for o in outs if o.get("steady")]
    out: dict = {
        "count": sum(o.get("count", 0) for o in outs),
        "loadgens": len(outs),
        "ramp": {
            "seconds": max((r.get("seconds", 0) for r in ramps), default=None),
            "failures": sum(r.get("failures", 0) for r in ramps) + sum(1 for o in outs if not o),
            "booted": sum(r.get("booted", 0) for r in ramps),
        },
    }
    if steadies:
        out["steady"] = {
            "offered_per_s": round(sum(s["offered_per_s"] for s in steadies), 1),
            "achieved_per_s": round(sum(s["achieved_per_s"] for s in steadies), 1),
            "errors": sum(s["errors"] for s in steadies),
            "rtt_p50_ms": max(s["rtt_p50_ms"] or 0 for s in steadies),
            "rtt_p99_ms": max(s["rtt_p99_ms"] or 0 for s in steadies),
            "rtt_max_ms": max(s["rtt_max_ms"] or 0 for s in steadies),
            "loadgen_cpu_share": round(sum(s["loadgen_cpu_share"] for s in steadies), 2),
        }
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
            "libv4e_apps",
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
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                online = client.get("/status").json()["total_online"]
                if online >= n:
                    break
                time.sleep(1)
        seconds = time.perf_counter() - start
        time.sleep(2)
        rss = rss_kib(sim.pid)
        csms_rss = rss_kib(server.proc.pid)
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
        "csms_kib_per_charger": round((csms_rss - server.idle_rss) / max(online, 1), 1),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else round(a / b, 2)


def table(title: str, header: list[str], rows: list[list]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    line = lambda r: "  ".join(str(x).rjust(w) for x, w in zip(r, widths, strict=False))  # noqa: E731
    return "\n".join(
        [f"\n{title}", line(header), line(["-" * w for w in widths]), *map(line, rows)]
    )


SERVERS = ("libv4e", "libv4e-trio-websocket", "reference")
ECHOES = ("echo-trio", "echo-wsproto", "echo-websockets")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,5000,10000")
    p.add_argument("--big", type=int, default=20000, help="libv4e alone with this many (0: skip)")
    p.add_argument("--steady", type=float, default=20)
    p.add_argument("--saturate", type=float, default=8)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3, help="one-core saturation rounds")
    p.add_argument("--sim", type=int, default=10000)
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    p.add_argument("--per-loadgen", type=int, default=PER_LOADGEN, help=argparse.SUPPRESS)
    p.add_argument("--cluster-size", type=int, default=2000, help="chargers in the scale-out part")
    p.add_argument("--cluster-only", action="store_true", help="only the scale-out part")
    p.add_argument("--no-cluster", action="store_true", help="skip the scale-out part")
    args = p.parse_args()
    if args.quick:
        args.sizes, args.steady, args.saturate, args.sim, args.big = "200,500", 5, 3, 200, 0
        args.rounds = 1
        args.cluster_size = 300
    # every server, load generator and simulator inherits this: one socket per charger
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sizes = [int(x) for x in args.sizes.split(",")]
    tmp = tempfile.mkdtemp(prefix="v4e-bench-")
    report: dict = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "processor": platform.processor(),
            "fd_limit": hard,
            "load_average_at_start": os.getloadavg(),
        },
        "versions": {
            pkg: metadata.version(pkg)
            for pkg in (
                "libv4e",
                "ocpp",
                "trio",
                "trio-websocket",
                "wsproto",
                "websockets",
                "hypercorn",
            )
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
    n_max = max(sizes)
    # One core: the kinds interleaved, several rounds, the median run of each kind (the
    # machine is shared: a burst of someone else's load then hits every kind alike).
    runs: dict[str, list[dict]] = {}
    for round_ in range(args.rounds):
        for kind in SERVERS + ECHOES:
            print(f"saturation: {kind}, 1 core, round {round_ + 1} …", flush=True)
            runs.setdefault(kind, []).append(saturation(kind, tmp, args.clients, args.saturate, 1))
    for kind, results in runs.items():
        results.sort(key=lambda r: r.get("saturation", {}).get("round_trips_per_s") or 0)
        report["saturation"].setdefault(kind, {})["1_core"] = {
            **results[len(results) // 2],
            "rounds": [r.get("saturation", {}).get("round_trips_per_s") for r in results],
        }
    for kind in SERVERS + ECHOES:
        print(f"saturation: {kind}, 2 cores …", flush=True)
        report["saturation"][kind]["2_core"] = saturation(kind, tmp, args.clients, args.saturate, 2)
    for n in sizes:
        kinds = SERVERS + ECHOES if n == n_max else ("libv4e", "reference")
        for kind in kinds:
            print(f"ramp + steady: {kind}, {n} chargers …", flush=True)
            report["ramp_steady"].setdefault(str(n), {})[kind] = ramp_and_steady(
                kind, n, tmp, args.steady, args.per_loadgen
            )
    if args.big:
        print(f"ramp + steady: libv4e, {args.big} chargers …", flush=True)
        report["ramp_steady"][str(args.big)] = {
            "libv4e": ramp_and_steady("libv4e", args.big, tmp, args.steady, args.per_loadgen)
        }
    for n in (1, n_max):
        print(f"REST command latency with {n} chargers …", flush=True)
        report["rest"][str(n)] = rest_latency(n, tmp, 200)
    print(f"simulator capacity: {args.sim} chargers …", flush=True)
    report["simulator"] = simulator_capacity(args.sim, tmp)
    print("diagnosis latency while 100 chargers charge …", flush=True)
    from bench.diagnosis import measure

    report["diagnosis"] = trio.run(measure, 100, 300)
    if not args.no_cluster:
        report["cluster"] = cluster.run(args.cluster_size, args.steady, args.saturate, args.clients)
    report["seconds"] = round(time.monotonic() - started)
    report["machine"]["load_average_at_end"] = os.getloadavg()
    report["targets"] = targets(report, n_max, args.big)
    print_report(report, args)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench-{report['date'].replace(':', '')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out} ({report['seconds']} s)")


def _rate(report: dict, kind: str, cores: str) -> float | None:
    return (
        report["saturation"]
        .get(kind, {})
        .get(cores, {})
        .get("saturation", {})
        .get("round_trips_per_s")
    )


def targets(report: dict, n_max: int, big: int) -> dict:
    """The issue's targets, each with its figure and whether it is met."""
    ratios: dict = {}
    for cores in ("1_core", "2_core"):
        for kind in ("libv4e", "libv4e-trio-websocket", "echo-trio", "echo-wsproto"):
            ratios[f"saturation_{cores}_{kind}_vs_reference"] = ratio(
                _rate(report, kind, cores), _rate(report, "reference", cores)
            )
        ratios[f"saturation_{cores}_echo_wsproto_vs_echo_trio"] = ratio(
            _rate(report, "echo-wsproto", cores), _rate(report, "echo-trio", cores)
        )
    for n, by_kind in report["ramp_steady"].items():
        mine, ref = by_kind.get("libv4e", {}), by_kind.get("reference", {})
        ratios[f"memory_{n}"] = ratio(ref.get("kib_per_charger"), mine.get("kib_per_charger"))
        ratios[f"boot_time_{n}"] = ratio(
            ref.get("ramp", {}).get("seconds"), mine.get("ramp", {}).get("seconds")
        )
    report["ratios"] = ratios
    at_max = report["ramp_steady"].get(str(n_max), {}).get("libv4e", {})
    at_big = report["ramp_steady"].get(str(big), {}).get("libv4e", {}) if big else {}
    sat = ratios.get("saturation_1_core_libv4e_vs_reference")
    p99 = at_max.get("steady", {}).get("rtt_p99_ms")
    rest = report["rest"].get(str(n_max), {}).get("p50_ms")
    sim = report["simulator"]
    return {
        "saturation_1_core_ge_1_5x": {"value": sat, "met": bool(sat and sat >= 1.5)},
        "saturation_1_core_ge_2x_stretch": {"value": sat, "met": bool(sat and sat >= 2)},
        f"heartbeat_p99_lt_50ms_at_{n_max}": {"value": p99, "met": p99 is not None and p99 < 50},
        f"connected_{big}_no_failures": {
            "value": at_big.get("ramp", {}).get("failures"),
            "booted": at_big.get("ramp", {}).get("booted"),
            "met": bool(at_big) and at_big.get("ramp", {}).get("failures") == 0,
        },
        f"rest_p50_lt_5ms_with_{n_max}": {"value": rest, "met": rest is not None and rest < 5},
        f"sim_{sim.get('chargers')}_online_lt_60s": {
            "value": sim.get("seconds_to_online"),
            "met": sim.get("online") == sim.get("chargers")
            and (sim.get("seconds_to_online") or 1e9) < 60,
        },
        "csms_lt_25_kib_per_idle_charger": {
            "value": at_max.get("kib_per_charger"),
            "met": (at_max.get("kib_per_charger") or 1e9) < 25,
        },
        "sim_lt_40_kib_per_charger": {
            "value": sim.get("kib_per_charger"),
            "met": (sim.get("kib_per_charger") or 1e9) < 40,
        },
    }


def print_report(report: dict, args: argparse.Namespace) -> None:
    rows = []
    for kind, by_cores in report["saturation"].items():
        rows.append(
            [
                kind,
                _rate(report, kind, "1_core"),
                _rate(report, kind, "2_core"),
                ratio(_rate(report, kind, "1_core"), _rate(report, "reference", "1_core")),
                by_cores.get("1_core", {}).get("saturation", {}).get("rtt_p99_ms"),
                by_cores.get("1_core", {}).get("saturation", {}).get("loadgen_cpu_share"),
                "/".join(f"{x:.0f}" for x in by_cores.get("1_core", {}).get("rounds", []) if x),
            ]
        )
    print(
        table(
            f"Saturation: {args.clients} chargers, back-to-back Heartbeats (round trips/s)",
            [
                "server",
                "1 core (median)",
                "2 cores",
                "1 core vs ref",
                "p99 ms (1c)",
                "loadgen cpu (1c)",
                "1-core rounds",
            ],
            rows,
        )
    )
    rows = []
    for n, by_kind in report["ramp_steady"].items():
        for kind, r in by_kind.items():
            s = r.get("steady", {})
            gen2 = r.get("gc_pauses", {})
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
                    max((g.get("max_ms", 0) for g in gen2.values()), default=None),
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
                "gc max ms",
                "loadgen cpu",
            ],
            rows,
        )
    )
    print(
        table(
            "REST command → charger → answer",
            ["chargers", "p50 ms", "p99 ms"],
            [[n, r.get("p50_ms"), r.get("p99_ms")] for n, r in report["rest"].items()],
        )
    )
    sim = report["simulator"]
    print(
        table(
            "One simulator process",
            ["chargers", "online", "s to online", "KiB/charger", "CSMS KiB/charger"],
            [
                [
                    sim["chargers"],
                    sim["online"],
                    sim["seconds_to_online"],
                    sim["kib_per_charger"],
                    sim.get("csms_kib_per_charger"),
                ]
            ],
        )
    )
    print("\nratios (>1 favours the first):", json.dumps(report["ratios"]))
    print(
        table(
            "Targets",
            ["target", "value", "met"],
            [[k, v.get("value"), v.get("met")] for k, v in report["targets"].items()],
        )
    )
    if "cluster" in report:
        print_cluster(report["cluster"], args.clients)


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
