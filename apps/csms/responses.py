"""What each REST route takes in its query string and answers with, for ``/openapi.json``.

Request bodies are documented by quart-schema from the models the routes validate with
(:mod:`libv4e_apps.csms.models`); this module adds, per operation (``"METHOD /path"`` in
:data:`ROUTE_DOCS`), the query parameters (a pydantic model whose fields have the bounds
the route checks) and the success answer (a pydantic model of the JSON it returns, open
to more fields: ``additionalProperties`` stays true so additions do not break clients).
:class:`libv4e_apps.csms.openapi.TrueOpenAPIProvider` puts both into the document;
``tests/apps/test_openapi_complete.py`` checks every route of the app has them and that real
answers validate against them.

A new route gets an entry here (its query model, if it reads ``request.args``, and its
response model).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from libv4e.csms import EVENT_KINDS, ProfileStatus, ReservationStatus

from .demo_api import DiagnosisQuery

Iso = str
"""An ISO 8601 UTC timestamp, e.g. ``2024-05-01T12:00:00.000Z``."""

LIMIT_MAX = 1000
OFFSET_MAX = 10**9


class _Answer(BaseModel):
    """A JSON answer; more fields may be added later (clients ignore unknown ones)."""

    model_config = ConfigDict(extra="allow")


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- query strings ---------------------------------------------------------------------------


class PageQuery(_Query):
    """Paging: newest first."""

    limit: int = Field(50, ge=1, le=LIMIT_MAX, description="How many, newest first.")
    offset: int = Field(0, ge=0, le=OFFSET_MAX, description="How many to skip.")


class MessagesQuery(PageQuery):
    """Query of ``GET /chargers/{cp_id}/messages``."""

    action: str | None = Field(None, description="Only this OCPP action, e.g. Heartbeat.")


class ChargingProfilesQuery(_Query):
    """Query of ``GET /chargers/{cp_id}/charging_profiles``."""

    status: Literal["all", *(str(s) for s in ProfileStatus)] = Field(  # type: ignore[valid-type]
        "Installed", description="Only profiles in this state, or all."
    )
    limit: int = Field(100, ge=1, le=LIMIT_MAX)
    offset: int = Field(0, ge=0, le=OFFSET_MAX)


class SecurityEventsQuery(_Query):
    """Query of ``GET /chargers/{cp_id}/security_events``."""

    limit: int = Field(100, ge=1, le=500, description="How many, newest first.")


_KIND = "|".join(("message", "state", "semantic", *EVENT_KINDS))
_SEMANTIC = "|".join(EVENT_KINDS)
_IDS_PATTERN = r"^[^,]{1,64}(,[^,]{1,64})*$"


class _ChargerFilter(_Query):
    cp_id: str | None = Field(
        None,
        max_length=64_000,
        pattern=_IDS_PATTERN,
        description="Only these chargers (comma-separated, 64 characters each).",
    )


class EventsQuery(_ChargerFilter):
    """Query of ``GET /events``."""

    kind: str | None = Field(
        None,
        pattern=rf"^({_KIND})(,({_KIND}))*$",
        description="Only these kinds (comma-separated): message, state, semantic (every "
        "semantic kind) or one of " + ", ".join(EVENT_KINDS) + ".",
    )


class RecentEventsQuery(_ChargerFilter):
    """Query of ``GET /events/recent``."""

    kind: str | None = Field(
        None,
        pattern=rf"^({_SEMANTIC})(,({_SEMANTIC}))*$",
        description="Only these semantic kinds (comma-separated).",
    )
    after_id: int = Field(0, ge=0, le=2**53, description="Only events after this id.")
    limit: int = Field(100, ge=1, le=1000, description="At most this many (the newest).")


class MeterHistoryQuery(_Query):
    """Query of ``GET /chargers/{cp_id}/meter_history``."""

    minutes: int = Field(30, ge=1, le=24 * 60, description="How far back.")
    connector_id: int | None = Field(None, ge=0, le=10**6, description="Only this connector.")


class TransactionsQuery(PageQuery):
    """Query of ``GET /transactions``."""

    cp_id: str | None = Field(None, description="Only this charger.")
    active: bool | None = Field(None, description="Only running (true) or ended (false).")


class UnmatchedStopsQuery(PageQuery):
    """Query of ``GET /transactions/unmatched_stops``."""

    cp_id: str | None = Field(None, description="Only this charger.")


class ReservationsQuery(PageQuery):
    """Query of ``GET /reservations``."""

    cp_id: str | None = Field(None, description="Only this charger.")
    status: Literal[*(str(s) for s in ReservationStatus)] | None = Field(  # type: ignore[valid-type]
        None, description="Only reservations in this state."
    )


# -- answers -------------------------------------------------------------------------------


class Meter(_Answer):
    """The last meter values of a connector."""

    at: Iso | None = None


class Connector(_Answer):
    """A connector: its last StatusNotification and what runs on it."""

    connector_id: int
    status: str = Field(description="OCPP ChargePointStatus, or Unknown.")
    error_code: str
    info: str | None
    vendor_error_code: str | None
    timestamp: Iso | None
    transaction_id: int | None
    meter: Meter
    plugs: dict[str, str] = Field(
        default_factory=dict,
        description="OCPP 2.0.1: the status last reported for each connector of this "
        "EVSE (connectorId → connectorStatus); status is the EVSE's, as its most telling "
        "connector (Occupied, Reserved, Faulted, Available, Unavailable). Empty for 1.6.",
    )


class Boot(_Answer):
    """The charger's BootNotification."""

    status: str | None
    at: Iso | None
    vendor: str | None
    model: str | None
    serial_number: str | None
    firmware_version: str | None
    reason: str | None = Field(
        description="OCPP 2.0.1's boot reason (PowerUp, RemoteReset…); null for 1.6."
    )


