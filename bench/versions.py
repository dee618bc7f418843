"""The same charging workload over OCPP 1.6 and OCPP 2.0.1: ``python -m bench.versions``
prints a table and writes bench/results/versions.json.

N stations (``--stations``, 200) each boot, then run K sessions (``--sessions``, 5) back
to back, as fast as the answers come, with M meter updates each (``--meters``, 3):

- 1.6: BootNotification, StartTransaction, MeterValues × M, StopTransaction;
- 2.0.1: BootNotification, TransactionEvent Started (seqNo 0), Updated × M, Ended (string
  transaction ids, Energy.Active.Import.Register in every event).

The servers: libv4e's backend embedded in this process (``serve_backend``, SQLite in a
temporary directory, both versions served) and the reference, a central system built
on the `ocpp` package's classes (asyncio ``ChargePoint`` on a `websockets` server, one
class per version) that answers the same messages and books nothing, in a process of its
own. The load generator is a process of its own as well (raw OCPP-J frames over
`websockets`, asyncio; no code of libv4e or of the `ocpp` package), so the CSMS's CPU
and memory are measured apart from it. The stations connect and boot first; the clock
runs from the first session's first call to the last session's last answer.

Figures per (server, version): sessions/s, messages/s, per-message latency p50/p99/max,
the CSMS's CPU seconds over the sessions and its RSS idle, once all are booted ("before")
and after the last answer (libv4e's is this process's: the backend runs in it, one fresh
backend per version, in turn). For libv4e the books are checked after
each run: exactly N × K transaction records, N × K distinct ids, all stopped, every
session's energy the one the station reported (never negative); a run whose books are
wrong fails the bench (exit status 1), whatever its speed. Targets: ``TARGETS``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
VERSIONS = ("1.6", "2.0.1")
SUBPROTOCOL = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}
STEP_WH = 100  # energy register increase per meter update (and to the stop)

TARGETS = {
    # 2.0.1's sessions/s over libv4e's own 1.6 sessions/s, same machine, same run
    "libv4e_201_vs_16_throughput_min": 0.8,
    # per-message p99 at the default size (200 stations × 5 sessions × 3 meter updates, all
    # back to back: mostly queueing), either version; measured 2026-12-04 on the shared
    # 2-core machine at 283-614 ms (see docs/performance.md)
    "libv4e_p99_ms_max": 1000.0,
}


# -- the load generator (its own process: stdlib + websockets only) -----------------------


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Station:
    def __init__(self, url: str, cp_id: str, version: str, latencies: list[float]) -> None:
        self.url, self.cp_id, self.version, self.latencies = url, cp_id, version, latencies
        self.ws: Any = None
        self.uid = 0
        self.errors: list[str] = []

    async def call(self, action: str, payload: dict, timed: bool = True) -> dict:
        self.uid += 1
        uid = str(self.uid)
        start = time.perf_counter()
        await self.ws.send(json.dumps([2, uid, action, payload]))
        while True:
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), 60))
            if frame[0] == 2:  # a call from the CSMS: this station implements none
                await self.ws.send(json.dumps([4, frame[1], "NotImplemented", "", {}]))
            elif frame[1] == uid:
                if timed:
                    self.latencies.append(time.perf_counter() - start)
                if frame[0] == 4:
                    raise RuntimeError(f"{self.cp_id} {action}: CALLERROR {frame[2]} {frame[3]}")
                return frame[2]

    async def boot(self) -> None:
        import websockets

        self.ws = await websockets.connect(
            f"{self.url}/{self.cp_id}",
            subprotocols=[SUBPROTOCOL[self.version]],
            open_timeout=60,
            ping_interval=None,
            max_queue=None,
            compression=None,
        )
        if self.ws.subprotocol != SUBPROTOCOL[self.version]:
            raise RuntimeError(f"{self.cp_id}: the CSMS chose {self.ws.subprotocol!r}")
        if self.version == "1.6":
            boot = {"chargePointVendor": "Bench", "chargePointModel": "V16"}
        else:
            boot = {
                "reason": "PowerUp",
                "chargingStation": {"model": "V201", "vendorName": "Bench"},
            }
        answer = await self.call("BootNotification", boot, timed=False)
        if answer.get("status") != "Accepted":
            raise RuntimeError(f"{self.cp_id}: boot {answer}")

    async def session_16(self, base: int, meters: int) -> None:
        start = await self.call(
            "StartTransaction",
            {"connectorId": 1, "idTag": "BENCH", "meterStart": base, "timestamp": _now()},
        )
        if start["idTagInfo"]["status"] != "Accepted":
            raise RuntimeError(f"{self.cp_id}: StartTransaction {start}")
        tid = start["transactionId"]
        for i in range(1, meters + 1):
            sample = {
                "value": str(base + i * STEP_WH),
                "measurand": "Energy.Active.Import.Register",
                "unit": "Wh",
            }
            await self.call(
                "MeterValues",
                {
                    "connectorId": 1,
                    "transactionId": tid,
                    "meterValue": [{"timestamp": _now(), "sampledValue": [sample]}],
                },
            )
        stop = {
            "transactionId": tid,
            "meterStop": base + (meters + 1) * STEP_WH,
            "timestamp": _now(),
            "reason": "Local",
        }
        await self.call("StopTransaction", stop)

    async def session_201(self, base: int, meters: int, n: int) -> None:
        tid = f"{self.cp_id}-{n}"

        def event(kind: str, seq: int, register: int, trigger: str, **extra: Any) -> dict:
            sample = {
                "value": register,
                "measurand": "Energy.Active.Import.Register",
                "unitOfMeasure": {"unit": "Wh"},
            }
            return {
                "eventType": kind,
                "timestamp": _now(),
                "triggerReason": trigger,
                "seqNo": seq,
                "transactionInfo": {"transactionId": tid, **extra.pop("info", {})},
                "meterValue": [{"timestamp": _now(), "sampledValue": [sample]}],
                **extra,
            }

        started = await self.call(
            "TransactionEvent",
            event(
                "Started",
                0,
                base,
                "Authorized",
                evse={"id": 1, "connectorId": 1},
                idToken={"idToken": "BENCH", "type": "ISO14443"},
            ),
        )
        if started.get("idTokenInfo", {}).get("status") != "Accepted":
            raise RuntimeError(f"{self.cp_id}: Started {started}")
        for i in range(1, meters + 1):
            await self.call(
                "TransactionEvent",
                event("Updated", i, base + i * STEP_WH, "MeterValuePeriodic"),
            )
        await self.call(
            "TransactionEvent",
            event(
                "Ended",
                meters + 1,
                base + (meters + 1) * STEP_WH,
                "StopAuthorized",
                info={"stoppedReason": "Local"},
            ),
        )

    async def sessions(self, index: int, count: int, meters: int) -> None:
        for n in range(count):
            base = index * 1_000_000 + n * 10_000
            if self.version == "1.6":
                await self.session_16(base, meters)
            else:
                await self.session_201(base, meters, n)


async def _generate(url: str, version: str, stations: int, sessions: int, meters: int) -> dict:
    latencies: list[float] = []
    prefix = "B16" if version == "1.6" else "B201"
    fleet = [_Station(url, f"{prefix}{i:05d}", version, latencies) for i in range(stations)]
    boot_start = time.perf_counter()
    await asyncio.gather(*(s.boot() for s in fleet))
    boot_s = time.perf_counter() - boot_start
    # tell the driver all are booted (it reads the CSMS's CPU and memory) and wait for "go"
    print(json.dumps({"booted": stations}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    cpu_start = time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(s.sessions(i, sessions, meters) for i, s in enumerate(fleet)))
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    for s in fleet:
        await s.ws.close()
    latencies.sort()
    return {
        "boot_s": round(boot_s, 2),
        "elapsed_s": round(elapsed, 3),
        "messages": len(latencies),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2),
        "loadgen_cpu_s": round(cpu, 2),
    }


def client_main(url: str, version: str, stations: int, sessions: int, meters: int) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(json.dumps(asyncio.run(_generate(url, version, stations, sessions, meters))))


# -- the reference central system (its own process: the `ocpp` package's classes) ---------


def reference_main(port: int) -> None:
    import websockets
    from ocpp.routing import on
    from ocpp.v16 import ChargePoint as ChargePoint16
    from ocpp.v16 import call_result as result16
    from ocpp.v201 import ChargePoint as ChargePoint201
    from ocpp.v201 import call_result as result201

    def now() -> str:
        return dt.datetime.now(dt.UTC).isoformat()

    ids = iter(range(1, 2**31))

    class CP16(ChargePoint16):
        @on("BootNotification")
        async def on_boot(self, charge_point_vendor, charge_point_model, **kwargs):
            return result16.BootNotification(current_time=now(), interval=300, status="Accepted")

        @on("StartTransaction")
        async def on_start(self, connector_id, id_tag, meter_start, timestamp, **kwargs):
            return result16.StartTransaction(
                transaction_id=next(ids), id_tag_info={"status": "Accepted"}
            )

        @on("MeterValues")
        async def on_meter(self, connector_id, meter_value, **kwargs):
            return result16.MeterValues()

        @on("StopTransaction")
        async def on_stop(self, meter_stop, timestamp, transaction_id, **kwargs):
            return result16.StopTransaction()

    class CP201(ChargePoint201):
        @on("BootNotification")
        async def on_boot(self, charging_station, reason, **kwargs):
            return result201.BootNotification(current_time=now(), interval=300, status="Accepted")

        @on("TransactionEvent")
        async def on_event(
            self, event_type, timestamp, trigger_reason, seq_no, transaction_info, **kwargs
        ):
            if kwargs.get("id_token"):
                return result201.TransactionEvent(id_token_info={"status": "Accepted"})
            return result201.TransactionEvent()

    async def handler(ws):
        cp_id = ws.request.path.rsplit("/", 1)[-1]
        try:
            await (CP16 if ws.subprotocol == "ocpp1.6" else CP201)(cp_id, ws).start()
        except websockets.ConnectionClosed:
            pass

    async def serve() -> None:
        async with websockets.serve(
            handler,
            "127.0.0.1",
            port,
            subprotocols=["ocpp2.0.1", "ocpp1.6"],
            ping_interval=None,
            compression=None,
        ):
            print("ready", flush=True)
            await asyncio.Future()

    asyncio.run(serve())


# -- the driver ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_kib(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _cpu_s(pid: int | str = "self") -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load_command(url: str, version: str, args: argparse.Namespace) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.versions",
        "--client",
        url,
        version,
        str(args.stations),
        str(args.sessions),
        str(args.meters),
    ]


def _figures(load: dict, version: str, args: argparse.Namespace) -> dict:
    sessions = args.stations * args.sessions
    expected = sessions * (args.meters + 2)
    if load["messages"] != expected:
        raise RuntimeError(f"{load['messages']} answered calls, expected {expected}")
    return {
        "version": version,
        "sessions": sessions,
        "sessions_per_s": round(sessions / load["elapsed_s"], 1),
        "messages_per_s": round(load["messages"] / load["elapsed_s"], 1),
        **load,
    }


def check_books(txs: list[dict], version: str, args: argparse.Namespace) -> dict:
    """The invariant check of one libv4e run: what is wrong, as a list (empty: books ok)."""
    want = args.stations * args.sessions
    energy = (args.meters + 1) * STEP_WH
    problems = []
    if len(txs) != want:
        problems.append(f"{len(txs)} transaction records, expected {want}")
    if len({t["transaction_id"] for t in txs}) != len(txs):
        problems.append("transaction ids repeat")
    if version == "2.0.1":
        keys = {(t["cp_id"], t["charger_transaction_id"]) for t in txs}
        if len(keys) != len(txs) or None in {k[1] for k in keys}:
            problems.append("(station, transactionId) not distinct or missing")
    active = sum(t["active"] for t in txs)
    if active:
        problems.append(f"{active} sessions not stopped")
    wrong = [
        t["transaction_id"]
        for t in txs
        if t["meter_stop"] is None
        or t["meter_stop"] - t["meter_start"] != energy
        or t["energy_wh"] != energy
    ]
    if wrong:
        problems.append(f"{len(wrong)} sessions' energy is not {energy} Wh (e.g. {wrong[:5]})")
    negative = sum(
        1 for t in txs if t["meter_stop"] is not None and t["meter_stop"] < t["meter_start"]
    )
    if negative:
        problems.append(f"{negative} sessions with negative energy")
    flagged = sorted({f for t in txs for f in t["flags"]})
    if flagged:
        problems.append(f"flags raised: {flagged}")
    return {
        "records": len(txs),
        "distinct_ids": len({t["transaction_id"] for t in txs}),
        "stopped": len(txs) - active,
        "problems": problems,
        "ok": not problems,
    }


class _Lines:
    """Lines of a trio receive stream."""

    def __init__(self, stream: Any) -> None:
        self.stream, self.buffer = stream, b""

    async def next(self) -> str:
        while b"\n" not in self.buffer:
            chunk = await self.stream.receive_some()
            if not chunk:
                raise RuntimeError("the load generator stopped early")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()


async def _run_libv4e(version: str, args: argparse.Namespace) -> dict:
    import httpx
    import trio

    from libv4e_apps.csms.backend import BackendConfig, serve_backend

    with tempfile.TemporaryDirectory() as tmp:
        config = BackendConfig(host="127.0.0.1", ws_port=0, api_port=0, db_path=f"{tmp}/b.db")
        async with trio.open_nursery() as nursery:
            backend = await nursery.start(
                lambda task_status: serve_backend(config, task_status=task_status)
            )
            url = f"ws://127.0.0.1:{backend.ws_port}"
            rss_idle = _rss_kib()
            proc = await trio.lowlevel.open_process(
                _load_command(url, version, args), stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            assert proc.stdin is not None and proc.stdout is not None
            lines = _Lines(proc.stdout)
            await lines.next()  # all booted
            rss_before, cpu_before = _rss_kib(), _cpu_s()
            await proc.stdin.send_all(b"go\n")
            load = json.loads(await lines.next())
            cpu = _cpu_s() - cpu_before
            rss_after = _rss_kib()
            if await proc.wait() != 0:
                raise RuntimeError(f"the load generator failed ({proc.returncode})")
            figures = _figures(load, version, args)
            txs: list[dict] = []
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{backend.api_port}") as api:
                while True:
                    page = await api.get(
                        "/transactions", params={"limit": 1000, "offset": len(txs)}
                    )
                    page.raise_for_status()
                    got = page.json()["transactions"]
                    txs += got
                    if len(got) < 1000:
                        break
            nursery.cancel_scope.cancel()
    return {
        **figures,
        "csms_cpu_s": round(cpu, 2),
        "rss_idle_kib": rss_idle,
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "books": check_books(txs, version, args),
    }


def _run_reference(version: str, args: argparse.Namespace) -> dict:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.versions", "--reference", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError("the reference central system did not start")
        rss_idle = _rss_kib(server.pid)
        proc = subprocess.Popen(
            _load_command(f"ws://127.0.0.1:{port}", version, args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdout.readline()  # all booted
        rss_before, cpu_before = _rss_kib(server.pid), _cpu_s(server.pid)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        load = json.loads(proc.stdout.readline())
        cpu = _cpu_s(server.pid) - cpu_before
        rss_after = _rss_kib(server.pid)
        if proc.wait() != 0:
            raise RuntimeError(f"the load generator failed ({proc.returncode})")
    finally:
        server.terminate()
        server.wait(10)
    return {
        **_figures(load, version, args),
        "csms_cpu_s": round(cpu, 2),
        "rss_idle_kib": rss_idle,
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
    }


def _versions() -> dict:
    names = ("ocpp", "trio", "websockets", "wsproto", "libv4e")
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def _table(runs: list[dict]) -> str:
    head = (
        "| server | version | sessions/s | messages/s | p50 ms | p99 ms | max ms "
        "| CSMS CPU s | RSS before → after KiB | books |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in runs:
        books = r.get("books")
        verdict = "—" if books is None else ("ok" if books["ok"] else "WRONG")
        lines.append(
            f"| {r['server']} | {r['version']} | {r['sessions_per_s']:,.0f} "
            f"| {r['messages_per_s']:,.0f} | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} "
            f"| {r['csms_cpu_s']} | {r['rss_before_kib']:,} → {r['rss_after_kib']:,} | {verdict} |"
        )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        url, version, *numbers = sys.argv[2:]
        client_main(url, version, *(int(n) for n in numbers))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--reference":
        reference_main(int(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--meters", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS / "versions.json")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    import trio

    started = time.time()
    runs = []
    for version in VERSIONS:
        runs.append({"server": "libv4e", **trio.run(_run_libv4e, version, args)})
    for version in VERSIONS:
        runs.append({"server": "reference", **_run_reference(version, args)})
    by = {(r["server"], r["version"]): r for r in runs}
    ratio = by["libv4e", "2.0.1"]["sessions_per_s"] / by["libv4e", "1.6"]["sessions_per_s"]
    p99 = max(by["libv4e", v]["p99_ms"] for v in VERSIONS)
    books_ok = all(r["books"]["ok"] for r in runs if "books" in r)
    targets = {
        "libv4e_201_vs_16_throughput": {
            "value": round(ratio, 2),
            "target": f">= {TARGETS['libv4e_201_vs_16_throughput_min']}",
            "met": ratio >= TARGETS["libv4e_201_vs_16_throughput_min"],
        },
        "libv4e_p99_ms": {
            "value": p99,
            "target": f"< {TARGETS['libv4e_p99_ms_max']}",
            "met": p99 < TARGETS["libv4e_p99_ms_max"],
        },
    }
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.time() - started, 1),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
        "packages": _versions(),
        "size": {"stations": args.stations, "sessions": args.sessions, "meters": args.meters},
        "runs": runs,
        "books_ok": books_ok,
        "reference_201_vs_16_throughput": round(
            by["reference", "2.0.1"]["sessions_per_s"] / by["reference", "1.6"]["sessions_per_s"], 2
        ),
        "targets": targets,
        "targets_met": books_ok and all(t["met"] for t in targets.values()),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    print(_table(runs))
    print(
        f"libv4e 2.0.1 / 1.6 sessions/s: {ratio:.2f} (target >= "
        f"{TARGETS['libv4e_201_vs_16_throughput_min']}); libv4e p99 {p99} ms "
        f"(target < {TARGETS['libv4e_p99_ms_max']}); targets met: {result['targets_met']}"
    )
    print(f"written to {args.output}")
    if not books_ok:
        for r in runs:
            if "books" in r and not r["books"]["ok"]:
                print(
                    f"BOOKS WRONG: {r['server']} {r['version']}: {r['books']['problems']}",
                    file=sys.stderr,
                )
        sys.exit(1)


if __name__ == "__main__":
    main()
