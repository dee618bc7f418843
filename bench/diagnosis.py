"""Diagnosis latency while chargers charge: ``python -m bench.diagnosis`` prints JSON.

An embedded backend, ``--chargers`` simulated chargers charging (MeterValues every
second), and ``--requests`` sequential ``GET /chargers/{id}/diagnosis`` (the default:
no probes) on random chargers; p50 / p95 / max in milliseconds. Target: p95 < 200 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time

import httpx
import trio

from libv4e import FleetConfig, serve_fleet
from libv4e_apps.csms.backend import BackendConfig, serve_backend


async def measure(chargers: int, requests: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        config = BackendConfig(host="127.0.0.1", ws_port=0, api_port=0, db_path=f"{tmp}/b.db")
        async with trio.open_nursery() as nursery:
            backend = await nursery.start(
                lambda task_status: serve_backend(config, task_status=task_status)
            )
            fleet = FleetConfig.from_first_id(
                url=f"ws://127.0.0.1:{backend.ws_port}",
                first_id="DG00001",
                count=chargers,
                auto_charge_tag="BENCH1",
            )
            await nursery.start(serve_fleet, fleet)
            ids = [c.cp_id for c in fleet.chargers]
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{backend.api_port}", timeout=30
            ) as client:
                for cp_id in ids:  # every charger charging, 1 s meter samples
                    await client.post(
                        f"/commands/change_configuration/{cp_id}",
                        json={"key": "MeterValueSampleInterval", "value": "1"},
                    )

                async def charging() -> int:
                    r = await client.get("/transactions", params={"active": "true"})
                    return len(r.json()["transactions"])

                with trio.fail_after(60):
                    while await charging() < min(chargers, 50):
                        await trio.sleep(0.2)
                await trio.sleep(2)
                samples, verdicts = [], {}
                for _ in range(requests):
                    cp_id = random.choice(ids)
                    started = time.perf_counter()
                    r = await client.get(f"/chargers/{cp_id}/diagnosis")
                    samples.append(time.perf_counter() - started)
                    verdict = r.json()["verdict"]
                    verdicts[verdict] = verdicts.get(verdict, 0) + 1
            nursery.cancel_scope.cancel()
    samples.sort()
    return {
        "chargers_charging": chargers,
        "requests": requests,
        "p50_ms": round(samples[len(samples) // 2] * 1000, 2),
        "p95_ms": round(samples[int(len(samples) * 0.95)] * 1000, 2),
        "max_ms": round(samples[-1] * 1000, 2),
        "verdicts": verdicts,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chargers", type=int, default=100)
    p.add_argument("--requests", type=int, default=300)
    args = p.parse_args()
    print(json.dumps(trio.run(measure, args.chargers, args.requests), indent=2))


if __name__ == "__main__":
    main()
