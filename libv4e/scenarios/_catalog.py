"""The five default fault scenarios: their specs (:data:`DEFAULT_SCENARIOS`) and the
observers that move each run through its state machine from the OCPP messages seen."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from libv4e.protocol._session import MessageType
from libv4e.scenarios._faults import DEFAULT_ID_TAG
from libv4e.scenarios._machines import Phase, ScenarioEvent, ScenarioRun, ScenarioSpec
from libv4e.scenarios._resolved import RESOLVED_POWER_RATIO, energy_above, power_normal
from libv4e.transport._connection import Direction, MessageRecord

if TYPE_CHECKING:
    from libv4e.csms._central import CentralSystem

# -- the five scenarios' observers --------------------------------------------------------------


def _call(record: MessageRecord, action: str, direction: Direction) -> bool:
    return (
        record.message_type == MessageType.CALL
        and record.action == action
        and record.direction == direction
    )


def _result(record: MessageRecord, action: str, direction: Direction) -> bool:
    return (
        record.message_type == MessageType.CALLRESULT
        and record.action == action
        and record.direction == direction
    )


def _connector(run: ScenarioRun) -> int:
    return int(run.params.get("connector_id", 1))


def _watch_reset_then(
    run: ScenarioRun, record: MessageRecord, *, connector_restart: bool = False
) -> ScenarioEvent | None:
    """Shared by the faults a reset cures: Reset accepted → remediating (with
    ``connector_restart``, also ChangeAvailability Inoperative accepted on the run's
    connector: the connector-scoped restart)."""
    if _result(record, "Reset", Direction.IN) and record.payload.get("status") == "Accepted":
        run.marks["reset_at"] = record.at
        return ScenarioEvent.REMEDIATION_SEEN
    if connector_restart and _call(record, "ChangeAvailability", Direction.OUT):
        p = record.payload
        if p.get("type") == "Inoperative" and p.get("connectorId") == _connector(run):
            run.marks["inoperative_id"] = record.unique_id
    if (
        connector_restart
        and _result(record, "ChangeAvailability", Direction.IN)
        and record.unique_id == run.marks.get("inoperative_id")
        and record.payload.get("status") in ("Accepted", "Scheduled")
    ):
        run.marks["reset_at"] = record.at
        return ScenarioEvent.REMEDIATION_SEEN
    return None


def _watch_session(run: ScenarioRun, record: MessageRecord, tag: str | None = None) -> bool:
    """Resolved (see ``_resolved``): a StartTransaction on the run's connector (for
    ``tag``, if given), then that session's energy register above its meterStart."""
    p = record.payload
    if _call(record, "StartTransaction", Direction.IN) and p.get("connectorId") == _connector(run):
        if tag is None or p.get("idTag") == tag:
            run.marks["meter_start"] = p.get("meterStart")
    if "meter_start" in run.marks and _call(record, "MeterValues", Direction.IN):
        if p.get("connectorId") == _connector(run) and p.get("transactionId") is not None:
            return energy_above(p, run.marks["meter_start"])
    return False


def _observe_session_start_failure(run: ScenarioRun, record: MessageRecord) -> ScenarioEvent | None:
    event = _watch_reset_then(run, record, connector_restart=True)
    if event is not None:
        return event
    if "reset_at" not in run.marks:
        return None
    if _watch_session(run, record):
        return ScenarioEvent.RESOLUTION_SEEN
    return None


def _observe_stuck_connector(run: ScenarioRun, record: MessageRecord) -> ScenarioEvent | None:
    if _call(record, "UnlockConnector", Direction.OUT):
        if record.payload.get("connectorId") == _connector(run):
            run.marks["unlock_id"] = record.unique_id
    if (
        _result(record, "UnlockConnector", Direction.IN)
        and record.unique_id == run.marks.get("unlock_id")
        and record.payload.get("status") == "Unlocked"
    ):
        run.marks["unlocked"] = True
        return ScenarioEvent.REMEDIATION_SEEN
    if run.marks.get("unlocked") and _call(record, "StatusNotification", Direction.IN):
        p = record.payload
        if (
            p.get("connectorId") == _connector(run)
            and p.get("status") == "Available"
            and p.get("errorCode") == "NoError"
        ):
            return ScenarioEvent.RESOLUTION_SEEN
    return None


def _observe_offline_charger(run: ScenarioRun, record: MessageRecord) -> ScenarioEvent | None:
    event = _watch_reset_then(run, record)
    if event is not None:
        return event
    if "reset_at" in run.marks and _call(record, "BootNotification", Direction.IN):
        run.marks["booted"] = True
    if run.marks.get("booted") and _call(record, "Heartbeat", Direction.IN):
        return ScenarioEvent.RESOLUTION_SEEN
    return None


def _observe_auth_failure(run: ScenarioRun, record: MessageRecord) -> ScenarioEvent | None:
    tag = run.params.get("id_tag", DEFAULT_ID_TAG)
    if _call(record, "SendLocalList", Direction.OUT):
        for entry in record.payload.get("localAuthorizationList", []):
            status = (entry.get("idTagInfo") or {}).get("status")
            if entry.get("idTag") == tag and status == "Accepted":
                run.marks["list_sent"] = record.unique_id
    if (
        _result(record, "SendLocalList", Direction.IN)
        and record.payload.get("status") == "Accepted"
    ):
        if run.marks.get("list_sent") == record.unique_id:
            return ScenarioEvent.REMEDIATION_SEEN
    if run.phase is Phase.REMEDIATING and _watch_session(run, record, tag):
        return ScenarioEvent.RESOLUTION_SEEN
    return None


