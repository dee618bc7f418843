"""An independent OCPP 2.0.1 charging-station fleet: raw OCPP-J frames over the
`websockets` package (asyncio), sharing no code with libv4e or the `ocpp` package. Each
station connects with subprotocol ocpp2.0.1, boots, and runs sessions as
TransactionEvent Started / Updated / Ended with its own string transaction ids and a
seqNo per transaction; a station whose connection drops reconnects and resends the event
that was not answered, like a real one. One JSON line per event on stdout.

Usage: raw_fleet201.py URL PREFIX COUNT [--rounds N] [--pause S] [--retry] [--together]

--together: all stations send each Started at the same moment (a barrier).
--retry: after each answered event, send the very same one again (an answer "lost" on
         the way).
"""

import argparse
import asyncio
import datetime as dt
import json
import sys
import uuid

import websockets


def emit(**event):
    print(json.dumps(event), flush=True)


def now():
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Station:
    def __init__(self, url, cp_id, index, args, barrier):
        self.url, self.cp_id, self.index, self.args, self.barrier = (
            url,
            cp_id,
            index,
            args,
            barrier,
        )
        self.ws = None

    async def call(self, action, payload):
        uid = str(uuid.uuid4())
        await self.ws.send(json.dumps([2, uid, action, payload]))
        while True:
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
            if frame[0] == 2:  # a call from the CSMS: we implement none of them
                await self.ws.send(json.dumps([4, frame[1], "NotImplemented", "", {}]))
            elif frame[1] == uid:
                if frame[0] == 4:
                    raise RuntimeError(f"{action}: {frame[2]} {frame[3]}")
                return frame[2]

    async def connect(self):
        while True:
            try:
                self.ws = await websockets.connect(
                    f"{self.url}/{self.cp_id}", subprotocols=["ocpp2.0.1"], open_timeout=20
                )
                if self.ws.subprotocol != "ocpp2.0.1":
                    raise SystemExit(f"the CSMS chose {self.ws.subprotocol!r}, not ocpp2.0.1")
                await self.call(
                    "BootNotification",
                    {
                        "reason": "PowerUp",
                        "chargingStation": {"model": "R201", "vendorName": "RawFleet"},
                    },
                )
                return
            except (TimeoutError, OSError, websockets.WebSocketException, RuntimeError):
                await asyncio.sleep(0.3)

    async def reliable(self, action, payload):
        """Send until answered, reconnecting (and resending the same payload) on failure."""
        while True:
            try:
                return await self.call(action, payload)
            except (TimeoutError, websockets.WebSocketException, OSError, RuntimeError):
                emit(event="resend", cp=self.cp_id, action=action)
                await self.connect()

    async def event(self, kind, seq, tid, register, **extra):
        payload = {
            "eventType": kind,
            "timestamp": now(),
            "triggerReason": extra.pop("trigger", "Authorized"),
            "seqNo": seq,
            "transactionInfo": {"transactionId": tid, **extra.pop("info", {})},
            "meterValue": [
                {
                    "timestamp": now(),
                    "sampledValue": [
                        {
                            "value": register,
                            "measurand": "Energy.Active.Import.Register",
                            "unitOfMeasure": {"unit": "Wh"},
                        }
                    ],
                }
            ],
            **extra,
        }
        answer = await self.reliable("TransactionEvent", payload)
        if self.args.retry:
            await self.reliable("TransactionEvent", payload)
        return answer

    async def run(self):
        await self.connect()
        emit(event="connected", cp=self.cp_id)
        for round_ in range(self.args.rounds):
            tid = f"{self.cp_id}-{round_}-{uuid.uuid4().hex[:8]}"
            meter_start = self.index * 100_000 + round_ * 1000
            if self.barrier is not None:
                await self.barrier.wait(round_)
            answer = await self.event(
                "Started",
                0,
                tid,
                meter_start,
                evse={"id": 1, "connectorId": 1},
                idToken={"idToken": f"TAG{self.index}", "type": "ISO14443"},
            )
            emit(
                event="started",
                cp=self.cp_id,
                round=round_,
                tid=tid,
                meter_start=meter_start,
                status=answer.get("idTokenInfo", {}).get("status"),
            )
            energy = meter_start + 300 + self.index % 7
            await self.event("Updated", 1, tid, energy, trigger="MeterValuePeriodic")
            if self.args.pause:
                await asyncio.sleep(self.args.pause)
            meter_stop = energy + 200
            if self.barrier is not None:
                await self.barrier.wait(round_ + 0.5)
            await self.event(
                "Ended",
                2,
                tid,
                meter_stop,
                trigger="StopAuthorized",
                info={"stoppedReason": "Local"},
            )
            emit(event="stopped", cp=self.cp_id, round=round_, tid=tid, meter_stop=meter_stop)
        emit(event="done", cp=self.cp_id)
        await self.ws.close()


class Barrier:
    """Every station waits for all the others before the next step."""

    def __init__(self, parties):
        self.parties = parties
        self.arrived = {}
        self.events = {}

    async def wait(self, step):
        self.arrived[step] = self.arrived.get(step, 0) + 1
        event = self.events.setdefault(step, asyncio.Event())
        if self.arrived[step] == self.parties:
            event.set()
        await event.wait()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("prefix")
    parser.add_argument("count", type=int)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--pause", type=float, default=0.0)
    parser.add_argument("--retry", action="store_true")
    parser.add_argument("--together", action="store_true")
    args = parser.parse_args()
    barrier = Barrier(args.count) if args.together else None
    stations = [
        Station(args.url, f"{args.prefix}{i:04d}", i, args, barrier) for i in range(args.count)
    ]
    results = await asyncio.gather(*(s.run() for s in stations), return_exceptions=True)
    failures = [repr(r) for r in results if isinstance(r, BaseException)]
    emit(event="finished", failures=failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
