"""REST routes for scenarios and diagnosis: ``/demo/*`` and ``/chargers/{id}/diagnosis``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from quart import Blueprint, request

from libv4e.scenarios import DiagnosisOptions, ScenarioManager, diagnose

from .errors import ApiError, body
from .phrases import Voice, pick_language
from .wording import diagnosis_json, spoken_names

DEFAULT_CP_ID = "EVSE001"


class TriggerBody(BaseModel):
    """Body of ``POST /demo/trigger/{name}``: the charger and the scenario's parameters
    (a custom scenario may take more fields; they are passed on)."""

    model_config = ConfigDict(extra="allow")
    cp_id: str = Field(DEFAULT_CP_ID, min_length=1, max_length=48, description="Charge point id.")
    connector_id: int | None = Field(
        None, ge=1, description="Connector the fault is on (default 1)."
    )
    id_tag: str | None = Field(
        None,
        min_length=1,
        max_length=20,
        description="The driver's card (auth_failure, stuck_connector, slow_charging).",
    )
    mode: Literal["silent", "dead"] | None = Field(
        None,
        description="offline_charger: silent (connection open, nothing sent; a Hard reset "
        "cures it) or dead (socket dropped; escalate with a ticket).",
    )
    recover_after: float | None = Field(
        None, gt=0, le=3600, description="offline_charger dead mode: seconds it stays away."
    )

    def params(self) -> dict[str, Any]:
        """The scenario parameters given (cp_id excluded, unset ones left out)."""
        out = {k: v for k, v in self.model_dump(exclude={"cp_id"}).items() if v is not None}
        out.update(self.model_extra or {})
        return out


class DiagnosisQuery(BaseModel):
    """Query of ``GET /chargers/{cp_id}/diagnosis``: hints from the driver and options."""

    model_config = ConfigDict(extra="forbid")
    id_tag: str | None = Field(
        None, min_length=1, max_length=20, description="The driver's card, if known."
    )
    connector_id: int | None = Field(
        None, ge=0, description="The connector the driver uses, if known."
    )
    probe: bool = Field(
        False,
        description="Also ask the charger (TriggerMessage, GetLocalListVersion); has side "
        "effects and may take up to 2 s. Off by default.",
    )
    evidence: bool = Field(False, description="Include the cited OCPP messages in full (payloads).")
    intent: Literal["charge", "leave"] | None = Field(
        None,
        description="What the driver wants: charge (a start may be suggested, also after an "
        "unlock) or leave (unplug and go: no start is ever suggested). Omitted: no start is "
        "suggested after an unlock.",
    )
    lang: Literal["en", "de", "fr", "es"] | None = Field(
        None,
        description="The language of the say lines (en, de, fr, es); omitted: the request's "
        "Accept-Language, else en. agent_note stays English.",
    )
    start_timeout: float = Field(
        5.0,
        ge=0,
        le=60,
        description="Seconds after an accepted start request without StartTransaction before "
        "it counts as a failed start.",
    )


def blueprint(manager: ScenarioManager) -> Blueprint:
    """The demo and diagnosis routes over ``manager``."""
    bp = Blueprint("demo", __name__)
    csms = manager.csms

    @bp.get("/demo/scenarios")
    async def demo_scenarios() -> Any:
        """The fault scenarios, with where each is active."""
        return {
            "scenarios": manager.catalog(),
            "active": [r.as_dict() for r in manager.active()],
        }

    @bp.post("/demo/trigger/<name>")
    @body(TriggerBody)
    async def demo_trigger(name: str, data: TriggerBody) -> Any:
        """Start a scenario on a charger (default EVSE001): the fault starts in the charger."""
        params = data.params()
        run = await manager.trigger(name, data.cp_id, params)  # ScenarioError: see translate_error
        spec = run.spec
        return {
            "triggered": name,
            "cp_id": run.cp_id,
            "driver_says": spec.driver_says,
            "run": run.as_dict(),
        }, 201

    @bp.post("/demo/clear")
    async def demo_clear() -> Any:
        """End every active scenario (and the faults in the chargers)."""
        cleared = await manager.clear()
        return {"cleared": [r.as_dict() for r in cleared]}

    @bp.get("/chargers/<cp_id>/diagnosis")
    async def diagnosis(cp_id: str) -> Any:
        """What is wrong with a charger, from OCPP alone: verdict healthy / fault_found /
        inconclusive, findings with say / agent_note / actions (MCP tool calls). Read-only:
        ``probe=true`` (which sends commands) is a POST."""
        return await _diagnose(
            cp_id, lambda: DiagnosisQuery.model_validate(dict(request.args)), probing=False
        )

    @bp.post("/chargers/<cp_id>/diagnosis")
    async def diagnosis_probing(cp_id: str) -> Any:
        """The diagnosis (same query as the GET), allowed to probe the charger with
        ``probe=true`` (TriggerMessage, GetLocalListVersion): a POST, so no page in a
        browser can make the CSMS send commands (an ``<img>`` sends GETs)."""
        return await _diagnose(
            cp_id, lambda: DiagnosisQuery.model_validate(dict(request.args)), probing=True
        )

    async def _diagnose(cp_id: str, parse: Callable[[], DiagnosisQuery], *, probing: bool) -> Any:
        csms.registry.require(cp_id)
        try:
            query = parse()
        except ValidationError as exc:
            details = [{"loc": [str(x) for x in e["loc"]], "msg": e["msg"]} for e in exc.errors()]
            raise ApiError(400, "bad_query", "invalid diagnosis query", details=details) from None
        if query.probe and not probing:
            raise ApiError(
                400,
                "probe_needs_post",
                "probe=true sends commands to the charger: "
                f"POST /chargers/{cp_id}/diagnosis?probe=true",
            )
        options = DiagnosisOptions(
            id_tag=query.id_tag,
            connector_id=query.connector_id,
            probe=query.probe,
            start_timeout=query.start_timeout,
            intent=query.intent,
        )
        diagnosis = await diagnose(csms, cp_id, options)
        lang = pick_language(query.lang, request.headers.get("Accept-Language"))
        voice = Voice(lang, await spoken_names(csms, cp_id))
        return diagnosis_json(diagnosis, voice, evidence=query.evidence)

    return bp