class Transaction(_Answer):
    """A charging session."""

    transaction_id: int
    cp_id: str
    connector_id: int
    id_tag: str
    id_tag_status: str
    active: bool
    meter_start: int
    meter_stop: int | None
    energy_wh: float
    started_at: Iso | None
    stopped_at: Iso | None
    stop_reason: str | None
    stop_id_tag: str | None
    reservation_id: int | None
    last_meter_wh: float | None
    flags: list[str]
    reconciled: str | None
    charger_transaction_id: str | None
    """OCPP 2.0.1: the charger's own id of the session; null for a 1.6 session."""
    id_token_type: str | None = Field(
        description="OCPP 2.0.1: the type of the first idToken the session's events "
        "carried (Central, eMAID, ISO14443, ISO15693, KeyCode, Local, MacAddress, "
        "NoAuthorization), never changed once set; null for a 1.6 session."
    )
    started_by: str | None = Field(
        None,
        description="OCPP 2.0.1: the Started event's triggerReason (Authorized, "
        "CablePluggedIn, RemoteStart…); null for a 1.6 session.",
    )
    ended_by: str | None = Field(
        None,
        description="OCPP 2.0.1: the Ended event's triggerReason (StopAuthorized, "
        "RemoteStop, EVCommunicationLost…); null for a 1.6 session.",
    )


class TransactionDetail(Transaction):
    """A transaction with its meter values (OCPP MeterValue objects)."""

    meter_values: list[dict[str, Any]]


class Charger(_Answer):
    """A charge point's state as the CSMS knows it."""

    cp_id: str
    connection: Literal["online", "offline"]
    online: bool
    connected: bool
    connected_since: Iso | None
    disconnected_at: Iso | None
    last_seen: Iso | None
    last_heartbeat: Iso | None
    heartbeat_interval: int
    unresponsive_since: Iso | None
    ocpp_version: Literal["1.6", "2.0.1"] | None = Field(
        description="The OCPP version of the charger's last connection (the websocket "
        "subprotocol it agreed on); null if it never connected since this was recorded."
    )
    boot: Boot
    connectors: list[Connector]
    active_transactions: list[Transaction]


class Status(_Answer):
    """Every known charge point."""

    total_connected: int
    total_online: int
    total_known: int
    charge_points: dict[str, Charger] = Field(description="By charge point id.")


