"""A central system written the way the `ocpp` package's documentation shows (asyncio,
websockets). Interop peer for tests: prints one JSON line per event on stdout."""

import asyncio
import datetime as dt
import json
import sys

import websockets
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as cp
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action, RegistrationStatus


def emit(**event):
    print(json.dumps(event), flush=True)


def now():
    return dt.datetime.now(dt.UTC).isoformat()


class ChargePoint(cp):
    @on(Action.boot_notification)
    async def on_boot(self, charge_point_vendor, charge_point_model, **kwargs):
        emit(event="BootNotification", vendor=charge_point_vendor)
        return call_result.BootNotification(
            current_time=now(), interval=10, status=RegistrationStatus.accepted
        )

    @after(Action.boot_notification)
    async def after_boot(self, **kwargs):
        asyncio.get_running_loop().call_later(
            0.5, lambda: asyncio.ensure_future(self.start_remote())
        )

    async def start_remote(self):
        result = await self.call(call.RemoteStartTransaction(id_tag="INTEROP1", connector_id=1))
        emit(event="RemoteStartTransaction.conf", status=result.status)

    @on(Action.status_notification)
    async def on_status(self, connector_id, error_code, status, **kwargs):
        emit(event="StatusNotification", connector_id=connector_id, status=status)
        return call_result.StatusNotification()

    @on(Action.heartbeat)
    async def on_heartbeat(self):
        emit(event="Heartbeat")
        return call_result.Heartbeat(current_time=now())

    @on(Action.authorize)
    async def on_authorize(self, id_tag):
        emit(event="Authorize", id_tag=id_tag)
        return call_result.Authorize(id_tag_info={"status": "Accepted"})

    @on(Action.start_transaction)
    async def on_start(self, connector_id, id_tag, meter_start, timestamp, **kwargs):
        emit(event="StartTransaction", id_tag=id_tag)
        return call_result.StartTransaction(transaction_id=42, id_tag_info={"status": "Accepted"})

    @on(Action.meter_values)
    async def on_meter(self, connector_id, meter_value, **kwargs):
        emit(event="MeterValues", transaction_id=kwargs.get("transaction_id"))
        return call_result.MeterValues()


async def on_connect(websocket):
    path = websocket.request.path
    cp_id = path.strip("/").split("/")[-1]
    emit(event="connected", cp_id=cp_id, subprotocol=websocket.subprotocol)
    await ChargePoint(cp_id, websocket).start()


async def main():
    server = await websockets.serve(on_connect, "127.0.0.1", 0, subprotocols=["ocpp1.6"])
    emit(event="listening", port=server.sockets[0].getsockname()[1])
    await server.wait_closed()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
