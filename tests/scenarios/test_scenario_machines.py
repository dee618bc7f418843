"""Scenario state machines driven by hand-made message records: no sockets."""

from __future__ import annotations

import datetime as dt

import pytest

from libv4e.scenarios._manager import (
    AUTH_FAILURE,
    OFFLINE_CHARGER,
    SCENARIO_TRANSITIONS,
    SESSION_START_FAILURE,
    SLOW_CHARGING,
    STUCK_CONNECTOR,
    Phase,
    ScenarioEvent,
    ScenarioRun,
)
from libv4e.transport import MessageRecord

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
_n = 0


def rec(direction, message_type, action, payload, uid=None):
    global _n
    _n += 1
    return MessageRecord(
        "CP",
        direction,
        message_type,
        uid or f"u{_n}",
        action,
        payload,
        T0 + dt.timedelta(seconds=_n),
    )


def feed(run, *records):
    for r in records:
        event = run.spec.observe(run, r)
        if event is not None:
            run.fire(event, r.at)
    return run.phase


def started(spec, **params):
    run = ScenarioRun(spec, "CP", {**spec.defaults, **params})
    assert run.fire(ScenarioEvent.TRIGGER, T0)
    return run


def test_final_phases_accept_no_event():
    for final in (Phase.RESOLVED, Phase.ESCALATED, Phase.CLEARED):
        assert not any(phase is final for phase, _ in SCENARIO_TRANSITIONS)


def test_cannot_resolve_without_remediation():
    run = started(SESSION_START_FAILURE)
    assert not run.fire(ScenarioEvent.RESOLUTION_SEEN, T0)
    assert run.phase is Phase.ACTIVE


def test_session_start_failure_resolves_after_reset_and_rising_energy():
    run = started(SESSION_START_FAILURE)

    def mv(wh):
        return rec(
            "in",
            2,
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": 3,
                "meterValue": [
                    {"timestamp": "2024-05-01T12:00:00Z", "sampledValue": [{"value": str(wh)}]}
                ],
            },
        )

    assert (
        feed(run, rec("in", 2, "StartTransaction", {}), mv(10), mv(20)) is Phase.ACTIVE
    )  # no reset yet
    assert feed(run, rec("in", 3, "Reset", {"status": "Accepted"})) is Phase.REMEDIATING
    start = {"connectorId": 1, "meterStart": 100, "idTag": "X"}
    assert feed(run, rec("in", 2, "StartTransaction", start), mv(100)) is Phase.REMEDIATING
    assert feed(run, mv(150)) is Phase.RESOLVED  # the shared notion: energy above meterStart


def test_stuck_connector_needs_unlocked_then_available():
    run = started(STUCK_CONNECTOR)
    other = rec("out", 2, "UnlockConnector", {"connectorId": 2}, uid="x2")
    assert (
        feed(run, other, rec("in", 3, "UnlockConnector", {"status": "Unlocked"}, uid="x2"))
        is Phase.ACTIVE  # another connector's unlock
    )
    first = rec("out", 2, "UnlockConnector", {"connectorId": 1}, uid="x0")
    assert (
        feed(run, first, rec("in", 3, "UnlockConnector", {"status": "UnlockFailed"}, uid="x0"))
        is Phase.ACTIVE
    )
    again = rec("out", 2, "UnlockConnector", {"connectorId": 1}, uid="x1")
    assert (
        feed(run, again, rec("in", 3, "UnlockConnector", {"status": "Unlocked"}, uid="x1"))
        is Phase.REMEDIATING
    )
    assert (
        feed(
            run,
            rec(
                "in",
                2,
                "StatusNotification",
                {"connectorId": 2, "status": "Available", "errorCode": "NoError"},
            ),
        )
        is Phase.REMEDIATING
    )
    assert (
        feed(
            run,
            rec(
                "in",
                2,
                "StatusNotification",
                {"connectorId": 1, "status": "Available", "errorCode": "NoError"},
            ),
        )
        is Phase.RESOLVED
    )


def test_offline_charger_resolves_on_boot_and_heartbeat_or_escalates():
    run = started(OFFLINE_CHARGER)
    assert (
        feed(run, rec("in", 3, "Reset", {"status": "Accepted"}), rec("in", 2, "Heartbeat", {}))
        is Phase.REMEDIATING
    )
    assert (
        feed(run, rec("in", 2, "BootNotification", {}), rec("in", 2, "Heartbeat", {}))
        is Phase.RESOLVED
    )
    other = started(OFFLINE_CHARGER)
    assert other.fire(ScenarioEvent.ESCALATE, T0)
    assert other.phase is Phase.ESCALATED


def test_auth_failure_resolves_when_the_card_starts_a_session():
    run = started(AUTH_FAILURE, id_tag="C1")
    send = rec(
        "out",
        2,
        "SendLocalList",
        {
            "listVersion": 3,
            "updateType": "Differential",
            "localAuthorizationList": [{"idTag": "C1", "idTagInfo": {"status": "Accepted"}}],
        },
        uid="s1",
    )
    assert (
        feed(run, send, rec("in", 3, "SendLocalList", {"status": "Accepted"}, uid="s1"))
        is Phase.REMEDIATING
    )
    assert (
        feed(
            run,
            rec("in", 2, "StartTransaction", {"idTag": "OTHER", "connectorId": 1, "meterStart": 0}),
            _mv(5),
            rec("out", 3, "StartTransaction", {"idTagInfo": {"status": "Accepted"}}, uid="t0"),
        )
        is Phase.REMEDIATING
    )
    start = {"idTag": "C1", "connectorId": 1, "meterStart": 10}
    assert (
        feed(
            run,
            rec("in", 2, "StartTransaction", start, uid="t1"),
            rec("out", 3, "StartTransaction", {"idTagInfo": {"status": "Accepted"}}, uid="t1"),
            _mv(10),
        )
        is Phase.REMEDIATING  # started, no energy yet: not resolved (shared notion)
    )
    assert feed(run, _mv(12)) is Phase.RESOLVED


def _mv(wh):
    return rec(
        "in",
        2,
        "MeterValues",
        {
            "connectorId": 1,
            "transactionId": 3,
            "meterValue": [
                {"timestamp": "2024-05-01T12:00:00Z", "sampledValue": [{"value": str(wh)}]}
            ],
        },
    )


@pytest.mark.parametrize(("power", "phase"), [(1400, Phase.REMEDIATING), (21000, Phase.RESOLVED)])
def test_slow_charging_resolves_at_normal_power(power, phase):
    run = started(SLOW_CHARGING)
    mv = rec(
        "in",
        2,
        "MeterValues",
        {
            "connectorId": 1,
            "meterValue": [
                {
                    "timestamp": "2024-05-01T12:00:00Z",
                    "sampledValue": [
                        {"value": str(power), "measurand": "Power.Active.Import", "unit": "W"},
                        {"value": "22000", "measurand": "Power.Offered", "unit": "W"},
                    ],
                }
            ],
        },
    )
    assert feed(run, rec("in", 3, "Reset", {"status": "Accepted"}), mv) is phase