class Chargers(_Answer):
    chargers: list[Charger]


class Overview(_Answer):
    name: str
    version: str
    connected_charge_points: list[str]
    commands: list[str]
    routes: list[str]
    demo_routes: list[str]


class Deleted(_Answer):
    cp_id: str
    deleted: bool


class Message(_Answer):
    """One OCPP message as logged."""

    id: int | None = None
    cp_id: str
    direction: str = Field(description="in (from the charger) or out.")
    message_type: int = Field(description="2 Call, 3 CallResult, 4 CallError.")
    action: str | None
    unique_id: str
    at: Iso
    payload: Any


class Messages(_Answer):
    cp_id: str
    limit: int
    offset: int
    messages: list[Message]


class LocalList(_Answer):
    """What the CSMS sent to a charger's local list."""

    cp_id: str
    list_version: int | None
    complete: bool
    csms_list_version: int


class Firmware(_Answer):
    cp_id: str
    firmware_status: str | None
    diagnostics_status: str | None


class ChargingProfiles(_Answer):
    cp_id: str
    status: str
    charging_profiles: list[dict[str, Any]]
    limits: list[dict[str, Any]] = Field(description="What limits each connector now.")


class Security(_Answer):
    cp_id: str
    profile: int
    certificates: list[dict[str, Any]]
    ca: bool


class SecurityProfileSet(_Answer):
    cp_id: str
    profile: int
    certificates: list[dict[str, Any]]


class SecurityEvents(_Answer):
    cp_id: str
    events: list[dict[str, Any]]
    count: int


class Password(_Answer):
    cp_id: str
    password_set: bool


class DeviceModel(_Answer):
    """What an OCPP 2.0.1 charger reported of its device model (NotifyReport,
    NotifyEvent, and the values of an accepted SetVariables), as stored: empty for a 1.6
    charger."""

    cp_id: str
    ocpp_version: Literal["1.6", "2.0.1"] | None
    variables: list[dict[str, Any]] = Field(
        description="{component, component_instance, evse_id, connector_id, variable, "
        "variable_instance, attribute, value, mutability, source}"
    )
    events: list[dict[str, Any]] = Field(description="The latest NotifyEvent events, oldest first.")
    dropped: int = Field(description="Variables not kept: the per-charger bound was reached.")


class MeterHistory(_Answer):
    cp_id: str
    minutes: int
    capacity: int
    connectors: list[dict[str, Any]] = Field(description="{connector_id, samples: [...]}")


class SpokenNamesAnswer(_Answer):
    """What people on site call the charger and its connectors (docs/agents.md)."""

    cp_id: str
    charger: str | None = Field(description="null: the default words (the charger).")
    connectors: dict[str, str] = Field(description="Connector id → name.")


class Diagnosis(_Answer):
    """See docs/scenarios.md#diagnosis."""

    cp_id: str
    verdict: str = Field(description="healthy, fault_found or inconclusive.")
    healthy: bool
    say: str = Field(
        description="One line for the driver (at most 15 words; the site's spoken names)."
    )
    lang: str = Field(description="The language of every say line: en, de, fr or es.")
    agent_note: str
    findings: list[dict[str, Any]]
    next_action: dict[str, Any] | None
    retry_after_s: float | None


class Transactions(_Answer):
    limit: int
    offset: int
    transactions: list[Transaction]


class UnmatchedStops(_Answer):
    limit: int
    offset: int
    unmatched_stops: list[dict[str, Any]]


class Reservation(_Answer):
    reservation_id: int
    cp_id: str
    connector_id: int
    id_tag: str
    parent_id_tag: str | None
    expiry_date: Iso | None
    status: str
    active: bool
    transaction_id: int | None
    cancel_status: str | None
    created_at: Iso | None
    history: list[dict[str, Any]]


class Reservations(_Answer):
    limit: int
    offset: int
    reservations: list[Reservation]


class IdTag(_Answer):
    id_tag: str
    status: str
    expiry_date: Iso | None
    parent_id_tag: str | None


