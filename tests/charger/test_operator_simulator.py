"""Simulator fixes, checked by an independent central system (the `ocpp`
package's, tests/interop/ocpp_probe_csms.py) and through our own CSMS and REST API:
ChangeAvailability Inoperative while Finishing is Scheduled and then applied with a
StatusNotification Unavailable; a second RemoteStartTransaction for a connector already
promised is Rejected; a reservation holds the connector for its id tag only."""

from __future__ import annotations

import pytest
import trio

from libv4e import Charger, ChargerConfig
from tests.support import INTEROP, api, running_backend, start_peer, ws_url

pytest.importorskip("websockets")


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "v4e.db")


def sim(cp_id: str, **extra) -> Charger:
    defaults = {"reboot_delay": 0.2, "unplug_delay": 1.5, "reconnect_min": 0.1}
    return Charger(ChargerConfig(cp_id=cp_id, **{**defaults, **extra}))


async def test_simulator_edge_cases_against_the_ocpp_package_central_system():
    async with trio.open_nursery() as nursery:
        peer = await start_peer(nursery, str(INTEROP / "ocpp_probe_csms.py"))
        port = (await peer.wait_for("listening"))["port"]
        charger = sim("SIM-PROBE")
        await nursery.start(charger.run, f"ws://127.0.0.1:{port}")
        starts = await peer.wait_for("RemoteStarts")
        assert sorted(starts["statuses"]) == ["Accepted", "Rejected"]  # either may go first
        winner, loser = ("PROBE-A", "PROBE-B")[:: 1 if starts["statuses"][0] == "Accepted" else -1]
        await peer.wait_for("StartTransaction", id_tag=winner)
        await peer.wait_for("StopTransaction", reason="Remote")
        await peer.wait_for("StatusNotification", connector_id=1, status="Finishing")
        assert (await peer.wait_for("ChangeAvailability.conf"))["status"] == "Scheduled"
        await peer.wait_for("StatusNotification", connector_id=1, status="Unavailable")
        assert [e.get("id_tag") for e in peer.events if e["event"] == "StartTransaction"] == [
            winner
        ]
        assert loser not in [e.get("id_tag") for e in peer.events]
        statuses = [
            e["status"]
            for e in peer.events
            if e["event"] == "StatusNotification" and e["connector_id"] == 1
        ]
        finishing = statuses.index("Finishing")
        assert statuses[finishing:][-1] == "Unavailable"
        assert charger.connectors[1].inoperative
        nursery.cancel_scope.cancel()


async def _status(client, cp_id, connector):
    return (await client.get(f"/chargers/{cp_id}")).json()["connectors"][connector]["status"]


async def wait_status(client, cp_id, connector, status, timeout=10):
    with trio.fail_after(timeout):
        while True:
            if await _status(client, cp_id, connector) == status:
                return
            await trio.sleep(0.05)  # wall: the charger is another process, polled


async def test_many_concurrent_remote_starts_start_one_session(db):
    async with running_backend(db) as backend, api(backend) as client:
        charger = sim("SIM-RACE")
        async with trio.open_nursery() as nursery:
            await nursery.start(charger.run, ws_url(backend))
            await charger.connected_event.wait()
            answers: list[str] = []

            async def start(tag):
                r = await client.post(
                    "/commands/remote_start/SIM-RACE", json={"id_tag": tag, "connector_id": 1}
                )
                answers.append(r.json()["status"])

            async with trio.open_nursery() as burst:
                for i in range(8):
                    burst.start_soon(start, f"TAG{i}")
            assert sorted(answers) == ["Accepted"] + ["Rejected"] * 7
            await wait_status(client, "SIM-RACE", 1, "Charging")
            txs = (await client.get("/transactions", params={"cp_id": "SIM-RACE"})).json()
            assert len(txs["transactions"]) == 1
            nursery.cancel_scope.cancel()


async def test_inoperative_while_finishing_through_the_api(db):
    async with running_backend(db) as backend, api(backend) as client:
        charger = sim("SIM-FIN", unplug_delay=2.0)
        async with trio.open_nursery() as nursery:
            await nursery.start(charger.run, ws_url(backend))
            await charger.connected_event.wait()
            r = await client.post("/commands/remote_start/SIM-FIN", json={"id_tag": "U1"})
            assert r.json()["status"] == "Accepted"
            await wait_status(client, "SIM-FIN", 1, "Charging")
            tx = charger.sessions[1].transaction_id
            await client.post("/commands/remote_stop/SIM-FIN", json={"transaction_id": tx})
            await wait_status(client, "SIM-FIN", 1, "Finishing")
            r = await client.post(
                "/commands/change_availability/SIM-FIN",
                json={"type": "Inoperative", "connector_id": 1},
            )
            assert r.json()["status"] == "Scheduled"
            # not startable meanwhile, and Unavailable once the cable is out
            r = await client.post("/commands/remote_start/SIM-FIN", json={"id_tag": "U2"})
            assert r.json()["status"] == "Rejected"
            await wait_status(client, "SIM-FIN", 1, "Unavailable")
            r = await client.post(
                "/commands/change_availability/SIM-FIN",
                json={"type": "Operative", "connector_id": 1},
            )
            assert r.json()["status"] == "Accepted"
            await wait_status(client, "SIM-FIN", 1, "Available")
            nursery.cancel_scope.cancel()


async def test_reservation_used_by_its_id_tag_only_on_the_simulator(db):
    async with running_backend(db) as backend, api(backend) as client:
        charger = sim("SIM-RES")
        async with trio.open_nursery() as nursery:
            await nursery.start(charger.run, ws_url(backend))
            await charger.connected_event.wait()
            r = await client.post(
                "/commands/reserve_now/SIM-RES",
                json={"connector_id": 1, "expiry_date": "2099-01-01T00:00:00Z", "id_tag": "MINE"},
            )
            reservation = r.json()["reservation"]
            assert reservation["status"] == "Reserved"
            await wait_status(client, "SIM-RES", 1, "Reserved")
            r = await client.post("/commands/remote_start/SIM-RES", json={"id_tag": "THEIRS"})
            assert r.json()["status"] == "Rejected"
            r = await client.post("/commands/remote_start/SIM-RES", json={"id_tag": "MINE"})
            assert r.json()["status"] == "Accepted"
            await wait_status(client, "SIM-RES", 1, "Charging")
            rid = reservation["reservation_id"]
            record = (await client.get(f"/reservations/{rid}")).json()
            assert record["status"] == "Used"
            tx = (await client.get(f"/transactions/{record['transaction_id']}")).json()
            assert (tx["id_tag"], tx["reservation_id"]) == ("MINE", rid)
            nursery.cancel_scope.cancel()
