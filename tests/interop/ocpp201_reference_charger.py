"""A charging station written with the `ocpp` package's asyncio OCPP 2.0.1 ChargePoint
(websockets, subprotocol ocpp2.0.1). Interop peer for tests: prints one JSON line per
event on stdout; the package validates every answer against its 2.0.1 schemas itself.
It runs one session (TransactionEvent Started, Updated; Ended once the central system
asks it to stop) and answers the central system's commands.
Usage: ocpp201_reference_charger.py ws://127.0.0.1:PORT CP_ID"""

import asyncio
import datetime as dt
import json
import sys

import websockets
from ocpp.routing import on
from ocpp.v201 import ChargePoint as cp
from ocpp.v201 import call, call_result


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
        seq = iter(range(100))

        async def event(kind, trigger, register, **extra):
            return await self.call(
                call.TransactionEvent(
                    event_type=kind,
                    timestamp=now(),
                    trigger_reason=trigger,
                    seq_no=next(seq),
                    transaction_info={"transaction_id": "TX-1", **extra.pop("info", {})},
                    meter_value=[
                        {
                            "timestamp": now(),
                            "sampled_value": [
                                {
                                    "value": register,
                                    "measurand": "Energy.Active.Import.Register",
                                    "unit_of_measure": {"unit": "kWh"},
                                }
                            ],
                        }
                    ],
                    **extra,
                ),
                suppress=False,
            )

        started = await event(
            "Started",
            "Authorized",
            10.0,
            evse={"id": 1, "connector_id": 1},
            id_token={"id_token": "GOOD1", "type": "ISO14443"},
            info={"charging_state": "Charging"},
        )
        emit(event="TransactionEvent.conf", kind="Started", status=started.id_token_info["status"])
        await event("Updated", "MeterValuePeriodic", 10.5)
        emit(event="TransactionEvent.conf", kind="Updated")
        emit(event="ready")
        await self.stopped.wait()
        await event("Ended", "RemoteStop", 11.25, info={"stopped_reason": "Remote"})
        emit(event="TransactionEvent.conf", kind="Ended")

    # -- what the central system asks -----------------------------------------------------

    @on("RequestStartTransaction")
    def on_request_start(self, id_token, remote_start_id, evse_id=None, **_):
        emit(event="RequestStartTransaction", id_token=id_token, evse_id=evse_id)
        return call_result.RequestStartTransaction(status="Accepted")

    @on("RequestStopTransaction")
    def on_request_stop(self, transaction_id, **_):
        emit(event="RequestStopTransaction", transaction_id=transaction_id)
        self.stopped.set()
        return call_result.RequestStopTransaction(status="Accepted")

    @on("Reset")
    def on_reset(self, type, **_):
        emit(event="Reset", type=type)
        return call_result.Reset(status="Scheduled")

    @on("UnlockConnector")
    def on_unlock(self, evse_id, connector_id, **_):
        emit(event="UnlockConnector", evse_id=evse_id, connector_id=connector_id)
        return call_result.UnlockConnector(status="Unlocked")

    @on("ChangeAvailability")
    def on_change_availability(self, operational_status, evse=None, **_):
        emit(event="ChangeAvailability", operational_status=operational_status, evse=evse)
        return call_result.ChangeAvailability(status="Accepted")

    @on("SetVariables")
    def on_set_variables(self, set_variable_data, **_):
        results = []
        for item in set_variable_data:
            emit(
                event="SetVariables",
                component=item["component"]["name"],
                variable=item["variable"]["name"],
                value=item["attribute_value"],
            )
            self.variables[(item["component"]["name"], item["variable"]["name"])] = item[
                "attribute_value"
            ]
            results.append(
                {
                    "attribute_status": "Accepted",
                    "component": item["component"],
                    "variable": item["variable"],
                }
            )
        return call_result.SetVariables(set_variable_result=results)

    @on("GetVariables")
    def on_get_variables(self, get_variable_data, **_):
        results = []
        for item in get_variable_data:
            where = (item["component"]["name"], item["variable"]["name"])
            value = self.variables.get(where)
            result = {
                "attribute_status": "Accepted" if value is not None else "UnknownVariable",
                "component": item["component"],
                "variable": item["variable"],
            }
            if value is not None:
                result["attribute_value"] = value
            results.append(result)
        emit(event="GetVariables", asked=len(results))
        return call_result.GetVariables(get_variable_result=results)

    @on("GetTransactionStatus")
    def on_get_transaction_status(self, transaction_id=None, **_):
        emit(event="GetTransactionStatus", transaction_id=transaction_id)
        return call_result.GetTransactionStatus(
            messages_in_queue=False, ongoing_indicator=not self.stopped.is_set()
        )

    @on("GetCompositeSchedule")
    def on_get_composite_schedule(self, duration, evse_id, charging_rate_unit=None, **_):
        emit(event="GetCompositeSchedule", evse_id=evse_id, duration=duration)
        return call_result.GetCompositeSchedule(
            status="Accepted",
            schedule={
                "evse_id": evse_id,
                "duration": duration,
                "schedule_start": "2030-01-01T00:00:00Z",
                "charging_rate_unit": charging_rate_unit or "A",
                "charging_schedule_period": [
                    {"start_period": 0, "limit": 32.0},
                    {"start_period": 30, "limit": 16.0, "number_phases": 3},
                ],
            },
        )


async def main(url, cp_id):
    async with websockets.connect(f"{url}/{cp_id}", subprotocols=["ocpp2.0.1"]) as ws:
        emit(event="connected", subprotocol=ws.subprotocol)
        charger = ChargePoint(cp_id, ws)
        charger.stopped = asyncio.Event()
        charger.variables = {("OCPPCommCtrlr", "HeartbeatInterval"): "30"}
        await asyncio.gather(charger.start(), charger.run())


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1], sys.argv[2]))
    except (KeyboardInterrupt, websockets.ConnectionClosed):
        sys.exit(0)