class IdTags(_Answer):
    list_version: int
    unknown_tags: str
    id_tags: list[IdTag]


class IdTagAdded(_Answer):
    list_version: int
    id_tag: IdTag


class IdTagRemoved(_Answer):
    list_version: int
    removed: str


class Ticket(_Answer):
    ticket_id: int
    cp_id: str
    summary: str
    status: str
    scenario: str | None
    created_at: Iso | None
    details: dict[str, Any] | None


class Tickets(_Answer):
    tickets: list[Ticket]


class ScenarioRun(_Answer):
    scenario: str
    cp_id: str
    phase: str
    params: dict[str, Any]
    history: list[dict[str, Any]]


class Scenarios(_Answer):
    scenarios: list[dict[str, Any]]
    active: list[ScenarioRun]


class Triggered(_Answer):
    triggered: str
    cp_id: str
    driver_says: str
    run: ScenarioRun


class Cleared(_Answer):
    cleared: list[ScenarioRun]


class ServerSentEvent(_Answer):
    """One event of ``GET /events`` (text/event-stream): ``event`` names its kind,
    ``data`` is one line of JSON (see docs/agents.md#events)."""

    event: str | None = Field(
        None, description="message (an OCPP record), state (every charger), or a semantic kind."
    )
    data: str | None = Field(None, description="JSON text.")
    id: str | None = None
    retry: int | None = None


class AgentEventAnswer(_Answer):
    """A semantic event (docs/agents.md#events-for-agents); more fields per kind."""

    model_config = ConfigDict(extra="allow")
    id: int
    kind: str = Field(description=", ".join(EVENT_KINDS))
    cp_id: str
    connector_id: int | None
    at: str


class RecentEvents(_Answer):
    events: list[AgentEventAnswer]
    last_id: int = Field(description="The newest event's id (pass it as after_id next).")


class WebhookAnswer(_Answer):
    id: str
    url: str
    kinds: list[str] | None
    cp_ids: list[str] | None


class WebhookCreated(WebhookAnswer):
    secret: str = Field(description="The signing secret; shown only now.")


class Webhooks(_Answer):
    webhooks: list[WebhookAnswer]
    pending: int
    delivered: int
    dead_letters: int


class WebhookDeleted(_Answer):
    id: str
    deleted: bool


class DeadLetter(_Answer):
    id: int
    subscription: str
    event_id: int
    kind: str
    attempts: int
    last_error: str | None
    event: dict[str, Any]


class DeadLetters(_Answer):
    dead_letters: list[DeadLetter]


class Requeued(_Answer):
    id: int
    requeued: bool


class DeadLettersCleared(_Answer):
    cleared: int


class CommandAnswer(_Answer):
    """A command's answer: the charger's OCPP response fields (camelCase, e.g. ``status``)
    beside ``cp_id`` and ``action``, plus the records it changed (e.g. ``reservation``)."""

    cp_id: str
    action: str = Field(description="The OCPP action sent, e.g. Reset.")


class SendLocalListAnswer(CommandAnswer):
    list_version: int | None
    status: str


class KeyRotated(CommandAnswer):
    """AuthorizationKey rotation (ChangeConfiguration); the key is never echoed."""


# -- the table -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RouteDoc:
    """One operation's query model and success answer (``response`` None: not JSON, then
    ``content_type`` says what it is)."""

    response: type[BaseModel] | None
    query: type[BaseModel] | None = None
    content_types: tuple[str, ...] = ("application/json",)


def _text(*content_types: str) -> RouteDoc:
    return RouteDoc(None, content_types=content_types)


