"""A charging station written with the `ocpp` package's asyncio OCPP 2.0.1 ChargePoint
(websockets, subprotocol ocpp2.0.1). Interop peer for tests: prints one JSON line per
event on stdout; the package validates every answer against its 2.0.1 schemas itself.
Usage: ocpp201_reference_charger.py ws://127.0.0.1:PORT CP_ID"""

import asyncio
import datetime as dt
import json
import sys

import websockets
from ocpp.exceptions import OCPPError
from ocpp.v201 import ChargePoint as cp
from ocpp.v201 import call


def emit(**event):
    print(json.dumps(event), flush=True)


def now():
    return dt.datetime.now(dt.UTC).isoformat()


class ChargePoint(cp):
    async def run(self):
        boot = await self.call(
            call.BootNotification(
                charging_station={
                    "model": "Ref201",
                    "vendor_name": "RefVendor201",
                    "serial_number": "SN-201",
                    "firmware_version": "2.0.1-fw",
                },
                reason="PowerUp",
            )
        )
        emit(event="BootNotification.conf", status=boot.status, interval=boot.interval)
        hb = await self.call(call.Heartbeat())
        emit(event="Heartbeat.conf", current_time=hb.current_time)
        for evse, status in ((1, "Available"), (2, "Occupied")):
            await self.call(
                call.StatusNotification(
                    timestamp=now(), connector_status=status, evse_id=evse, connector_id=1
                )
            )
        emit(event="StatusNotification.conf")
        for token in ("GOOD1", "BLOCK1"):
            answer = await self.call(
                call.Authorize(id_token={"id_token": token, "type": "ISO14443"})
            )
            emit(event="Authorize.conf", id_token=token, status=answer.id_token_info["status"])
        await self.call(
            call.NotifyReport(
                request_id=1,
                generated_at=now(),
                seq_no=0,
                report_data=[
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                        "variable_attribute": [
                            {"type": "Actual", "value": "30", "mutability": "ReadWrite"}
                        ],
                    },
                    {
                        "component": {"name": "EVSE", "evse": {"id": 1}},
                        "variable": {"name": "AvailabilityState"},
                        "variable_attribute": [{"value": "Available", "mutability": "ReadOnly"}],
                    },
                ],
            )
        )
        emit(event="NotifyReport.conf")
        await self.call(
            call.NotifyEvent(
                generated_at=now(),
                seq_no=0,
                event_data=[
                    {
                        "event_id": 7,
                        "timestamp": now(),
                        "trigger": "Delta",
                        "actual_value": "Faulted",
                        "event_notification_type": "HardWiredNotification",
                        "component": {"name": "Connector", "evse": {"id": 2, "connector_id": 1}},
                        "variable": {"name": "AvailabilityState"},
                        "tech_code": "E42",
                    }
                ],
            )
        )
        emit(event="NotifyEvent.conf")
        transfer = await self.call(call.DataTransfer(vendor_id="com.example", data={"a": 1}))
        emit(event="DataTransfer.conf", status=transfer.status)
        try:
            await self.call(
                call.TransactionEvent(
                    event_type="Started",
                    timestamp=now(),
                    trigger_reason="Authorized",
                    seq_no=0,
                    transaction_info={"transaction_id": "TX-1"},
                ),
                suppress=False,
            )
            emit(event="TransactionEvent.conf")
        except OCPPError as exc:
            emit(event="TransactionEvent.error", code=exc.code)
        emit(event="ready")


async def main(url, cp_id):
    async with websockets.connect(f"{url}/{cp_id}", subprotocols=["ocpp2.0.1"]) as ws:
        emit(event="connected", subprotocol=ws.subprotocol)
        charger = ChargePoint(cp_id, ws)
        await asyncio.gather(charger.start(), charger.run())


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1], sys.argv[2]))
    except (KeyboardInterrupt, websockets.ConnectionClosed):
        sys.exit(0)
