"""Soak test: N simulated chargers against one CSMS process for M minutes, with random
resets, dropped connections and sessions; reports CSMS memory over time, messages lost
(must be 0), errors, and the billing invariants (distinct transaction ids = sessions
started = rows, no id shared, no unmatched stop, nothing left open); exits 1 when any
breaks.

    python -m bench.soak --chargers 1000 --minutes 10

The CSMS runs as a separate ``v4e csms`` process (its memory is what is measured); the
chargers run in this process. Only loopback is used.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

from libv4e import Charger, ChargerConfig


def rss_kib(pid: int) -> int:
    """Resident memory of a process (KiB), from /proc."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match.group(1)) if match else 0


async def main(args: argparse.Namespace) -> dict:
    tmp = tempfile.mkdtemp(prefix="v4e-soak-")
    db = os.path.join(tmp, "soak.db")
    csms = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "libv4e_apps",
            "--log-level",
            "WARNING",
            "csms",
            "--host",
            "127.0.0.1",
            "--ws-port",
            "0",
            "--api-port",
            "0",
            "--db",
            db,
            "--heartbeat-interval",
            str(args.heartbeat),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    ws = api = None
    while ws is None or api is None:
        line = csms.stdout.readline()
        if m := re.search(r"OCPP 1.6-J:\s+(ws://\S+)/\{cp_id\}", line):
            ws = m.group(1).replace("localhost", "127.0.0.1")
        if m := re.search(r"REST API:\s+(http://\S+)", line):
            api = m.group(1).replace("localhost", "127.0.0.1")
    chargers = [
        Charger(
            ChargerConfig(
                cp_id=f"SOAK{i:05d}",
                reboot_delay=1.0,
                unplug_delay=2.0,
                reconnect_min=1.0,
                reconnect_max=10.0,
            )
        )
        for i in range(args.chargers)
    ]
    for c in chargers:
        c.configuration.keys["MeterValueSampleInterval"].value = str(args.meter_interval)
    report: dict = {
        "chargers": args.chargers,
        "minutes": args.minutes,
        "memory": [],
        "events": {"reset": 0, "disconnect": 0, "start": 0, "stop": 0},
        "errors": [],
    }
    started = time.monotonic()
    async with (
        httpx.AsyncClient(base_url=api, timeout=30) as client,
        trio.open_nursery() as nursery,
    ):
        for i, c in enumerate(chargers):
            await nursery.start(c.run, ws)
            if i % 50 == 49:
                await trio.sleep(0.5)  # ramp: 100 chargers a second

        async def sample_memory() -> None:
            while True:
                report["memory"].append(
                    {
                        "t": round(time.monotonic() - started),
                        "csms_rss_kib": rss_kib(csms.pid),
                        "online": sum(c.online for c in chargers),
                        "charging": sum(bool(c.sessions) for c in chargers),
                    }
                )
                print(json.dumps(report["memory"][-1]), flush=True)
                await trio.sleep(args.sample_every)

        async def chaos() -> None:
            rng = random.Random(args.seed)
            while True:
                await trio.sleep(rng.expovariate(args.chaos_per_second))
                c = rng.choice(chargers)
                what = rng.choice(["start", "start", "stop", "stop", "reset", "disconnect"])
                try:
                    if what == "start" and not c.sessions and c.online:
                        await client.post(
                            f"/commands/remote_start/{c.cp_id}", json={"id_tag": "SOAK"}
                        )
                    elif what == "stop" and c.sessions:
                        tx = next(iter(c.sessions.values())).transaction_id
                        if tx:
                            await client.post(
                                f"/commands/remote_stop/{c.cp_id}", json={"transaction_id": tx}
                            )
                    elif what == "reset" and c.online:
                        await client.post(
                            f"/commands/reset/{c.cp_id}",
                            json={"type": rng.choice(["Soft", "Hard"])},
                        )
                    elif what == "disconnect" and c.online:
                        await c.disconnect(1000, "soak: dropped")
                    else:
                        continue
                    report["events"][what] += 1
                except httpx.HTTPError as exc:
                    report["errors"].append(f"{what} {c.cp_id}: {exc!r}")

        nursery.start_soon(sample_memory)
        nursery.start_soon(chaos)
        await trio.sleep(args.minutes * 60)
        nursery.cancel_scope.cancel()

    # wind down: stop sessions, let every charger deliver what it queued
    async with trio.open_nursery() as nursery:
        for c in chargers:
            nursery.start_soon(c.run, ws)
        await trio.sleep(3)
        for c in chargers:
            for cid in list(c.sessions):
                c.end_session(cid, "Local")
        with trio.move_on_after(60):
            while any(c.queued for c in chargers) or not all(c.online for c in chargers):
                await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    csms.terminate()
    csms.wait(timeout=30)

    queued = sum(c.stats["tx_messages_queued"] for c in chargers)
    delivered = sum(c.stats["tx_messages_delivered"] for c in chargers)
    dropped = sum(c.stats["tx_messages_dropped"] for c in chargers)
    still_queued = sum(c.queued for c in chargers)
    with sqlite3.connect(db) as conn:
        open_tx = conn.execute(
            "SELECT COUNT(*) FROM transactions WHERE data LIKE '%\"stopped_at\": null%'"
        ).fetchone()[0]
        total_tx = conn.execute("SELECT COUNT(*) FROM transactions").fetchone()[0]
        logged = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    invariants = transaction_invariants(db)
    report.update(
        {
            **invariants,
            "tx_messages_queued": queued,
            "tx_messages_delivered": delivered,
            "tx_messages_dropped": dropped,
            "tx_messages_still_queued": still_queued,
            "messages_lost": queued - delivered,
            "transactions": total_tx,
            "transactions_left_open": open_tx,
            "messages_logged": logged,
            "memory_first_kib": report["memory"][1]["csms_rss_kib"]
            if len(report["memory"]) > 1
            else None,
            "memory_last_kib": report["memory"][-1]["csms_rss_kib"],
        }
    )
    return report