def _observe_slow_charging(run: ScenarioRun, record: MessageRecord) -> ScenarioEvent | None:
    event = _watch_reset_then(run, record, connector_restart=True)
    if event is not None:
        return event
    if "reset_at" not in run.marks or not _call(record, "MeterValues", Direction.IN):
        return None
    if record.payload.get("connectorId") != _connector(run):
        return None
    power, offered = _power_and_offered(record.payload)
    if power_normal(power, offered):
        return ScenarioEvent.RESOLUTION_SEEN
    return None


def _power_and_offered(payload: dict[str, Any]) -> tuple[float | None, float | None]:
    from ocpp.v16 import call

    from libv4e.csms._registry import MeterReading, read_meter_values
    from libv4e.protocol._convert import from_json_payload

    reading = MeterReading()
    try:
        read_meter_values(from_json_payload(call.MeterValues, payload).meter_value, reading)
    except Exception:
        return None, None
    return reading.power_w, reading.offered_w


async def _prepare_auth_failure(csms: CentralSystem, params: dict[str, Any]) -> dict[str, Any]:
    """The card is valid at the CSMS (listed Accepted); the charger is told the CSMS's
    list version so that its corrupted list can be older."""
    from libv4e.csms._auth import IdTag

    tag = params.setdefault("id_tag", DEFAULT_ID_TAG)
    entry = csms.auth.get(tag)
    if entry is None or entry.status != "Accepted":
        await csms.upsert_tag(IdTag(tag, "Accepted"))
    params["list_version"] = csms.auth.version
    return params


RESOLVED_WHEN = {
    # the catalog's words for the notions of resolved in _resolved
    "energy": "a StartTransaction, then the session's energy register above meterStart",
    "power": f"delivered power at least {RESOLVED_POWER_RATIO:.0%} of the offered power",
    "released": "UnlockConnector answered Unlocked, then the connector Available / NoError",
    "back": "a BootNotification after the remedy, then a Heartbeat",
}

SESSION_START_FAILURE = ScenarioSpec(
    name="session_start_failure",
    title="Session does not start",
    driver_says="It says it's available but nothing happens.",
    description="The charger reports Available and accepts start requests, but never sends "
    "StartTransaction and delivers no energy.",
    remediation="Restart the connector (ChangeAvailability Inoperative, then Operative) or "
    "Soft reset the charger, then start the session again.",
    observe=_observe_session_start_failure,
    resolved_when=RESOLVED_WHEN["energy"],
    defaults={"connector_id": 1},
)
STUCK_CONNECTOR = ScenarioSpec(
    name="stuck_connector",
    title="Cable locked after charging",
    driver_says="It won't unlock, I can't unplug.",
    description="After the session ends the connector stays locked: StatusNotification with "
    "error code ConnectorLockFailure.",
    remediation="UnlockConnector on that connector.",
    observe=_observe_stuck_connector,
    resolved_when=RESOLVED_WHEN["released"],
    defaults={
        "connector_id": 1,
        "id_tag": DEFAULT_ID_TAG,
        "start_session": True,
        "session_seconds": 2,
    },
)
OFFLINE_CHARGER = ScenarioSpec(
    name="offline_charger",
    title="Charger offline",
    driver_says="The charger is offline.",
    description="The charger stops sending heartbeats (mode 'silent': the connection stays "
    "open but nothing comes; mode 'dead': the socket drops and it stays away for "
    "recover_after seconds).",
    remediation="Hard reset and wait for BootNotification; if it does not come back in "
    "time, file a support ticket.",
    observe=_observe_offline_charger,
    resolved_when=RESOLVED_WHEN["back"],
    defaults={"mode": "silent", "recover_after": 60},
)
AUTH_FAILURE = ScenarioSpec(
    name="auth_failure",
    title="Card rejected",
    driver_says="It keeps saying my card is invalid.",
    description="The charger's local authorization list is corrupted and older than the "
    "CSMS's: it refuses the driver's valid card and reports LocalListConflict.",
    remediation="send_local_list with the card Accepted (no reset needed); the driver tries again.",
    observe=_observe_auth_failure,
    resolved_when=RESOLVED_WHEN["energy"],
    defaults={"id_tag": DEFAULT_ID_TAG, "connector_id": 1},
    prepare=_prepare_auth_failure,
)
SLOW_CHARGING = ScenarioSpec(
    name="slow_charging",
    title="Charging very slowly",
    driver_says="Charging is very slow.",
    description="The charger delivers about 1.4 kW although it offers 22 kW (Power.Offered).",
    remediation="Explain load sharing, soft reset (or restart only that connector when another "
    "driver charges), start again; power returns to normal.",
    observe=_observe_slow_charging,
    resolved_when=RESOLVED_WHEN["power"],
    defaults={"connector_id": 1, "id_tag": DEFAULT_ID_TAG, "start_session": True},
)

DEFAULT_SCENARIOS: tuple[ScenarioSpec, ...] = (
    SESSION_START_FAILURE,
    STUCK_CONNECTOR,
    OFFLINE_CHARGER,
    AUTH_FAILURE,
    SLOW_CHARGING,
)
