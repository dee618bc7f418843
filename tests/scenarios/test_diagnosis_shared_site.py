"""The agent's advice on a real site — the right next step, and no harm to the
driver next door. Each test drives the diagnosis the way an agent does (the agent tools
over REST, :func:`libv4e_apps.csms.tools.call_tool`), on a two-connector charger with a second
driver charging on the neighbouring connector wherever that changes the answer."""

from __future__ import annotations

import json

import pytest
import trio
from ocpp.v16 import call, call_result, datatypes

from libv4e import open_ocpp
from libv4e.sandbox import trio_clock
from tests.support import (
    DRIVER,
    EPOCH,
    NEIGHBOUR,
    _true,
    api,
    boot,
    charger_setup,
    neighbour_charging,
    run_phase,
    running_backend,
    tool,
    wait_for,
    ws_url,
)


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "v4e.db")


async def diagnose(client, **arguments):
    return await tool(client, "diagnose_charger", cp_id="EVSE001", **arguments)


def tools_of(d):
    """Every tool the diagnosis suggests (the findings' actions and next_action)."""
    out = [a["tool"] for f in d["findings"] for a in f["actions"]]
    return out + ([d["next_action"]["tool"]] if d["next_action"] else [])


# -- 1. a silent charger: the probe first, then the documented Hard reset ----------------------


async def test_a_silent_charger_is_probed_not_started_and_gets_a_hard_reset(db):
    async with charger_setup(db, connectors=2) as (charger, client):
        await neighbour_charging(client, charger, 2)
        await tool(client, "trigger_scenario", name="offline_charger", cp_id="EVSE001")
        d = await diagnose(client, id_tag=DRIVER, connector_id=1)
        assert d["verdict"] == "inconclusive"
        assert "remote_start" not in tools_of(d), d
        assert d["next_action"]["tool"] == "diagnose_charger"
        assert d["next_action"]["arguments"]["probe"] is True
        d = await tool(client, "diagnose_charger", **d["next_action"]["arguments"])
        assert [f["code"] for f in d["findings"]] == ["offline_charger"]
        reset = d["findings"][0]["actions"][0]
        assert reset["tool"] == "reset_charger" and reset["arguments"]["type"] == "Hard"
        # the reset would stop the neighbour's session: it says so, and asks for consent
        assert reset["needs_consent"] is True
        (stop,) = reset["impact"]["stops"]
        assert (stop["connector_id"], stop["id_tag"]) == (2, NEIGHBOUR)
        assert reset["impact"]["scope"] == "charger"


# -- 2. impact, consent, connector-scoped remedies, no reset after a fix that worked -----------


async def test_a_failed_start_is_cured_on_its_connector_and_the_neighbour_keeps_charging(
    db, autojump_clock
):
    autojump_clock.autojump_threshold = 0.01  # no jump while I/O is in flight
    async with charger_setup(db, clock=trio_clock(EPOCH), connectors=2) as (charger, client):
        neighbour = await neighbour_charging(client, charger, 2)
        await tool(
            client,
            "trigger_scenario",
            name="session_start_failure",
            cp_id="EVSE001",
            connector_id=1,
        )
        await tool(client, "remote_start", cp_id="EVSE001", connector_id=1, id_tag=DRIVER)
        await trio.sleep(0.6)
        d = await diagnose(client, id_tag=DRIVER, connector_id=1, start_timeout=0.5, probe=True)
        assert [f["code"] for f in d["findings"]] == ["session_start_failure"]
        actions = d["findings"][0]["actions"]
        assert "reset_charger" not in [a["tool"] for a in actions]
        for action in actions:
            assert "impact" in action and action["needs_consent"] is False
            assert action["impact"]["stops"] == []
            await tool(client, action["tool"], **action["arguments"])
        await wait_for(lambda: _true(1 in charger.sessions))
        assert charger.sessions[2] is neighbour  # untouched


