"""A central system written with the `ocpp` package (asyncio, websockets) that probes a
charger's edge cases: two RemoteStartTransactions for one connector at once, then
ChangeAvailability Inoperative while the connector is Finishing. Interop peer for tests:
prints one JSON line per event on stdout."""

import asyncio
import datetime as dt
import json
import sys

import websockets
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as cp
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action, RegistrationStatus

TRANSACTION_ID = 7


def emit(**event):
    print(json.dumps(event), flush=True)


def now():
    return dt.datetime.now(dt.UTC).isoformat()


class ChargePoint(cp):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tasks = set()
        self.started = asyncio.Event()
        self.probed_availability = False

    def spawn(self, coro):
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    @on(Action.boot_notification)
    async def on_boot(self, charge_point_vendor, charge_point_model, **kwargs):
        return call_result.BootNotification(
            current_time=now(), interval=30, status=RegistrationStatus.accepted
        )

    @after(Action.boot_notification)
    async def after_boot(self, **kwargs):
        self.spawn(self.probe())

    async def probe(self):
        await asyncio.sleep(0.5)
        first, second = await asyncio.gather(
            self.call(call.RemoteStartTransaction(id_tag="PROBE-A", connector_id=1)),
            self.call(call.RemoteStartTransaction(id_tag="PROBE-B", connector_id=1)),
        )
        emit(event="RemoteStarts", statuses=[first.status, second.status])
        await self.started.wait()
        await asyncio.sleep(0.3)
        result = await self.call(call.RemoteStopTransaction(transaction_id=TRANSACTION_ID))
        emit(event="RemoteStopTransaction.conf", status=result.status)

    async def make_inoperative(self):
        result = await self.call(call.ChangeAvailability(connector_id=1, type="Inoperative"))
        emit(event="ChangeAvailability.conf", status=result.status)

    @on(Action.status_notification)
    async def on_status(self, connector_id, error_code, status, **kwargs):
        emit(event="StatusNotification", connector_id=connector_id, status=status)
        if connector_id == 1 and status == "Finishing" and not self.probed_availability:
            self.probed_availability = True
            self.spawn(self.make_inoperative())
        return call_result.StatusNotification()

    @on(Action.heartbeat)
    async def on_heartbeat(self):
        return call_result.Heartbeat(current_time=now())

    @on(Action.authorize)
    async def on_authorize(self, id_tag):
        emit(event="Authorize", id_tag=id_tag)
        return call_result.Authorize(id_tag_info={"status": "Accepted"})

    @on(Action.start_transaction)
    async def on_start(self, connector_id, id_tag, meter_start, timestamp, **kwargs):
        emit(event="StartTransaction", id_tag=id_tag, connector_id=connector_id)
        self.started.set()
        return call_result.StartTransaction(
            transaction_id=TRANSACTION_ID, id_tag_info={"status": "Accepted"}
        )

    @on(Action.stop_transaction)
    async def on_stop(self, meter_stop, timestamp, transaction_id, **kwargs):
        emit(event="StopTransaction", transaction_id=transaction_id, reason=kwargs.get("reason"))
        return call_result.StopTransaction()

    @on(Action.meter_values)
    async def on_meter(self, connector_id, meter_value, **kwargs):
        return call_result.MeterValues()


async def on_connect(websocket):
    cp_id = websocket.request.path.strip("/").split("/")[-1]
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
