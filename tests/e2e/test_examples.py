"""Every example runs, against real servers on 127.0.0.1."""

from __future__ import annotations

import trio
from ocpp.v16 import call

from examples import custom_charger, custom_scenario, minimal_csms, rest_client
from libv4e import open_ocpp
from tests.support import api, charger_running, running_backend, wait_for, ws_url


async def test_minimal_csms_boots_a_charger(nursery, capsys):
    port = await nursery.start(minimal_csms.main, 0)
    async with open_ocpp(f"ws://127.0.0.1:{port}", "EX1") as conn:
        boot = await conn.call(call.BootNotification("Model", "Vendor"), timeout=5)
        await conn.call(call.StatusNotification(1, "NoError", "Available"), timeout=5)
        assert (await conn.call(call.Heartbeat(), timeout=5)).current_time
    assert boot.status == "Accepted"
    assert "EX1: connector 1 is Available" in capsys.readouterr().out


async def test_custom_charger_charges_by_itself_and_has_a_worn_lock(tmp_path):
    async with (
        running_backend(str(tmp_path / "v4e.db")) as backend,
        api(backend) as client,
        trio.open_nursery() as nursery,
    ):
        charger = await nursery.start(custom_charger.main, ws_url(backend))
        await wait_for(lambda: _val(1 in charger.sessions))
        first = (
            await client.post("/commands/unlock_connector/WORN001", json={"connector_id": 2})
        ).json()
        second = (
            await client.post("/commands/unlock_connector/WORN001", json={"connector_id": 2})
        ).json()
        assert (first["status"], second["status"]) == ("UnlockFailed", "Unlocked")
        state = (await client.get("/chargers/WORN001")).json()
        assert len(state["connectors"]) == 3  # connector 0 and two connectors
        nursery.cancel_scope.cancel()


async def test_custom_scenario_plays_through_the_demo_routes(tmp_path):
    async with trio.open_nursery() as nursery:
        backend, charger = await nursery.start(
            lambda task_status: custom_scenario.main(
                api_port=0, ws_port=0, db=str(tmp_path / "x.db"), task_status=task_status
            )
        )
        with trio.fail_after(10):
            await charger.connected_event.wait()
        async with api(backend) as client:
            names = [s["name"] for s in (await client.get("/demo/scenarios")).json()["scenarios"]]
            assert "overheating" in names
            assert (await client.post("/demo/trigger/overheating")).status_code == 201
            await wait_for(lambda: _connector_error(client, "HighTemperature"))
            await client.post("/commands/reset/EVSE001", json={"type": "Soft"})

            async def resolved():
                body = (await client.get("/demo/scenarios")).json()
                spec = next(s for s in body["scenarios"] if s["name"] == "overheating")
                return spec["runs"][-1]["phase"] == "resolved"

            await wait_for(resolved)
        nursery.cancel_scope.cancel()


async def test_rest_client_script(tmp_path):
    async with running_backend(str(tmp_path / "v4e.db")) as backend, charger_running(backend):
        result = await trio.to_thread.run_sync(
            rest_client.main, f"http://127.0.0.1:{backend.api_port}", "EVSE001"
        )
    assert (result["start"], result["stop"]) == ("Accepted", "Accepted")
    assert result["power_w"] > 0


async def _val(v):
    return v


async def _connector_error(client, code):
    return (await client.get("/chargers/EVSE001")).json()["connectors"][1]["error_code"] == code