async def test_auth_failure_needs_no_reset_and_stops_nobody(db):
    async with charger_setup(db, connectors=2) as (charger, client):
        neighbour = await neighbour_charging(client, charger, 2)
        await tool(client, "trigger_scenario", name="auth_failure", cp_id="EVSE001", id_tag=DRIVER)
        await tool(client, "remote_start", cp_id="EVSE001", connector_id=1, id_tag=DRIVER)

        async def found():
            d = await diagnose(client, id_tag=DRIVER, connector_id=1)
            return d if d["verdict"] == "fault_found" else None

        d = await wait_for(found, timeout=5, interval=0.2)
        actions = d["findings"][0]["actions"]
        assert [a["tool"] for a in actions] == ["send_local_list", "remote_start"]
        assert not any(a["needs_consent"] for a in actions)
        for action in actions:
            await tool(client, action["tool"], **action["arguments"])
        await wait_for(lambda: _true(1 in charger.sessions))
        assert charger.sessions[1].id_tag == DRIVER
        assert charger.sessions[2] is neighbour


async def test_a_reset_that_stops_someone_else_needs_consent_but_not_the_callers_own(db):
    async with charger_setup(db, connectors=2) as (charger, client):
        await tool(client, "trigger_scenario", name="slow_charging", cp_id="EVSE001", id_tag=DRIVER)
        await wait_for(lambda: _true(1 in charger.sessions))

        async def slow(**hints):
            d = await diagnose(client, id_tag=DRIVER, connector_id=1, probe=True, **hints)
            return d if d["verdict"] == "fault_found" else None

        alone = await wait_for(slow, timeout=10, interval=0.3)
        reset = alone["findings"][0]["actions"][0]
        assert reset["tool"] == "reset_charger"
        assert reset["needs_consent"] is False  # only the caller's own session stops
        assert [s["id_tag"] for s in reset["impact"]["stops"]] == [DRIVER]
        await neighbour_charging(client, charger, 2)
        d = await slow()
        tools = [a["tool"] for a in d["findings"][0]["actions"]]
        # the neighbour charges: no whole-charger reset, this connector only
        assert "reset_charger" not in tools
        assert tools == [
            "remote_stop",
            "change_availability",
            "change_availability",
            "remote_start",
        ]
        assert not any(a["needs_consent"] for a in d["findings"][0]["actions"])
        for action in d["findings"][0]["actions"]:
            await tool(client, action["tool"], **action["arguments"])
        await wait_for(lambda: _true(1 in charger.sessions))
        await wait_for(lambda: _true(charger.meters[1].power_w > 20000), timeout=15)
        assert charger.sessions[2].id_tag == NEIGHBOUR


# -- 3. card refusals are charger-wide; two failed starts escalate ---------------------------


async def test_a_card_refused_on_connector_2_is_found_from_either_connector(db):
    async with charger_setup(db, connectors=2) as (_charger, client):
        # the fault's default connector is 1; the driver uses connector 2
        await tool(client, "trigger_scenario", name="auth_failure", cp_id="EVSE001", id_tag=DRIVER)
        await tool(client, "remote_start", cp_id="EVSE001", connector_id=2, id_tag=DRIVER)

        async def conflict_on_2():
            r = await tool(client, "recent_messages", cp_id="EVSE001", limit=100)
            return any(
                m.get("action") == "StatusNotification"
                and m["payload"].get("errorCode") == "LocalListConflict"
                and m["payload"].get("connectorId") == 2
                for m in r["messages"]
            )

        await wait_for(conflict_on_2, timeout=5, interval=0.2)  # reported where it happened
        for asked in (1, 2):
            d = await diagnose(client, id_tag=DRIVER, connector_id=asked)
            assert [f["code"] for f in d["findings"]] == ["auth_failure"], (asked, d)
            assert d["findings"][0]["connector_id"] == 2


