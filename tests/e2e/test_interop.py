"""Interoperability with an OCPP 1.6-J implementation written elsewhere: the `ocpp`
package's own asyncio ChargePoint on `websockets`, in a separate process."""

from __future__ import annotations

import pytest
import trio

from libv4e import Charger, ChargerConfig
from tests.support import INTEROP, api, running_backend, start_peer, ws_url

pytest.importorskip("websockets")


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "v4e.db")


async def test_our_simulator_against_the_ocpp_package_reference_csms():
    async with trio.open_nursery() as nursery:
        peer = await start_peer(nursery, str(INTEROP / "ocpp_reference_csms.py"))
        port = (await peer.wait_for("listening"))["port"]
        charger = Charger(ChargerConfig(cp_id="SIM-INTEROP", reconnect_min=0.1))
        await nursery.start(charger.run, f"ws://127.0.0.1:{port}")
        connected = await peer.wait_for("connected")
        assert connected["cp_id"] == "SIM-INTEROP"
        assert connected["subprotocol"] == "ocpp1.6"
        assert (await peer.wait_for("BootNotification"))["vendor"] == "Voice4EVs"
        await peer.wait_for("StatusNotification", connector_id=1, status="Available")
        assert (await peer.wait_for("RemoteStartTransaction.conf"))["status"] == "Accepted"
        assert (await peer.wait_for("Authorize"))["id_tag"] == "INTEROP1"
        await peer.wait_for("StartTransaction", id_tag="INTEROP1")
        await peer.wait_for("StatusNotification", connector_id=1, status="Charging")
        assert (await peer.wait_for("MeterValues"))["transaction_id"] == 42
        assert charger.configuration["HeartbeatInterval"] == "10"
        nursery.cancel_scope.cancel()


async def test_the_ocpp_package_reference_charger_against_our_csms(db):
    async with (
        running_backend(db) as backend,
        api(backend) as client,
        trio.open_nursery() as nursery,
    ):
        peer = await start_peer(
            nursery, str(INTEROP / "ocpp_reference_charger.py"), ws_url(backend), "REF001"
        )
        boot = await peer.wait_for("BootNotification.conf")
        assert (boot["status"], boot["interval"]) == ("Accepted", 30)
        assert (await peer.wait_for("StartTransaction.conf"))["status"] == "Accepted"
        await peer.wait_for("ready")
        status = (await client.get("/status")).json()["charge_points"]["REF001"]
        assert status["boot"]["vendor"] == "RefVendor"
        assert status["connectors"][0]["status"] == "Available"
        r = await client.post("/commands/reset/REF001", json={"type": "Hard"})
        assert r.json()["status"] == "Accepted"
        assert (await peer.wait_for("Reset"))["type"] == "Hard"
        r = await client.post(
            "/commands/remote_start/REF001", json={"id_tag": "USER123", "connector_id": 1}
        )
        assert r.json()["status"] == "Accepted"
        r = await client.post(
            "/commands/change_configuration/REF001",
            json={"key": "HeartbeatInterval", "value": "60"},
        )
        assert r.json()["status"] == "Accepted"
        txs = (await client.get("/transactions", params={"cp_id": "REF001"})).json()["transactions"]
        assert txs[0]["energy_wh"] == 1500
        assert not txs[0]["active"]
        nursery.cancel_scope.cancel()
