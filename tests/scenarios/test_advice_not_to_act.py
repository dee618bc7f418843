"""Calls where the right answer is not to act: the diagnosis must not prescribe an action
that overrides the central system (a blocked or expired card), takes a plug someone
else reserved, or resets a safety fault away. Each is played in a sandbox over real OCPP
on simulated time, with the driver's own actions at the charger first."""

from __future__ import annotations

import datetime as dt

import pytest
import trio
import trio.testing

from libv4e.sandbox import InitialState, InvalidInitialState
from tests.support import simulated_sandbox

EPOCH = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
OVERRIDES = {"send_local_list", "remote_start", "reset_charger", "unlock_connector"}


def _diagnose(state, driver_actions, query):
    seen = {}

    async def episode():
        async with simulated_sandbox() as (backend, client):
            await backend.sandbox.setup(state)
            for action, body in driver_actions:
                r = await client.post(f"/driver/EVSE001/{action}", json=body)
                assert r.status_code == 200, r.text
            await trio.sleep(5)
            r = await client.post("/chargers/EVSE001/diagnosis", params=query)
            assert r.status_code == 200, r.text
            seen["diagnosis"] = r.json()
            seen["snapshot"] = await backend.sandbox.snapshot()

    trio.run(episode, clock=trio.testing.MockClock(autojump_threshold=0))
    return seen["diagnosis"], seen["snapshot"]


def _actions(d):
    out = [a for f in d["findings"] for a in f["actions"]]
    return out + ([d["next_action"]] if d["next_action"] else [])


@pytest.mark.parametrize("status", ["blocked", "expired"])
def test_a_card_the_csms_refuses_is_not_overridden(status):
    d, snap = _diagnose(
        {"cards": [{"id_tag": "CARD9", "status": status}]},
        [("present_card", {"connector_id": 1, "id_tag": "CARD9"})],
        {"connector_id": 1, "id_tag": "CARD9", "intent": "charge"},
    )
    assert snap["chargers"]["EVSE001"]["connectors"]["1"]["screen"] == f"Card {status}"
    assert [f["code"] for f in d["findings"]] == ["card_not_accepted"]
    assert not OVERRIDES & {a["tool"] for a in _actions(d)}
    assert "isn't active" in d["say"]
    assert "Do not override" in d["agent_note"]


def test_a_stale_local_list_is_still_fixed():
    d, _ = _diagnose(
        {"cards": [{"id_tag": "CARD9", "stale_at": {"connector_id": 1}}]},
        [("present_card", {"connector_id": 1, "id_tag": "CARD9"})],
        {"connector_id": 1, "id_tag": "CARD9", "intent": "charge"},
    )
    assert [f["code"] for f in d["findings"]] == ["auth_failure"]
    assert [a["tool"] for a in d["findings"][0]["actions"]] == ["send_local_list", "remote_start"]


@pytest.mark.parametrize("code", ["GroundFailure"])
def test_a_safety_fault_is_escalated_never_reset(code):
    d, snap = _diagnose(
        {
            "chargers": [{"id": "EVSE001", "connectors": 2}],
            "cards": [{"id_tag": "CARD9"}],
            "errors": [{"connector_id": 1, "error_code": code, "info": "RCD"}],
        },
        [],
        {"connector_id": 1, "id_tag": "CARD9", "intent": "charge"},
    )
    c1 = snap["chargers"]["EVSE001"]["connectors"]["1"]
    assert (c1["status"], c1["error_code"]) == ("Faulted", code)
    assert [f["code"] for f in d["findings"]] == ["safety_fault"]
    assert {a["tool"] for a in _actions(d)} == {"create_ticket"}
    assert _actions(d)[0]["arguments"]["scenario"] == "safety_fault"


def test_other_hardware_faults_still_suggest_a_soft_reset():
    d, _ = _diagnose(
        {"errors": [{"connector_id": 1, "error_code": "PowerMeterFailure"}]},
        [],
        {"connector_id": 1},
    )
    assert [f["code"] for f in d["findings"]] == ["connector_fault"]
    assert _actions(d)[0]["tool"] == "reset_charger"


def test_a_plug_reserved_for_someone_else_is_left_alone():
    d, snap = _diagnose(
        {
            "chargers": [{"id": "EVSE001", "connectors": 2}],
            "cards": [{"id_tag": "CARD9"}, {"id_tag": "BOOKER"}],
            "reservations": [{"connector_id": 1, "id_tag": "BOOKER"}],
        },
        [("present_card", {"connector_id": 1, "id_tag": "CARD9"})],
        {"connector_id": 1, "id_tag": "CARD9", "intent": "charge"},
    )
    assert snap["chargers"]["EVSE001"]["connectors"]["1"]["screen"] == (
        "Reserved for another driver"
    )
    assert [f["code"] for f in d["findings"]] == ["connector_reserved"]
    assert _actions(d) == []
    assert "another plug" in d["say"]


def test_the_booker_is_not_told_their_own_plug_is_reserved():
    d, _ = _diagnose(
        {
            "chargers": [{"id": "EVSE001", "connectors": 2}],
            "cards": [{"id_tag": "BOOKER"}],
            "reservations": [{"connector_id": 1, "id_tag": "BOOKER"}],
        },
        [],
        {"connector_id": 1, "id_tag": "BOOKER", "intent": "charge"},
    )
    assert "connector_reserved" not in [f["code"] for f in d["findings"]]


@pytest.mark.parametrize(
    ("state", "field"),
    [
        ({"errors": [{"error_code": "NoError"}]}, "errors[0].error_code"),
        ({"errors": [{"error_code": "GroundFailure", "info": 5}]}, "errors[0].info"),
        (
            {"errors": [{"error_code": "GroundFailure", "connector_id": 3}]},
            "errors[0].connector_id",
        ),
        ({"reservations": [{"id_tag": "X" * 21}]}, "reservations[0].id_tag"),
        (
            {"reservations": [{"id_tag": "A"}, {"id_tag": "B"}]},
            "reservations[1].connector_id",
        ),
        ({"reservations": [{"id_tag": "A", "when": 1}]}, "reservations[0].when"),
    ],
)
def test_errors_and_reservations_are_validated(state, field):
    with pytest.raises(InvalidInitialState) as info:
        InitialState.from_dict(state)
    assert info.value.field == field


def test_a_start_on_a_connector_without_a_cable_needs_the_cable_first():
    """A remote start for a connector that reports Available (no cable in) says it
    ``needs`` the cable: a charger waits ConnectionTimeOut for one and then starts nothing.
    On the connector where the driver plugged in (Preparing) it needs nothing."""
    state = {
        "chargers": [{"id": "EVSE001", "connectors": 2}],
        "cards": [{"id_tag": "CARD9", "stale_at": {"connector_id": 2}}],
    }
    tapped = [("present_card", {"connector_id": 2, "id_tag": "CARD9"})]
    wrong, _ = _diagnose(state, tapped, {"connector_id": 1, "id_tag": "CARD9"})
    right, snap = _diagnose(state, tapped, {"connector_id": 2, "id_tag": "CARD9"})
    assert snap["chargers"]["EVSE001"]["connectors"]["2"]["plugged"] is True
    (start,) = [a for a in _actions(wrong) if a["tool"] == "remote_start"]
    assert start["arguments"]["connector_id"] == 1 and start["needs"] == ["cable"]
    (start,) = [a for a in _actions(right) if a["tool"] == "remote_start"]
    assert start["arguments"]["connector_id"] == 2 and "needs" not in start