async def test_two_accepted_starts_without_a_session_escalate_never_a_third(db, autojump_clock):
    autojump_clock.autojump_threshold = 0.01  # no jump while I/O is in flight

    async def accept(req):
        return call_result.RemoteStartTransaction("Accepted")  # ...and then nothing

    async def available(req):
        return call_result.ChangeAvailability("Accepted")

    async with running_backend(db, clock=trio_clock(EPOCH)) as backend, api(backend) as client:
        handlers = {"RemoteStartTransaction": accept, "ChangeAvailability": available}
        async with open_ocpp(ws_url(backend), "PLAIN1", handlers=handlers) as conn:
            await boot(conn, connectors=2)
            starts = 0
            for _ in range(6):
                d = await tool(
                    client,
                    "diagnose_charger",
                    cp_id="PLAIN1",
                    id_tag=DRIVER,
                    connector_id=1,
                    start_timeout=0.3,
                )
                if d["verdict"] == "fault_found":
                    actions = d["findings"][0]["actions"]
                elif d["next_action"]["tool"] == "create_ticket":
                    break
                else:
                    actions = [d["next_action"]]
                for action in actions:
                    if action["tool"] == "diagnose_charger":
                        continue
                    await tool(client, action["tool"], **action["arguments"])
                    starts += action["tool"] == "remote_start"
                await conn.call(call.Heartbeat(), timeout=5)  # alive, not silent
                await trio.sleep(0.4)
            assert starts == 2
            assert d["verdict"] == "inconclusive"
            assert d["next_action"]["tool"] == "create_ticket"
            assert "remote_start" not in tools_of(d)


# -- 4. seen working counts only for the driver's own card --------------------------------------


async def test_another_cards_session_does_not_make_the_driver_healthy(db):
    async with charger_setup(db, connectors=2) as (charger, client):
        # a latent card fault for the driver; someone else charges on connector 1
        await tool(client, "trigger_scenario", name="auth_failure", cp_id="EVSE001", id_tag=DRIVER)
        await neighbour_charging(client, charger, 1)

        async def anyone_healthy():  # charging works on connector 1 (the probe reads power)
            d = await diagnose(client, connector_id=1, probe=True)
            return d["verdict"] == "healthy"

        await wait_for(anyone_healthy, timeout=15, interval=0.5)
        d = await diagnose(client, id_tag=DRIVER, connector_id=1, probe=True)
        assert d["verdict"] != "healthy"  # ...but not seen for the driver's card


# -- 5. no start after an unlock unless the driver wants to charge ------------------------------


async def test_after_an_unlock_no_start_unless_the_driver_asked_to_charge(db):
    async with charger_setup(db, connectors=2) as (charger, client):
        await neighbour_charging(client, charger, 2)
        r = await client.post(
            "/demo/trigger/stuck_connector",
            json={"connector_id": 1, "id_tag": DRIVER, "session_seconds": 0.3},
        )
        assert r.status_code == 201, r.text

        async def stuck():
            d = await diagnose(client, id_tag=DRIVER, connector_id=1)
            return d if d["verdict"] == "fault_found" else None

        d = await wait_for(stuck, timeout=10, interval=0.2)
        (unlock,) = d["findings"][0]["actions"]
        assert unlock["tool"] == "unlock_connector"
        assert (unlock["needs_consent"], unlock["impact"]["stops"]) == (False, [])
        assert (await tool(client, "unlock_connector", **unlock["arguments"]))["status"] == (
            "Unlocked"
        )

        async def released():
            state = await tool(client, "get_charger", cp_id="EVSE001")
            c = next(c for c in state["connectors"] if c["connector_id"] == 1)
            return c["status"] == "Available" and c["error_code"] == "NoError"

        await wait_for(released, timeout=5, interval=0.2)
        for intent in (None, "leave"):
            hints = {"intent": intent} if intent else {}
            d = await diagnose(client, id_tag=DRIVER, connector_id=1, **hints)
            assert "remote_start" not in tools_of(d), d
            assert d["verdict"] == "healthy"
            assert d["say"] == "The cable is unlocked. You can unplug now."
        d = await diagnose(client, id_tag=DRIVER, connector_id=1, intent="charge")
        assert d["next_action"]["tool"] == "remote_start"
        assert d["next_action"]["arguments"]["connector_id"] == 1
        assert charger.sessions[2].id_tag == NEIGHBOUR


# -- 6. runs per (charger, connector) ------------------------------------------------------------


