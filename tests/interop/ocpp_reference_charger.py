"""A charge point written with the `ocpp` package's asyncio ChargePoint (websockets).
Interop peer for tests: prints one JSON line per event on stdout.
Usage: ocpp_reference_charger.py ws://127.0.0.1:PORT CP_ID"""

import asyncio
import datetime as dt
import json
import sys

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as cp
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action


def emit(**event):
    print(json.dumps(event), flush=True)


class ChargePoint(cp):
    @on(Action.reset)
    async def on_reset(self, type):
        emit(event="Reset", type=type)
        return call_result.Reset(status="Accepted")

    @on(Action.remote_start_transaction)
    async def on_remote_start(self, id_tag, **kwargs):
        emit(event="RemoteStartTransaction", id_tag=id_tag)
        return call_result.RemoteStartTransaction(status="Accepted")

    @on(Action.change_configuration)
    async def on_change_configuration(self, key, value):
        emit(event="ChangeConfiguration", key=key, value=value)
        return call_result.ChangeConfiguration(status="Accepted")

    async def run(self):
        boot = await self.call(
            call.BootNotification(charge_point_model="RefModel", charge_point_vendor="RefVendor")
        )
        emit(event="BootNotification.conf", status=boot.status, interval=boot.interval)
        await self.call(
            call.StatusNotification(connector_id=1, error_code="NoError", status="Available")
        )
        hb = await self.call(call.Heartbeat())
        emit(event="Heartbeat.conf", current_time=hb.current_time)
        now = dt.datetime.now(dt.UTC).isoformat()
        tx = await self.call(
            call.StartTransaction(connector_id=1, id_tag="USER123", meter_start=0, timestamp=now)
        )
        emit(
            event="StartTransaction.conf",
            transaction_id=tx.transaction_id,
            status=tx.id_tag_info["status"],
        )
        await self.call(
            call.MeterValues(
                connector_id=1,
                transaction_id=tx.transaction_id,
                meter_value=[
                    {
                        "timestamp": now,
                        "sampledValue": [
                            {
                                "value": "1500",
                                "measurand": "Energy.Active.Import.Register",
                                "unit": "Wh",
                            }
                        ],
                    }
                ],
            )
        )
        await self.call(
            call.StopTransaction(meter_stop=1500, timestamp=now, transaction_id=tx.transaction_id)
        )
        emit(event="ready")


async def main(url, cp_id):
    async with websockets.connect(f"{url}/{cp_id}", subprotocols=["ocpp1.6"]) as ws:
        charger = ChargePoint(cp_id, ws)
        await asyncio.gather(charger.start(), charger.run())


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1], sys.argv[2]))
    except (KeyboardInterrupt, websockets.ConnectionClosed):
        sys.exit(0)
