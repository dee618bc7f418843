"""A fault scenario of your own, without touching the apps: "overheating".

CSMS side: a ScenarioSpec (words, and how remediation and resolution look on the wire).
Charger side: a Charger that implements the fault when the CSMS starts it over the
Voice4EVs DataTransfer protocol. Run it and trigger it like the built-in ones:

    python examples/custom_scenario.py
    curl -X POST http://localhost:8000/demo/trigger/overheating
"""

import trio
from ocpp.v16 import enums

from libv4e import Charger, ChargerConfig
from libv4e.charger import ConnectorEvent
from libv4e.scenarios import DEFAULT_SCENARIOS, ScenarioEvent, ScenarioSpec
from libv4e_apps.csms.backend import BackendConfig, serve_backend


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


def overheat(charger: Charger, params: dict) -> None:
    """Charger side, when the CSMS starts the fault: the connector reports 92 °C."""
    connector = charger.connectors[int(params.get("connector_id", 1))]
    connector.set_error(enums.ChargePointErrorCode.high_temperature, "92 °C")
    connector.apply(ConnectorEvent.FAULT)
    charger.report_status(connector)


def cool_down(charger: Charger, params: dict) -> None:
    """When the fault is cleared (or the charger restarts): back to Available / NoError."""
    for connector in charger.connectors.values():
        if connector.error_code == enums.ChargePointErrorCode.high_temperature:
            connector.set_error(enums.ChargePointErrorCode.no_error)
            connector.apply(ConnectorEvent.FAULT_CLEARED)
            charger.report_status(connector)


class HotCharger(Charger):
    """Plays the overheating fault on top of the five built-in ones: a hook, no override
    of the fault protocol. A restart cools it down."""

    def __init__(self, config: ChargerConfig) -> None:
        super().__init__(config)
        self.faults.register("overheating", overheat, cool_down)

    async def reboot(self, kind):
        cool_down(self, {})
        await super().reboot(kind)


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
