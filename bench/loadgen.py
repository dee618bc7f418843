"""Load generator: N charge points over real websockets (asyncio + websockets, its own
process, pre-built frames, no validation), so that it is not the bottleneck.

    python -m bench.loadgen --url ws://127.0.0.1:9000 --count 1000 --steady 20 --rate 0.1
    python -m bench.loadgen --url ... --count 50 --saturate 10

Prints one JSON object: ramp time and failures, steady-state rate and round trips,
saturation throughput, and its own CPU share. Answers server calls (e.g. Reset) with
Accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import time

import websockets

BOOT = '{"chargePointVendor":"Bench","chargePointModel":"LG-1"}'
STATUS = '{"connectorId":1,"errorCode":"NoError","status":"Available"}'


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class Charger:
    def __init__(self, url: str, cp_id: str) -> None:
        self.url, self.cp_id = url, cp_id
        self.ws = None
        self.n = 0
        self.waiting: dict[str, asyncio.Future] = {}
        self.reader: asyncio.Task | None = None

    async def connect(self) -> None:
        self.ws = await websockets.connect(
            f"{self.url}/{self.cp_id}",
            subprotocols=["ocpp1.6"],
            open_timeout=60,
            ping_interval=None,
            max_size=2**20,
            compression=None,
        )
        self.reader = asyncio.create_task(self.read())

    async def read(self) -> None:
        try:
            async for text in self.ws:
                if text[1] == "2":  # a CALL from the server: accept it
                    uid = json.loads(text)[1]
                    await self.ws.send(f'[3,"{uid}",{{"status":"Accepted"}}]')
                    continue
                uid = text.split('"', 2)[1]
                future = self.waiting.pop(uid, None)
                if future is not None and not future.done():
                    future.set_result(text)
        except websockets.ConnectionClosed:
            pass
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("closed"))

    async def call(self, action: str, payload: str, timeout: float = 30) -> float:
        self.n += 1
        uid = f"{self.n}"
        future = asyncio.get_running_loop().create_future()
        self.waiting[uid] = future
        start = time.perf_counter()
        await self.ws.send(f'[2,"{uid}","{action}",{payload}]')
        answer = await asyncio.wait_for(future, timeout)
        if answer[1] != "3":
            raise RuntimeError(answer[:200])
        return time.perf_counter() - start


async def run(args: argparse.Namespace) -> dict:
    chargers = [Charger(args.url, f"{args.prefix}{i:05d}") for i in range(args.count)]
    out: dict = {"count": args.count}
    cpu0, t0 = time.process_time(), time.perf_counter()
    failures = 0
    sem = asyncio.Semaphore(args.concurrency)

    async def boot(c: Charger) -> bool:
        async with sem:
            try:
                await c.connect()
                await c.call("BootNotification", BOOT, timeout=120)
                await c.call("StatusNotification", STATUS, timeout=120)
                return True
            except Exception:
                return False

    results = await asyncio.gather(*(boot(c) for c in chargers))
    failures = results.count(False)
    live = [c for c, ok in zip(chargers, results, strict=False) if ok]
    out["ramp"] = {
        "seconds": round(time.perf_counter() - t0, 2),
        "failures": failures,
        "booted": len(live),
    }
    if args.hold:
        print(json.dumps({"ready": True, **out}), flush=True)
        await asyncio.sleep(args.hold)

    if args.steady:
        rtts: list[float] = []
        errors = scheduled = 0
        t1 = time.perf_counter()
        deadline = t1 + args.steady
        period = 1 / args.rate

        async def beat(c: Charger) -> None:
            """A fixed schedule (random phase): the offered load does not bend to latency."""
            nonlocal errors, scheduled
            due = t1 + random.uniform(0, period)
            while due < deadline:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                scheduled += 1
                try:
                    rtts.append(await c.call(args.action, args.payload, timeout=30))
                except Exception:
                    errors += 1
                due += period

        cpu1 = time.process_time()
        await asyncio.gather(*(beat(c) for c in live))
        wall = time.perf_counter() - t1
        out["steady"] = {
            "offered_per_s": round(scheduled / args.steady, 1),
            "achieved_per_s": round(len(rtts) / args.steady, 1),
            "errors": errors,
            "rtt_p50_ms": _ms(percentile(rtts, 0.50)),
            "rtt_p99_ms": _ms(percentile(rtts, 0.99)),
            "rtt_max_ms": _ms(max(rtts) if rtts else None),
            "loadgen_cpu_share": round((time.process_time() - cpu1) / wall, 2),
        }

    if args.saturate:
        count = 0
        rtts = []
        deadline = time.perf_counter() + args.saturate

        async def hammer(c: Charger) -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                try:
                    rtts.append(await c.call(args.action, args.payload, timeout=30))
                    count += 1
                except Exception:
                    return

        cpu1, t1 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(hammer(c) for c in live))
        wall = time.perf_counter() - t1
        out["saturation"] = {
            "round_trips_per_s": round(count / wall, 1),
            "clients": len(live),
            "rtt_p50_ms": _ms(percentile(rtts, 0.5)),
            "rtt_p99_ms": _ms(percentile(rtts, 0.99)),
            "loadgen_cpu_share": round((time.process_time() - cpu1) / wall, 2),
        }
    out["loadgen_cpu_seconds"] = round(time.process_time() - cpu0, 2)
    for c in live:
        await c.ws.close()
    return out


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--prefix", default="LG")
    p.add_argument("--concurrency", type=int, default=200, help="connections opened at once")
    p.add_argument("--hold", type=float, default=0, help="after the ramp, print ready and wait")
    p.add_argument("--steady", type=float, default=0, help="seconds of steady load")
    p.add_argument("--rate", type=float, default=0.1, help="messages per charger per second")
    p.add_argument("--saturate", type=float, default=0, help="seconds of back-to-back calls")
    p.add_argument("--action", default="Heartbeat")
    p.add_argument("--payload", default="{}")
    p.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    args = p.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.cpu is not None:
        import os

        os.sched_setaffinity(0, {args.cpu})
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
