"""REST routes for scenarios and diagnosis: ``/demo/*`` and ``/chargers/{id}/diagnosis``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from quart import request
from quart_trio import QuartTrio

from ._diagnosis import DiagnosisOptions, diagnose
from ._scenarios import ScenarioError, ScenarioManager

DEFAULT_CP_ID = "EVSE001"


class TriggerBody(BaseModel):
    """Optional body of ``POST /demo/trigger/{name}``: the charger and scenario parameters
    (any other field is passed to the scenario, e.g. ``connector_id``, ``id_tag``,
    ``mode``)."""

    model_config = ConfigDict(extra="allow")
    cp_id: str = Field(DEFAULT_CP_ID, min_length=1, max_length=48)


def add_scenario_routes(app: QuartTrio, manager: ScenarioManager) -> None:
    """Add the demo and diagnosis routes to ``app``."""
    from ._api import ApiError, body

    csms = manager.csms

    @app.get("/demo/scenarios")
    async def demo_scenarios() -> Any:
        """The fault scenarios, with where each is active."""
        return {
            "scenarios": manager.catalog(),
            "active": [r.as_dict() for r in manager.active()],
        }

    @app.post("/demo/trigger/<name>")
    @body(TriggerBody)
    async def demo_trigger(name: str, data: TriggerBody) -> Any:
        """Start a scenario on a charger (default EVSE001): the fault starts in the charger."""
        params = dict(data.model_extra or {})
        try:
            run = await manager.trigger(name, data.cp_id, params)
        except ScenarioError as exc:
            raise ApiError(exc.status, exc.error, str(exc)) from exc
        spec = run.spec
        return {
            "triggered": name,
            "cp_id": run.cp_id,
            "driver_says": spec.driver_says,
            "run": run.as_dict(),
        }, 201

    @app.post("/demo/clear")
    async def demo_clear() -> Any:
        """End every active scenario (and the faults in the chargers)."""
        cleared = await manager.clear()
        return {"cleared": [r.as_dict() for r in cleared]}

    @app.get("/chargers/<cp_id>/diagnosis")
    async def diagnosis(cp_id: str) -> Any:
        """What is wrong with a charger, from OCPP alone (?id_tag=&connector_id=&probe=)."""
        if csms.registry.get(cp_id) is None:
            raise ApiError(404, "unknown_charger", f"charge point {cp_id} is unknown")
        args = request.args
        try:
            connector = int(args["connector_id"]) if "connector_id" in args else None
            start_timeout = float(args.get("start_timeout", 5.0))
        except ValueError:
            raise ApiError(400, "bad_query", "connector_id and start_timeout are numbers") from None
        if not 0 <= start_timeout <= 60:
            raise ApiError(400, "bad_query", "start_timeout must be between 0 and 60")
        options = DiagnosisOptions(
            id_tag=args.get("id_tag") or None,
            connector_id=connector,
            probe=args.get("probe", "true") != "false",
            start_timeout=start_timeout,
        )
        return await diagnose(csms, cp_id, options)
