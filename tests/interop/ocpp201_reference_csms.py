"""A 2.0.1 central system written the way the `ocpp` package's documentation shows
(asyncio, websockets, `ocpp.v201.ChargePoint`), for our simulator as a 2.0.1 station.
It validates every message against the package's 2.0.1 schemas itself. Once the station
has booted it drives it: GetVariables, SetVariables, GetBaseReport, TriggerMessage,
RequestStartTransaction; once the session has meter values: RequestStopTransaction; then
UnlockConnector, ChangeAvailability and Reset. One JSON line per event on stdout."""

import asyncio
import datetime as dt
import json
import sys

import websockets
from ocpp.routing import after, on
from ocpp.v201 import ChargePoint as cp
from ocpp.v201 import call, call_result


def emit(**event):
    print(json.dumps(event), flush=True)


def now():
    return dt.datetime.now(dt.UTC).isoformat()


class ChargePoint(cp):
    transaction_id = None
    stop_sent = False

    @on("BootNotification")
    async def on_boot(self, charging_station, reason, **kwargs):
        emit(event="BootNotification", vendor=charging_station["vendor_name"], reason=reason)
        return call_result.BootNotification(current_time=now(), interval=10, status="Accepted")

    @after("BootNotification")
    async def after_boot(self, **kwargs):
        asyncio.get_running_loop().call_later(0.3, lambda: asyncio.ensure_future(self.drive()))

    async def drive(self):
        got = await self.call(
            call.GetVariables(
                get_variable_data=[
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                    },
                    {"component": {"name": "Nope"}, "variable": {"name": "Nothing"}},
                ]
            )
        )
        emit(
            event="GetVariables.conf",
            results=[
                (r["attribute_status"], r.get("attribute_value")) for r in got.get_variable_result
            ],
        )
        set_ = await self.call(
            call.SetVariables(
                set_variable_data=[
                    {
                        "attribute_value": "5",
                        "component": {"name": "SampledDataCtrlr"},
                        "variable": {"name": "TxUpdatedInterval"},
                    }
                ]
            )
        )
        emit(event="SetVariables.conf", status=set_.set_variable_result[0]["attribute_status"])
        report = await self.call(call.GetBaseReport(request_id=7, report_base="FullInventory"))
        emit(event="GetBaseReport.conf", status=report.status)
        trigger = await self.call(
            call.TriggerMessage(requested_message="StatusNotification", evse={"id": 1})
        )
        emit(event="TriggerMessage.conf", status=trigger.status)
        start = await self.call(
            call.RequestStartTransaction(
                id_token={"id_token": "INTEROP1", "type": "Central"}, remote_start_id=1, evse_id=1
            )
        )
        emit(event="RequestStartTransaction.conf", status=start.status)

    async def finish(self):
        profile = await self.call(
            call.SetChargingProfile(
                evse_id=1,
                charging_profile={
                    "id": 5,
                    "stack_level": 1,
                    "charging_profile_purpose": "TxProfile",
                    "charging_profile_kind": "Relative",
                    "transaction_id": self.transaction_id,
                    "charging_schedule": [
                        {
                            "id": 1,
                            "charging_rate_unit": "A",
                            "charging_schedule_period": [{"start_period": 0, "limit": 10.0}],
                        }
                    ],
                },
            )
        )
        emit(event="SetChargingProfile.conf", status=profile.status)
        composite = await self.call(
            call.GetCompositeSchedule(duration=600, evse_id=1, charging_rate_unit="A")
        )
        emit(
            event="GetCompositeSchedule.conf", status=composite.status, schedule=composite.schedule
        )
        stop = await self.call(call.RequestStopTransaction(transaction_id=self.transaction_id))
        emit(event="RequestStopTransaction.conf", status=stop.status)

    async def after_stop(self):
        unlock = await self.call(call.UnlockConnector(evse_id=1, connector_id=1))
        emit(event="UnlockConnector.conf", status=unlock.status)
        off = await self.call(
            call.ChangeAvailability(operational_status="Inoperative", evse={"id": 1})
        )
        emit(event="ChangeAvailability.conf", status=off.status)
        reset = await self.call(call.Reset(type="Immediate"))
        emit(event="Reset.conf", status=reset.status)

    @on("StatusNotification")
    async def on_status(self, timestamp, connector_status, evse_id, connector_id, **kwargs):
        emit(event="StatusNotification", evse_id=evse_id, status=connector_status)
        return call_result.StatusNotification()

    @on("Heartbeat")
    async def on_heartbeat(self):
        emit(event="Heartbeat")
        return call_result.Heartbeat(current_time=now())

    @on("Authorize")
    async def on_authorize(self, id_token, **kwargs):
        emit(event="Authorize", id_token=id_token["id_token"])
        return call_result.Authorize(id_token_info={"status": "Accepted"})

    @on("NotifyReport")
    async def on_report(self, request_id, generated_at, seq_no, report_data=None, **kwargs):
        names = sorted(f"{d['component']['name']}.{d['variable']['name']}" for d in report_data)
        emit(event="NotifyReport", request_id=request_id, variables=names)
        return call_result.NotifyReport()

    @on("TransactionEvent")
    async def on_transaction_event(
        self, event_type, timestamp, trigger_reason, seq_no, transaction_info, **kwargs
    ):
        values = [
            sv["value"] for mv in kwargs.get("meter_value") or [] for sv in mv["sampled_value"]
        ]
        emit(
            event="TransactionEvent",
            type=event_type,
            seq_no=seq_no,
            transaction_id=transaction_info["transaction_id"],
            stopped_reason=transaction_info.get("stopped_reason"),
            values=values,
            id_token=(kwargs.get("id_token") or {}).get("id_token"),
        )
        self.transaction_id = transaction_info["transaction_id"]
        loop = asyncio.get_running_loop()
        if event_type == "Updated" and not self.stop_sent:
            self.stop_sent = True
            loop.call_later(0.2, lambda: asyncio.ensure_future(self.finish()))
        if event_type == "Ended":
            loop.call_later(0.2, lambda: asyncio.ensure_future(self.after_stop()))
        answer = {}
        if kwargs.get("id_token"):
            answer["id_token_info"] = {"status": "Accepted"}
        return call_result.TransactionEvent(**answer)

    @on("MeterValues")
    async def on_meter(self, evse_id, meter_value, **kwargs):
        emit(event="MeterValues", evse_id=evse_id)
        return call_result.MeterValues()


async def on_connect(websocket):
    cp_id = websocket.request.path.strip("/").split("/")[-1]
    emit(event="connected", cp_id=cp_id, subprotocol=websocket.subprotocol)
    await ChargePoint(cp_id, websocket).start()


async def main():
    server = await websockets.serve(on_connect, "127.0.0.1", 0, subprotocols=["ocpp2.0.1"])
    emit(event="listening", port=server.sockets[0].getsockname()[1])
    await server.wait_closed()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
