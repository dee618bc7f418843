"""``python -m bench.dashboard``: the dashboard's server-side costs, as JSON.

- the ``state`` event (``_dashboard.dashboard_state`` + JSON) for 100 and 1,000 chargers of
  three connectors: milliseconds per computation and size;
- the power history (``_history.MeterHistory``): MeterValues folded per second, and the
  memory of full rings (bytes per sample).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import tracemalloc
from typing import Any

from ocpp.v16 import call, enums

from libv4e.csms import CentralSystem, MeterHistory, SqliteStore
from libv4e.transport import MessageRecord
from libv4e_apps.csms.dashboard import dashboard_state

NOW = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)


def state_cost(chargers: int, repeat: int = 5) -> dict[str, Any]:
    csms = CentralSystem(SqliteStore(":memory:"))
    for i in range(chargers):
        cp = f"CP{i:05d}"
        csms.registry.connected(cp, NOW)
        csms.registry.booted(cp, call.BootNotification("m", "v"), "Accepted", 30, NOW)
        for c in range(4):
            csms.registry.status(
                cp,
                call.StatusNotification(
                    c, enums.ChargePointErrorCode.no_error, enums.ChargePointStatus.available
                ),
                NOW,
            )
    started = time.perf_counter()
    for _ in range(repeat):
        text = json.dumps(dashboard_state(csms, None, NOW))
    return {
        "chargers": chargers,
        "ms_per_state": round((time.perf_counter() - started) / repeat * 1000, 1),
        "state_kib": len(text) // 1024,
    }


def meter_record(i: int) -> MessageRecord:
    payload = {
        "connectorId": 1 + i % 2,
        "transactionId": 1,
        "meterValue": [
            {
                "timestamp": (NOW + dt.timedelta(seconds=i)).isoformat(),
                "sampledValue": [
                    {"value": "1400", "measurand": "Power.Active.Import", "unit": "W"},
                    {"value": "22000", "measurand": "Power.Offered", "unit": "W"},
                    {"value": str(i), "measurand": "Energy.Active.Import.Register"},
                ],
            }
        ],
    }
    return MessageRecord(f"CP{i % 100:03d}", "in", 2, str(i), "MeterValues", payload, NOW)


def history_cost(count: int = 20_000) -> dict[str, Any]:
    records = [meter_record(i) for i in range(count)]
    history = MeterHistory()
    started = time.perf_counter()
    for record in records:
        history.observe(record)
    per_second = count / (time.perf_counter() - started)
    tracemalloc.start()
    full = MeterHistory(capacity=720)
    for i in range(720 * 4):
        full.observe(meter_record(i))  # 100 chargers, two connectors
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    held = sum(len(full.samples(f"CP{i:03d}", c)) for i in range(100) for c in (1, 2))
    return {
        "meter_values_per_second": round(per_second),
        "bytes_per_sample": round(used / held),
    }


def main() -> None:
    print(
        json.dumps(
            {"state": [state_cost(100), state_cost(1000)], "history": history_cost()}, indent=2
        )
    )


if __name__ == "__main__":
    main()
