"""A fault scenario of your own, without touching the apps: "overheating".

CSMS side: a ScenarioSpec (words, and how remediation and resolution look on the wire).
Charger side: a Charger that implements the fault when the CSMS starts it over the
Voice4EVs DataTransfer protocol. Run it and trigger it like the built-in ones:

    python examples/custom_scenario.py
    curl -X POST http://localhost:8000/demo/trigger/overheating
"""

import json

import trio
from ocpp.v16 import call, call_result, enums

from libv4e import (
    DEFAULT_SCENARIOS,
    FAULT_VENDOR_ID,
    BackendConfig,
    Charger,
    ChargerConfig,
    ScenarioEvent,
    ScenarioSpec,
    serve_backend,
)


def observe(run, record):
    """A reset is the remediation; a StatusNotification without error is the resolution."""
    if record.action == "Reset" and record.message_type == 3 and record.direction == "in":
        return ScenarioEvent.REMEDIATION_SEEN
    if (
        run.phase == "remediating"
        and record.action == "StatusNotification"
        and record.message_type == 2
        and record.payload.get("errorCode") == "NoError"
    ):
        return ScenarioEvent.RESOLUTION_SEEN
    return None


OVERHEATING = ScenarioSpec(
    name="overheating",
    title="Charger too hot",
    driver_says="The screen says the charger is too hot.",
    description="The charger reports HighTemperature and stops delivering power.",
    remediation="Reset the charger once it has cooled down.",
    observe=observe,
)


class HotCharger(Charger):
    """Implements the overheating fault on top of the five built-in ones."""

    async def on_data_transfer(self, req: call.DataTransfer):
        data = json.loads(req.data or "{}")
        if req.vendor_id == FAULT_VENDOR_ID and data.get("scenario") == "overheating":
            if req.message_id == "FaultStart":
                connector = self.connectors[1]
                connector.set_error(enums.ChargePointErrorCode.high_temperature, "92 °C")
                connector.status = enums.ChargePointStatus.faulted
                self.report_status(connector)
                return call_result.DataTransfer(enums.DataTransferStatus.accepted)
        if req.vendor_id == FAULT_VENDOR_ID and req.message_id == "FaultClear":
            self._cool_down()
        return await super().on_data_transfer(req)

    async def reboot(self, kind):
        self._cool_down()
        await super().reboot(kind)

    def _cool_down(self) -> None:
        connector = self.connectors[1]
        if connector.error_code == enums.ChargePointErrorCode.high_temperature:
            connector.set_error(enums.ChargePointErrorCode.no_error)
            connector.status = enums.ChargePointStatus.available
            self.report_status(connector)


async def main(
    *,
    api_port: int = 8000,
    ws_port: int = 9000,
    db: str = "overheating.db",
    task_status=trio.TASK_STATUS_IGNORED,
) -> None:
    config = BackendConfig(host="127.0.0.1", ws_port=ws_port, api_port=api_port, db_path=db)
    async with trio.open_nursery() as nursery:
        backend = await nursery.start(
            lambda task_status: serve_backend(
                config, specs=(*DEFAULT_SCENARIOS, OVERHEATING), task_status=task_status
            )
        )
        charger = HotCharger(ChargerConfig(cp_id="EVSE001", reboot_delay=0.3))
        await nursery.start(charger.run, f"ws://127.0.0.1:{backend.ws_port}")
        print(f"REST API on http://127.0.0.1:{backend.api_port}; try the 'overheating' scenario")
        task_status.started((backend, charger))


if __name__ == "__main__":
    trio.run(main)