ROUTE_DOCS: dict[str, RouteDoc] = {
    "GET /": RouteDoc(Overview),
    "GET /status": RouteDoc(Status),
    "GET /chargers": RouteDoc(Chargers),
    "GET /chargers/{cp_id}": RouteDoc(Charger),
    "DELETE /chargers/{cp_id}": RouteDoc(Deleted),
    "GET /chargers/{cp_id}/messages": RouteDoc(Messages, MessagesQuery),
    "GET /chargers/{cp_id}/local_list": RouteDoc(LocalList),
    "GET /chargers/{cp_id}/firmware": RouteDoc(Firmware),
    "GET /chargers/{cp_id}/charging_profiles": RouteDoc(ChargingProfiles, ChargingProfilesQuery),
    "PUT /chargers/{cp_id}/password": RouteDoc(Password),
    "GET /chargers/{cp_id}/spoken_names": RouteDoc(SpokenNamesAnswer),
    "PUT /chargers/{cp_id}/spoken_names": RouteDoc(SpokenNamesAnswer),
    "DELETE /chargers/{cp_id}/password": RouteDoc(Password),
    "GET /chargers/{cp_id}/security": RouteDoc(Security),
    "GET /chargers/{cp_id}/device_model": RouteDoc(DeviceModel),
    "GET /chargers/{cp_id}/security_events": RouteDoc(SecurityEvents, SecurityEventsQuery),
    "PUT /chargers/{cp_id}/security_profile": RouteDoc(SecurityProfileSet),
    "POST /chargers/{cp_id}/authorization_key": RouteDoc(KeyRotated),
    "GET /chargers/{cp_id}/meter_history": RouteDoc(MeterHistory, MeterHistoryQuery),
    "GET /chargers/{cp_id}/diagnosis": RouteDoc(Diagnosis, DiagnosisQuery),
    "POST /chargers/{cp_id}/diagnosis": RouteDoc(Diagnosis, DiagnosisQuery),
    "POST /commands/send_local_list/{cp_id}": RouteDoc(SendLocalListAnswer),
    "POST /ocpp201/{action}/{cp_id}": RouteDoc(CommandAnswer),
    "GET /transactions": RouteDoc(Transactions, TransactionsQuery),
    "GET /transactions/unmatched_stops": RouteDoc(UnmatchedStops, UnmatchedStopsQuery),
    "GET /transactions/{transaction_id}": RouteDoc(TransactionDetail),
    "GET /reservations": RouteDoc(Reservations, ReservationsQuery),
    "GET /reservations/{reservation_id}": RouteDoc(Reservation),
    "GET /id_tags": RouteDoc(IdTags),
    "POST /id_tags": RouteDoc(IdTagAdded),
    "DELETE /id_tags/{id_tag}": RouteDoc(IdTagRemoved),
    "GET /tickets": RouteDoc(Tickets),
    "POST /tickets": RouteDoc(Ticket),
    "GET /demo/scenarios": RouteDoc(Scenarios),
    "POST /demo/trigger/{name}": RouteDoc(Triggered),
    "POST /demo/clear": RouteDoc(Cleared),
    "GET /dashboard": _text("text/html"),
    "GET /static/{name}": _text("text/javascript", "text/css", "text/plain"),
    "GET /metrics": _text("text/plain"),
    "GET /events": RouteDoc(ServerSentEvent, EventsQuery, content_types=("text/event-stream",)),
    "GET /events/recent": RouteDoc(RecentEvents, RecentEventsQuery),
    "GET /webhooks": RouteDoc(Webhooks),
    "POST /webhooks": RouteDoc(WebhookCreated),
    "DELETE /webhooks/{webhook_id}": RouteDoc(WebhookDeleted),
    "GET /webhooks/dead_letters": RouteDoc(DeadLetters),
    "POST /webhooks/dead_letters/{delivery_id}/retry": RouteDoc(Requeued),
    "DELETE /webhooks/dead_letters": RouteDoc(DeadLettersCleared),
}
"""Per operation: query model and success answer. Every ``POST /commands/{name}/{cp_id}``
not listed answers a :class:`CommandAnswer`."""


def route_doc(method: str, path: str) -> RouteDoc | None:
    """The documentation of ``METHOD path`` (None if there is none)."""
    key = f"{method.upper()} {path}"
    if key in ROUTE_DOCS:
        return ROUTE_DOCS[key]
    if method.upper() == "POST" and path.startswith("/commands/") and path.endswith("/{cp_id}"):
        return RouteDoc(CommandAnswer)
    return None
