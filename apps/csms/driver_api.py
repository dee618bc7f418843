"""REST routes of the evaluation sandbox: the driver's actions on the simulated chargers
(``/driver/{cp_id}/…``) and the sandbox itself (``/sandbox/setup``, ``/sandbox/snapshot``).

Served only when the simulated chargers run in this process (``BackendConfig.sandbox``).
The driver's routes are the driver's half of dual control: an agent under test is never
offered them (see the ``driver`` tool profile)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from quart import Blueprint, request

from libv4e.charger import Charger
from libv4e.sandbox import Sandbox

from .errors import ApiError, body


class ConnectorBody(BaseModel):
    """Body of a driver action on one connector."""

    model_config = ConfigDict(extra="forbid")
    connector_id: int = Field(1, ge=1, le=100, description="The connector the driver uses.")


class CardBody(ConnectorBody):
    """Body of ``POST /driver/{cp_id}/present_card``."""

    id_tag: str = Field(min_length=1, max_length=20, description="The card presented.")


def blueprint(sandbox: Sandbox) -> Blueprint:
    """The driver and sandbox routes over ``sandbox``."""
    bp = Blueprint("driver", __name__)

    def charger(cp_id: str) -> Charger:
        return sandbox.charger(cp_id)  # 404 if it has none: translate_error

    def connector_arg() -> int:
        try:
            return ConnectorBody.model_validate(dict(request.args)).connector_id
        except ValidationError as exc:
            details = [{"loc": [str(x) for x in e["loc"]], "msg": e["msg"]} for e in exc.errors()]
            raise ApiError(400, "bad_query", "invalid query", details=details) from None

    @bp.post("/driver/<cp_id>/plug_in")
    @body(ConnectorBody)
    async def plug_in(cp_id: str, data: ConnectorBody) -> Any:
        """The driver plugs the car in."""
        return {"screen": (await charger(cp_id).driver.plug_in(data.connector_id)).as_dict()}

    @bp.post("/driver/<cp_id>/unplug")
    @body(ConnectorBody)
    async def unplug(cp_id: str, data: ConnectorBody) -> Any:
        """The driver takes the cable out (409 driver_action_refused while it is locked)."""
        return {"screen": (await charger(cp_id).driver.unplug(data.connector_id)).as_dict()}

    @bp.post("/driver/<cp_id>/present_card")
    @body(CardBody)
    async def present_card(cp_id: str, data: CardBody) -> Any:
        """The driver taps a card on the connector's reader."""
        driver = charger(cp_id).driver
        return {"screen": (await driver.present_card(data.connector_id, data.id_tag)).as_dict()}

    @bp.post("/driver/<cp_id>/press_stop")
    @body(ConnectorBody)
    async def press_stop(cp_id: str, data: ConnectorBody) -> Any:
        """The driver presses the stop button."""
        return {"screen": (await charger(cp_id).driver.press_stop(data.connector_id)).as_dict()}

    @bp.get("/driver/<cp_id>/screen")
    async def screen(cp_id: str) -> Any:
        """What the connector's screen and LED show (blank when the charger is offline)."""
        return {"screen": charger(cp_id).driver.screen(connector_arg()).as_dict()}

    @bp.get("/driver/<cp_id>/car")
    async def car(cp_id: str) -> Any:
        """The car's app: plugged, charging, state of charge, kW, kWh this session."""
        return {"car": charger(cp_id).driver.car(connector_arg()).as_dict()}

    @bp.post("/sandbox/setup")
    async def setup() -> Any:
        """Set up the sandbox's initial state (once): chargers, cards, sessions, faults."""
        data = await request.get_json(force=True, silent=True)
        if not isinstance(data, dict):
            raise ApiError(400, "invalid_body", "the body must be a JSON object")
        await sandbox.setup(data)  # InvalidInitialState: 422 naming the field
        return {"snapshot": await sandbox.snapshot()}, 201

    @bp.get("/sandbox/snapshot")
    async def snapshot() -> Any:
        """The sandbox's world now, canonical (no times, no ids)."""
        return await sandbox.snapshot()

    return bp