def transaction_invariants(db: str) -> dict:
    """Billing invariants, from the CSMS's own message log and rows: every distinct
    StartTransaction got its own id (a repeat got the same one), every id has exactly one
    row of the charger it was given to, and no StopTransaction matched nothing."""
    with sqlite3.connect(db) as conn:
        requests = {
            (cp, uid): payload
            for cp, uid, payload in conn.execute(
                "SELECT cp_id, unique_id, payload FROM messages WHERE direction = 'in' "
                "AND message_type = 2 AND action = 'StartTransaction'"
            )
        }
        answers = conn.execute(
            "SELECT cp_id, unique_id, payload FROM messages WHERE direction = 'out' "
            "AND message_type = 3 AND action = 'StartTransaction'"
        ).fetchall()
        rows = dict(conn.execute("SELECT transaction_id, cp_id FROM transactions"))
        unmatched = conn.execute("SELECT COUNT(*) FROM unmatched_stops").fetchone()[0]
    sessions: dict[tuple, set[int]] = {}  # one start (charger + its payload) -> ids given
    owners: dict[int, set[str]] = {}
    for cp, uid, payload in answers:
        request = requests.get((cp, uid))
        if request is None:
            continue
        tx_id = json.loads(payload)["transactionId"]
        start = json.loads(request)
        key = (cp, start["connectorId"], start["idTag"], start["meterStart"], start["timestamp"])
        sessions.setdefault(key, set()).add(tx_id)
        owners.setdefault(tx_id, set()).add(cp)
    ids = [i for given in sessions.values() for i in given]
    return {
        "sessions_started": len(sessions),
        "distinct_transaction_ids": len(set(ids)),
        "sessions_with_several_ids": sum(len(g) > 1 for g in sessions.values()),
        "ids_shared_by_chargers": sum(len(o) > 1 for o in owners.values()),
        "ids_without_their_row": sum(rows.get(i) != next(iter(o)) for i, o in owners.items()),
        "transaction_rows": len(rows),
        "unmatched_stops": unmatched,
    }


def invariants_hold(report: dict) -> bool:
    """The billing invariants the soak checks (and fails on)."""
    return (
        report["distinct_transaction_ids"] == report["sessions_started"]
        and report["sessions_with_several_ids"] == 0
        and report["ids_shared_by_chargers"] == 0
        and report["ids_without_their_row"] == 0
        and report["transaction_rows"] == report["sessions_started"]
        and report["unmatched_stops"] == 0
        and report["transactions_left_open"] == 0
    )


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--heartbeat", type=int, default=30)
    parser.add_argument("--meter-interval", type=int, default=15)
    parser.add_argument("--chaos-per-second", type=float, default=2.0)
    parser.add_argument("--sample-every", type=float, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", help="write the JSON report here")
    args = parser.parse_args()
    report = trio.run(main, args)
    summary = {k: v for k, v in report.items() if k not in ("memory", "errors")}
    summary["errors"] = len(report["errors"])
    print(json.dumps(summary, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    ok = report["messages_lost"] == 0 and not report["errors"] and invariants_hold(report)
    print("invariants:", "hold" if invariants_hold(report) else "BROKEN")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    cli()