async def test_scenario_runs_are_per_connector_and_a_remediating_run_is_superseded(
    db, autojump_clock
):
    autojump_clock.autojump_threshold = 0.01  # no jump while I/O is in flight
    async with charger_setup(db, clock=trio_clock(EPOCH), connectors=2) as (charger, client):
        for cid in (1, 2):
            r = await client.post("/demo/trigger/session_start_failure", json={"connector_id": cid})
            assert r.status_code == 201, r.text
        r = await client.post("/demo/trigger/session_start_failure", json={"connector_id": 1})
        assert (r.status_code, r.json()["error"]) == (409, "scenario_active")
        # both connectors have the fault in the charger
        for cid in (1, 2):
            r = await tool(client, "remote_start", cp_id="EVSE001", connector_id=cid, id_tag=DRIVER)
            assert r["status"] == "Accepted"
        await trio.sleep(0.5)
        assert not charger.sessions
        # connector 1 restarted: that run is remediating (no session yet) ...
        for kind in ("Inoperative", "Operative"):
            await tool(client, "change_availability", cp_id="EVSE001", connector_id=1, type=kind)
        assert await run_phase(client, "session_start_failure", 1) == "remediating"
        # ... a new trigger there ends that run first, recorded as such
        r = await client.post("/demo/trigger/session_start_failure", json={"connector_id": 1})
        assert r.status_code == 201, r.text
        body = (await client.get("/demo/scenarios")).json()
        runs = next(s for s in body["scenarios"] if s["name"] == "session_start_failure")["runs"]
        assert [(run["connector_id"], run["phase"]) for run in runs] == [
            (1, "cleared"),
            (2, "active"),
            (1, "active"),
        ]
        assert "superseded" in runs[0]["history"][-1]["note"]


# -- 7. one notion of resolved -------------------------------------------------------------------


def _meter(energy_wh, power_w=22000):
    return [
        datatypes.MeterValue(
            "2024-05-01T12:00:00Z",
            [
                datatypes.SampledValue(
                    str(energy_wh), measurand="Energy.Active.Import.Register", unit="Wh"
                ),
                datatypes.SampledValue(str(power_w), measurand="Power.Active.Import", unit="W"),
                datatypes.SampledValue("22000", measurand="Power.Offered", unit="W"),
            ],
        )
    ]


async def test_healthy_only_when_the_run_is_resolved_the_same_notion(db):
    async def fault(req):
        return call_result.DataTransfer("Accepted", json.dumps({"active": {}}))

    async def reset(req):
        return call_result.Reset("Accepted")

    async with running_backend(db) as backend, api(backend) as client:
        handlers = {"DataTransfer": fault, "Reset": reset}
        async with open_ocpp(ws_url(backend), "PLAIN1", handlers=handlers) as conn:
            await boot(conn, connectors=2)
            r = await client.post("/demo/trigger/session_start_failure", json={"cp_id": "PLAIN1"})
            assert r.status_code == 201, r.text
            await tool(client, "reset_charger", cp_id="PLAIN1", type="Soft")
            assert await run_phase(client, "session_start_failure") == "remediating"
            tx = await conn.call(
                call.StartTransaction(1, DRIVER, 1000, "2024-05-01T12:00:00Z"), timeout=5
            )
            await conn.call(call.StatusNotification(1, "NoError", "Charging"), timeout=5)
            await conn.call(call.MeterValues(1, _meter(1000), tx.transaction_id), timeout=5)
            hints = {"cp_id": "PLAIN1", "id_tag": DRIVER, "connector_id": 1}
            d = await tool(client, "diagnose_charger", **hints)
            # started, normal power, but no energy yet: the run is not resolved, nor healthy
            assert await run_phase(client, "session_start_failure") == "remediating"
            assert d["verdict"] != "healthy"
            await conn.call(call.MeterValues(1, _meter(1200), tx.transaction_id), timeout=5)
            d = await tool(client, "diagnose_charger", **hints)
            assert await run_phase(client, "session_start_failure") == "resolved"
            assert d["verdict"] == "healthy"
            body = (await client.get("/demo/scenarios")).json()
            assert all(s["resolved_when"] for s in body["scenarios"])
