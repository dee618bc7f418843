"""The five fault scenarios end to end: trigger → symptom → diagnosis → remediation → resolved."""

from __future__ import annotations

import pytest
import trio

from libv4e.sandbox import trio_clock
from libv4e_apps.csms.tools import call_tool
from tests.support import (
    EPOCH,
    api,
    charger_running,
    charger_setup,
    running_backend,
    wait_for,
)


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "v4e.db")


async def phase(client, name, cp_id="EVSE001"):
    body = (await client.get("/demo/scenarios")).json()
    spec = next(s for s in body["scenarios"] if s["name"] == name)
    runs = [r for r in spec["runs"] if r["cp_id"] == cp_id]
    return runs[-1]["phase"] if runs else None


async def diagnosis(client, **params):
    method = "POST" if params.get("probe") in ("true", True) else "GET"  # probes: POST
    r = await client.request(method, "/chargers/EVSE001/diagnosis", params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def do(client, action):
    """Run one recommended action (an agent tool call) exactly as the diagnosis wrote it."""
    outcome = await call_tool(client, action["tool"], action["arguments"])
    assert outcome["ok"], outcome
    return outcome["result"]


async def test_healthy_charger_has_no_findings_once_seen_charging(db):
    async with running_backend(db) as backend, charger_running(backend), api(backend) as client:
        d = await diagnosis(client, id_tag="USER123")
        assert (d["verdict"], d["findings"]) == ("inconclusive", [])  # nothing seen yet
        assert d["next_action"]["tool"] == "remote_start"
        assert (await do(client, d["next_action"]))["status"] == "Accepted"

        async def healthy():  # the probe asks for a reading: energy must have risen
            d = await diagnosis(client, id_tag="USER123", probe="true")
            return d["verdict"] == "healthy"

        await wait_for(healthy, interval=0.5)


async def test_scenario_catalog_and_errors(db):
    async with running_backend(db) as backend, api(backend) as client:
        body = (await client.get("/demo/scenarios")).json()
        assert [s["name"] for s in body["scenarios"]] == [
            "session_start_failure",
            "stuck_connector",
            "offline_charger",
            "auth_failure",
            "slow_charging",
        ]
        assert all(s["driver_says"] for s in body["scenarios"])
        r = await client.post("/demo/trigger/alien_invasion")
        assert (r.status_code, r.json()["error"]) == (404, "unknown_scenario")
        r = await client.post("/demo/trigger/session_start_failure")  # EVSE001 not connected
        assert (r.status_code, r.json()["error"]) == (409, "charger_not_connected")
        async with charger_running(backend):
            r = await client.post("/demo/trigger/session_start_failure")
            assert r.status_code == 201
            r = await client.post("/demo/trigger/session_start_failure")
            assert (r.status_code, r.json()["error"]) == (409, "scenario_active")
            body = (await client.get("/demo/scenarios")).json()
            assert body["active"][0]["cp_id"] == "EVSE001"
            r = await client.post("/demo/clear")
            assert r.json()["cleared"][0]["phase"] == "cleared"
            assert (await client.get("/demo/scenarios")).json()["active"] == []


async def test_session_start_failure(db, autojump_clock):
    autojump_clock.autojump_threshold = 0.01  # no jump while I/O is in flight
    async with charger_setup(db, clock=trio_clock(EPOCH)) as (charger, client):
        assert (await client.post("/demo/trigger/session_start_failure")).status_code == 201
        r = await client.post(
            "/commands/remote_start/EVSE001", json={"id_tag": "USER123", "connector_id": 1}
        )
        assert r.json()["status"] == "Accepted"  # the symptom: accepted, then nothing
        await trio.sleep(1.1)
        # silent since the start: the probe first (a silent charger is not a failed start)
        d = await diagnosis(client, start_timeout=1)
        assert d["next_action"]["arguments"]["probe"] is True
        d = await diagnosis(client, start_timeout=1, evidence="true", probe="true")
        assert [f["code"] for f in d["findings"]] == ["session_start_failure"]
        assert not charger.sessions
        finding = d["findings"][0]
        assert finding["evidence"][0]["action"] == "RemoteStartTransaction"
        assert finding["cites"][0]["id"] == finding["evidence"][0]["id"]
        off, on, restart = finding["actions"]  # only this connector is restarted
        assert (off["tool"], off["arguments"]["type"], on["arguments"]["type"]) == (
            "change_availability",
            "Inoperative",
            "Operative",
        )
        assert off["impact"] == {"scope": "connector", "stops": []}
        for action in (off, on):
            assert (await do(client, action))["status"] == "Accepted"
        assert charger.boot_count == 1  # no reboot
        await do(client, restart)

        async def resolved():
            await client.post(
                "/commands/trigger_message/EVSE001",
                json={"requested_message": "MeterValues", "connector_id": 1},
            )
            return await phase(client, "session_start_failure") == "resolved"

        await wait_for(resolved, timeout=15, interval=0.5)
        assert charger.sessions


async def test_stuck_connector(db):
    async with charger_setup(db) as (_charger, client):
        await client.post("/demo/trigger/stuck_connector", json={"session_seconds": 0.3})

        async def locked():
            s = (await client.get("/chargers/EVSE001")).json()["connectors"][1]
            return s["error_code"] == "ConnectorLockFailure"

        await wait_for(locked)
        d = await diagnosis(client)
        assert [f["code"] for f in d["findings"]] == ["stuck_connector"]
        (unlock,) = d["findings"][0]["actions"]
        assert {k: unlock[k] for k in ("tool", "arguments")} == {
            "tool": "unlock_connector",
            "arguments": {"cp_id": "EVSE001", "connector_id": 1},
        }
        assert (await do(client, unlock))["status"] == "Unlocked"
        await wait_for(lambda: _is_phase(client, "stuck_connector", "resolved"))
        s = (await client.get("/chargers/EVSE001")).json()["connectors"][1]
        assert (s["status"], s["error_code"]) == ("Available", "NoError")
        assert (await diagnosis(client))["findings"] == []


@pytest.mark.parametrize("remedy", ["reset", "ticket"])
async def test_offline_charger_silent(db, remedy):
    async with charger_setup(db) as (charger, client):
        await client.post("/demo/trigger/offline_charger")
        d = await diagnosis(client, probe="true")  # silent: only a probe shows it at once
        assert [f["code"] for f in d["findings"]] == ["offline_charger"]
        status = (await client.get("/status")).json()["charge_points"]["EVSE001"]
        assert status["connection"] == "offline"  # shown offline once found silent
        reset, ticket = d["findings"][0]["actions"]
        if remedy == "reset":
            assert reset["arguments"] == {"cp_id": "EVSE001", "type": "Hard"}
            boots = charger.boot_count
            await do(client, reset)
            await wait_for(lambda: _val(charger.boot_count > boots))
            await client.post(
                "/commands/trigger_message/EVSE001", json={"requested_message": "Heartbeat"}
            )
            await wait_for(lambda: _is_phase(client, "offline_charger", "resolved"))
            assert (await client.get("/status")).json()["charge_points"]["EVSE001"][
                "connection"
            ] == "online"
        else:
            t = await do(client, ticket)
            assert t["status"] == "open"
            assert (await client.get("/tickets")).json()["tickets"][0]["cp_id"] == "EVSE001"
            assert await phase(client, "offline_charger") == "escalated"


async def test_offline_charger_dead_drops_the_socket(db):
    async with charger_setup(db) as (charger, client):
        await client.post(
            "/demo/trigger/offline_charger", json={"mode": "dead", "recover_after": 1.5}
        )
        await wait_for(lambda: _val(not charger.online))
        d = await diagnosis(client)
        assert d["findings"][0]["code"] == "offline_charger"
        assert d["findings"][0]["actions"][-1]["tool"] == "create_ticket"
        await wait_for(lambda: _val(charger.online), timeout=10)  # comes back by itself


async def test_auth_failure(db, autojump_clock):
    autojump_clock.autojump_threshold = 0.01  # no jump while I/O is in flight
    async with charger_setup(db, clock=trio_clock(EPOCH)) as (charger, client):
        await client.post(
            "/commands/send_local_list/EVSE001", json={"id_tag": "OTHER", "status": "Accepted"}
        )
        await client.post("/demo/trigger/auth_failure", json={"id_tag": "CARD7"})
        r = await client.post("/commands/remote_start/EVSE001", json={"id_tag": "CARD7"})
        assert r.json()["status"] == "Accepted"
        await trio.sleep(0.5)
        assert not charger.sessions  # the card was refused
        d = await diagnosis(client, id_tag="CARD7", probe="true", evidence="true")
        codes = [f["code"] for f in d["findings"]]
        assert codes == ["auth_failure"]
        notes = " ".join(e.get("note", "") for e in d["findings"][0]["evidence"])
        assert "card list refused it" in notes
        assert "Charger list version" in notes
        send, start = d["findings"][0]["actions"]  # the list fixes it: no reset
        assert send["arguments"] == {"cp_id": "EVSE001", "id_tag": "CARD7", "status": "Accepted"}
        assert (await do(client, send))["status"] == "Accepted"
        await do(client, start)

        async def resolved():
            await client.post(
                "/commands/trigger_message/EVSE001",
                json={"requested_message": "MeterValues", "connector_id": 1},
            )
            return await phase(client, "auth_failure") == "resolved"

        await wait_for(resolved, timeout=15, interval=0.5)
        assert charger.sessions[1].id_tag == "CARD7"


async def test_slow_charging(db):
    async with charger_setup(db) as (charger, client):
        await client.post("/demo/trigger/slow_charging")
        await wait_for(lambda: _val(1 in charger.sessions))

        async def first_reading() -> bool:  # before it the diagnosis is inconclusive
            return (await diagnosis(client))["verdict"] != "inconclusive"

        await wait_for(first_reading)
        d = await diagnosis(client)
        assert [f["code"] for f in d["findings"]] == ["slow_charging"]
        assert "1.4 kW" in d["findings"][0]["agent_note"]
        reset, restart = d["findings"][0]["actions"]
        boots = charger.boot_count
        await do(client, reset)
        await wait_for(lambda: _val(charger.boot_count > boots and charger.online))
        await do(client, restart)

        async def resolved():
            await client.post(
                "/commands/trigger_message/EVSE001",
                json={"requested_message": "MeterValues", "connector_id": 1},
            )
            return await phase(client, "slow_charging") == "resolved"

        await wait_for(resolved, interval=0.3)
        assert charger.meters[1].power_w == pytest.approx(22000)


async def test_clear_ends_every_fault(db):
    async with charger_setup(db) as (charger, client):
        for name in ("session_start_failure", "slow_charging", "offline_charger"):
            assert (await client.post(f"/demo/trigger/{name}")).status_code == 201
        await wait_for(lambda: _val(len(charger.faults.active) == 3))
        cleared = (await client.post("/demo/clear")).json()["cleared"]
        assert {c["scenario"] for c in cleared} == {
            "session_start_failure",
            "slow_charging",
            "offline_charger",
        }
        assert charger.faults.active == {}
        assert (await client.get("/demo/scenarios")).json()["active"] == []


async def _val(v):
    return v


async def _is_phase(client, name, wanted):
    return await phase(client, name) == wanted


async def test_trigger_on_a_charger_without_the_fault_protocol_is_502(db):
    from tests.support import plain_charger

    async with (
        running_backend(db) as backend,
        plain_charger(backend, "PLAIN9"),
        api(backend) as client,
    ):
        r = await client.post("/demo/trigger/slow_charging", json={"cp_id": "PLAIN9"})
        assert (r.status_code, r.json()["error"]) == (502, "fault_refused")
        assert "fault protocol" in r.json()["message"]
        assert (await client.get("/demo/scenarios")).json()["active"] == []
