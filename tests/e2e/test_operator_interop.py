"""The operator surface driven through the REST API against a charger we did
not write: the `ocpp` package's asyncio ChargePoint (tests/interop/ocpp_operator_charger.py)
in a separate process. Each test checks what the charger received and did, and what the
CSMS recorded and shows."""

from __future__ import annotations

import datetime as dt
import json

import jsonschema
import pytest
import trio

from libv4e_apps.csms.tools import TOOLS_BY_NAME, call_tool
from tests.support import INTEROP, api, running_backend, start_peer, wait_for, ws_url

PEER = str(INTEROP / "ocpp_operator_charger.py")
pytest.importorskip("websockets")


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "v4e.db")


async def peer_session(nursery, backend, cp_id="OP001", *args):
    peer = await start_peer(nursery, PEER, ws_url(backend), cp_id, *args)
    await peer.wait_for("ready")
    return peer


def entry(tag, status="Accepted", **info):
    return {"id_tag": tag, "id_tag_info": {"status": status, **info}}


async def test_local_list_full_then_differential_versions_and_mismatch(db):
    async with (
        running_backend(db) as backend,
        api(backend) as client,
        trio.open_nursery() as nursery,
    ):
        peer = await peer_session(nursery, backend, "OP001", "--max-list", "3")
        url = "/commands/send_local_list/OP001"
        r = await client.post(
            url,
            json={
                "update_type": "Full",
                "list_version": 1,
                "local_authorization_list": [
                    entry("A1", expiry_date="2099-01-01T00:00:00Z"),
                    entry("B1", "Blocked", parent_id_tag="A1"),
                ],
            },
        )
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["list_version"]) == ("Accepted", 1)
        sent = await peer.wait_for("SendLocalList", update_type="Full")
        assert (sent["list_version"], sent["tags"]) == (1, ["A1", "B1"])
        assert (await peer.wait_for("LocalList", version=1))["tags"] == ["A1", "B1"]

        r = await client.post(
            url,
            json={
                "update_type": "Differential",
                "list_version": 2,
                "local_authorization_list": [entry("C1"), {"id_tag": "B1"}],
            },
        )
        assert r.json()["status"] == "Accepted"
        assert (await peer.wait_for("LocalList", version=2))["tags"] == ["A1", "C1"]
        state = (await client.get("/chargers/OP001/local_list")).json()
        assert state["list_version"] == 2 and state["complete"] is True
        held = {e["id_tag"]: e["id_tag_info"] for e in state["local_authorization_list"]}
        assert set(held) == {"A1", "C1"}
        assert held["A1"]["expiry_date"] == "2099-01-01T00:00:00.000Z"
        assert [u["status"] for u in state["updates"]] == ["Accepted", "Accepted"]
        # the CSMS's own list took the entries too (B1 removed by the Differential update)
        own = {t["id_tag"] for t in (await client.get("/id_tags")).json()["id_tags"]}
        assert own == {"A1", "C1"}

        # the same version again: VersionMismatch, answered with an offer of a Full update
        r = await client.post(
            url,
            json={
                "update_type": "Differential",
                "list_version": 2,
                "local_authorization_list": [entry("D1")],
            },
        )
        body = r.json()
        assert body["status"] == "VersionMismatch"
        offer = body["offer"]
        assert offer["update_type"] == "Full" and offer["list_version"] > 2
        assert {e["id_tag"] for e in offer["local_authorization_list"]} == {"A1", "C1", "D1"}
        assert (await client.get("/chargers/OP001/local_list")).json()["list_version"] == 2
        # the offer is a valid body as it stands
        r = await client.post(url, json=offer)
        assert r.json()["status"] == "Accepted"
        assert (await peer.wait_for("LocalList", version=offer["list_version"]))["tags"] == [
            "A1",
            "C1",
            "D1",
        ]
        # or sent at once
        r = await client.post(
            url,
            json={
                "update_type": "Differential",
                "list_version": 1,
                "local_authorization_list": [{"id_tag": "C1"}],
                "on_version_mismatch": "send_full",
            },
        )
        assert r.json()["status"] == "VersionMismatch"
        assert r.json()["full_update"]["status"] == "Accepted"

        # too many entries for this charger (max 3): Failed, recorded, version unchanged
        before = (await client.get("/chargers/OP001/local_list")).json()["list_version"]
        r = await client.post(
            url,
            json={
                "update_type": "Full",
                "list_version": 50,
                "local_authorization_list": [entry(f"T{i}") for i in range(4)],
                "update_csms_list": False,
            },
        )
        assert r.json()["status"] == "Failed"
        state = (await client.get("/chargers/OP001/local_list")).json()
        assert state["list_version"] == before
        assert state["last_update"]["status"] == "Failed"
        own = (await client.get("/id_tags")).json()["id_tags"]
        assert not any(t["id_tag"].startswith("T") for t in own)

        version = (await client.post("/commands/get_local_list_version/OP001")).json()
        assert version["listVersion"] == before
        assert version["local_list"]["reported_version"] == before

        # the seed's one-card body still works verbatim: Differential at the CSMS's version
        r = await client.post(url, json={"id_tag": "NEWCARD123", "status": "Accepted"})
        assert r.status_code == 200 and r.json()["status"] == "Accepted"
        sent = await peer.wait_for("SendLocalList", tags=["NEWCARD123"])
        assert sent["update_type"] == "Differential"
        assert sent["list_version"] == r.json()["list_version"]
        nursery.cancel_scope.cancel()


async def test_local_list_not_supported_is_recorded(db):
    async with (
        running_backend(db) as backend,
        api(backend) as client,
        trio.open_nursery() as nursery,
    ):
        await peer_session(nursery, backend, "OP002", "--no-local-list")
        r = await client.post(
            "/commands/send_local_list/OP002",
            json={"update_type": "Full", "local_authorization_list": [entry("A1")]},
        )
        assert r.json()["status"] == "NotSupported"
        assert r.json()["list_version"] >= 1  # allocated: the caller gave none
        version = (await client.post("/commands/get_local_list_version/OP002")).json()
        assert version["listVersion"] == -1
        state = (await client.get("/chargers/OP002/local_list")).json()
        assert state["list_version"] is None and state["reported_version"] == -1
        assert state["last_update"]["status"] == "NotSupported"
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"update_type": "Full", "local_authorization_list": [{"id_tag": "A"}]}, "(body)"),
        ({"id_tag": "A", "update_type": "Full"}, "(body)"),
        ({"update_type": "Differential"}, "(body)"),
        ({"update_type": "Full", "local_authorization_list": [entry("A"), entry("A")]}, "(body)"),
        ({"update_type": "Partial", "local_authorization_list": []}, "update_type"),
        ({"update_type": "Full", "list_version": -1}, "list_version"),
        ({"status": "Accepted"}, "(body)"),
    ],
)
async def test_send_local_list_refuses_bodies_the_spec_does_not_allow(db, body, field):
    async with running_backend(db) as backend, api(backend) as client:
        r = await client.post("/commands/send_local_list/OP001", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "invalid_body"
        assert any(d["field"] == field for d in r.json()["details"]), r.json()


async def test_reservation_lifecycle(db):
    later = "2099-01-01T00:00:00Z"
    async with (
        running_backend(db) as backend,
        api(backend) as client,
        trio.open_nursery() as nursery,
    ):
        peer = await peer_session(nursery, backend, "OP003")

        async def reserve(connector, **extra):
            body = {"connector_id": connector, "expiry_date": later, "id_tag": "DRIVER1", **extra}
            r = await client.post("/commands/reserve_now/OP003", json=body)
            assert r.status_code == 200, r.text
            return r.json()

        first = await reserve(1)
        assert first["status"] == "Accepted"
        rid = first["reservation"]["reservation_id"]
        assert first["reservation"]["status"] == "Reserved"
        assert (await peer.wait_for("ReserveNow", connector_id=1))["reservation_id"] == rid
        answers = {c: (await reserve(c))["reservation"] for c in (2, 3, 0)}
        assert {c: r["status"] for c, r in answers.items()} == {
            2: "Faulted",
            3: "Unavailable",
            0: "Rejected",
        }
        occupied = (await reserve(1, id_tag="OTHER"))["reservation"]
        assert occupied["status"] == "Occupied"
        ids = [rid, *(r["reservation_id"] for r in answers.values()), occupied["reservation_id"]]
        assert len(set(ids)) == len(ids)  # allocated ids are unique

        listed = (await client.get("/reservations", params={"status": "Reserved"})).json()
        assert [r["reservation_id"] for r in listed["reservations"]] == [rid]
        mine = (await client.get("/reservations", params={"cp_id": "OP003"})).json()
        assert len(mine["reservations"]) == 5
        assert (await client.get("/reservations", params={"status": "Nope"})).status_code == 400

        # Used: the charger's StartTransaction carries the reservation id
        r = await client.post(
            "/commands/remote_start/OP003", json={"id_tag": "DRIVER1", "connector_id": 1}
        )
        assert r.json()["status"] == "Accepted"
        started = await peer.wait_for("StartTransaction.conf")
        assert started["reservation_id"] == rid

        async def used():
            record = (await client.get(f"/reservations/{rid}")).json()
            return record if record["status"] == "Used" else None

        record = await wait_for(used)
        assert record["transaction_id"] == started["transaction_id"]
        assert [h["status"] for h in record["history"]] == ["Pending", "Reserved", "Used"]
        tx = (await client.get(f"/transactions/{started['transaction_id']}")).json()
        assert tx["reservation_id"] == rid

        # Cancelled, and a second cancel is Rejected by the charger and changes nothing
        second = (await reserve(4, reservation_id=4242))["reservation"]
        assert (second["reservation_id"], second["status"]) == (4242, "Reserved")
        r = await client.post("/commands/cancel_reservation/OP003", json={"reservation_id": 4242})
        assert r.json()["status"] == "Accepted"
        assert r.json()["reservation"]["status"] == "Cancelled"
        r = await client.post("/commands/cancel_reservation/OP003", json={"reservation_id": 4242})
        assert r.json()["status"] == "Rejected"
        assert r.json()["reservation"]["status"] == "Cancelled"
        assert r.json()["reservation"]["cancel_status"] == "Rejected"

        # Expired: the expiry date passes while it is still Reserved
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
        third = (await reserve(4, expiry_date=soon.isoformat()))["reservation"]
        assert third["status"] == "Reserved"
        assert third["reservation_id"] > 4242  # allocation continues past explicit ids

        async def expired():  # the expiry date is wall time: the charger is another process
            record = (await client.get(f"/reservations/{third['reservation_id']}")).json()
            return record["status"] == "Expired"

        await wait_for(expired, timeout=10, interval=0.2)
        assert (await client.get("/reservations/999999")).status_code == 404
        nursery.cancel_scope.cancel()


def profile(pid, purpose, limit, stack=0, unit="W", **extra):
    return {
        "chargingProfileId": pid,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "chargingRateUnit": unit,
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
        },
        **extra,
    }


async def test_charging_profile_records(db):
    async with (
        running_backend(db) as backend,
        api(backend) as client,
        trio.open_nursery() as nursery,
    ):
        peer = await peer_session(nursery, backend, "OP004")

        async def set_profile(connector, body):
            r = await client.post(
                "/commands/set_charging_profile/OP004",
                json={"connector_id": connector, "cs_charging_profiles": body},
            )
            assert r.status_code == 200, r.text
            return r.json()

        async def installed():
            r = await client.get("/chargers/OP004/charging_profiles")
            return r.json()

        r = await set_profile(0, profile(1, "ChargePointMaxProfile", 11000.0))
        assert r["charging_profile"]["status"] == "Installed"
        r = await set_profile(1, profile(2, "TxDefaultProfile", 7000.0, stack=1))
        assert r["status"] == "Accepted" and r["replaced"] == []
        # same purpose and stack level on the same connector: replaces profile 2
        r = await set_profile(1, profile(3, "TxDefaultProfile", 6000.0, stack=1))
        assert [p["charging_profile_id"] for p in r["replaced"]] == [2]
        assert r["replaced"][0]["status"] == "Replaced"
        # a TxProfile without a transaction: the charger rejects it, and that is recorded
        r = await set_profile(1, profile(4, "TxProfile", 5000.0, stack=2))
        assert (r["status"], r["charging_profile"]["status"]) == ("Rejected", "Rejected")

        view = await installed()
        assert sorted(p["charging_profile_id"] for p in view["charging_profiles"]) == [1, 3]
        limits = {lim["connector_id"]: lim for lim in view["limits"]}
        assert (limits[1]["limit"], limits[1]["charging_rate_unit"]) == (6000.0, "W")
        assert limits[0]["limit"] == 11000.0
        everything = (
            await client.get("/chargers/OP004/charging_profiles", params={"status": "all"})
        ).json()["charging_profiles"]
        assert sorted(p["status"] for p in everything) == [
            "Installed",
            "Installed",
            "Rejected",
            "Replaced",
        ]

        # the charger's composite schedule next to what the CSMS believes
        r = (
            await client.post(
                "/commands/get_composite_schedule/OP004",
                json={"connector_id": 1, "duration": 3600, "charging_rate_unit": "W"},
            )
        ).json()
        assert "chargingSchedule" in r, r
        charger_limit = r["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
        assert charger_limit == r["csms_view"]["limit"] == 6000.0
        assert {p["charging_profile_id"] for p in r["csms_view"]["installed_profiles"]} == {1, 3}

        # clear by criteria: purpose on connector 1
        r = (
            await client.post(
                "/commands/clear_charging_profile/OP004",
                json={"connector_id": 1, "charging_profile_purpose": "TxDefaultProfile"},
            )
        ).json()
        assert r["status"] == "Accepted"
        assert [p["charging_profile_id"] for p in r["cleared"]] == [3]
        assert (await peer.wait_for("ClearChargingProfile"))["removed"] == 1
        # nothing matches: Unknown, nothing changes
        r = (await client.post("/commands/clear_charging_profile/OP004", json={"id": 99})).json()
        assert (r["status"], r["cleared"]) == ("Unknown", [])
        view = await installed()
        assert [p["charging_profile_id"] for p in view["charging_profiles"]] == [1]

        # a TxProfile given with RemoteStartTransaction lives as long as its transaction
        r = await client.post(
            "/commands/remote_start/OP004",
            json={
                "id_tag": "DRIVER2",
                "connector_id": 1,
                "charging_profile": profile(5, "TxProfile", 4000.0, stack=3),
            },
        )
        assert r.json()["charging_profile"]["source"] == "RemoteStartTransaction"
        tx = (await peer.wait_for("StartTransaction.conf"))["transaction_id"]

        async def bound():
            profiles = (await installed())["charging_profiles"]
            return [p for p in profiles if p["charging_profile_id"] == 5 and p["transaction_id"]]

        assert (await wait_for(bound))[0]["transaction_id"] == tx
        assert (await installed())["limits"][1]["limit"] == 4000.0
        r = await client.post("/commands/remote_stop/OP004", json={"transaction_id": tx})
        assert r.json()["status"] == "Accepted"
        await peer.wait_for("StopTransaction")

        async def ended():
            r = await client.get("/chargers/OP004/charging_profiles", params={"status": "Ended"})
            return r.json()["charging_profiles"]

        assert [p["charging_profile_id"] for p in await wait_for(ended)] == [5]
        # clear everything (no criteria): the charger-wide maximum goes too
        r = (await client.post("/commands/clear_charging_profile/OP004", json={})).json()
        assert [p["charging_profile_id"] for p in r["cleared"]] == [1]
        assert (await installed())["charging_profiles"] == []
        nursery.cancel_scope.cancel()


async def test_every_operation_carries_its_full_parameter_set(db):
    """Firmware Management, Remote Trigger and Core with every optional field."""
    async with (
        running_backend(db) as backend,
        api(backend) as client,
        trio.open_nursery() as nursery,
    ):
        peer = await peer_session(nursery, backend, "OP005")
        r = await client.post(
            "/commands/get_diagnostics/OP005",
            json={
                "location": "ftp://diag.example/upload",
                "retries": 2,
                "retry_interval": 30,
                "start_time": "2024-05-01T00:00:00Z",
                "stop_time": "2024-05-02T00:00:00",
            },
        )
        assert r.json()["fileName"] == "diag.log"
        got = await peer.wait_for("GetDiagnostics")
        assert (got["retries"], got["retry_interval"]) == (2, 30)
        assert got["stop_time"].startswith("2024-05-02T00:00:00")
        r = await client.post(
            "/commands/update_firmware/OP005",
            json={
                "location": "https://fw.example/v2.bin",
                "retrieve_date": "2024-06-01T00:00:00Z",
                "retries": 3,
                "retry_interval": 60,
            },
        )
        assert r.status_code == 200, r.text
        got = await peer.wait_for("UpdateFirmware")
        assert (got["retries"], got["retry_interval"]) == (3, 60)
        # and the progress the charger reports is read back
        await peer.wait_for("reported", kind="diagnostics")
        await peer.wait_for("reported", kind="firmware")
        firmware = (await client.get("/chargers/OP005/firmware")).json()
        assert (firmware["firmware_status"], firmware["diagnostics_status"]) == (
            "Installed",
            "Uploaded",
        )
        update = firmware["update_firmware"]
        assert update["location"] == "https://fw.example/v2.bin"
        assert update["parameters"]["retrieveDate"].startswith("2024-06-01T00:00:00")
        assert [h["status"] for h in update["history"]] == [
            "Requested",
            "Downloading",
            "Downloaded",
            "Installing",
            "Installed",
        ]
        assert update["done"] is True
        assert firmware["get_diagnostics"]["answer"] == {"fileName": "diag.log"}
        assert firmware["get_diagnostics"]["status"] == "Uploaded"
        r = await client.post(
            "/commands/get_configuration/OP005", json={"keys": ["HeartbeatInterval", "Nope"]}
        )
        assert r.json()["unknownKey"] == ["Nope"]
        r = await client.post(
            "/commands/trigger_message/OP005",
            json={"requested_message": "Heartbeat", "connector_id": 1},
        )
        assert r.json()["status"] == "Accepted"
        r = await client.post(
            "/commands/data_transfer/OP005",
            json={"vendor_id": "com.example", "message_id": "ping", "data": json.dumps([1])},
        )
        assert (r.json()["status"], r.json()["data"]) == ("Accepted", "pong")
        r = await client.post(
            "/commands/change_availability/OP005", json={"type": "Inoperative", "connector_id": 4}
        )
        assert r.json()["status"] == "Accepted"
        for body, field in [
            ({"keys": ["x" * 51]}, "keys.0"),
            ({"location": "u", "retries": -1}, "retries"),
        ]:
            name = "get_configuration" if "keys" in body else "get_diagnostics"
            r = await client.post(f"/commands/{name}/OP005", json=body)
            assert r.status_code == 422
            assert r.json()["details"][0]["field"] == field
        nursery.cancel_scope.cancel()


async def test_agent_tools_drive_the_operator_surface(db):
    """The MCP tools (called as an agent would, through the REST API) against the
    ocpp package's charger."""
    for name in (
        "send_local_list",
        "get_local_list",
        "reserve_now",
        "cancel_reservation",
        "list_reservations",
        "set_charging_profile",
        "clear_charging_profile",
        "get_charging_profiles",
        "get_composite_schedule",
    ):
        jsonschema.Draft7Validator.check_schema(TOOLS_BY_NAME[name].input_schema())
    async with (
        running_backend(db) as backend,
        api(backend) as client,
        trio.open_nursery() as nursery,
    ):
        await peer_session(nursery, backend, "OP006")
        r = await call_tool(
            client,
            "reserve_now",
            {
                "cp_id": "OP006",
                "connector_id": 1,
                "expiry_date": "2099-01-01T00:00:00Z",
                "id_tag": "AGENT1",
            },
        )
        assert r["ok"] and r["result"]["reservation"]["status"] == "Reserved"
        r = await call_tool(client, "list_reservations", {"cp_id": "OP006", "status": "Reserved"})
        assert len(r["result"]["reservations"]) == 1
        rid = r["result"]["reservations"][0]["reservation_id"]
        r = await call_tool(client, "cancel_reservation", {"cp_id": "OP006", "reservation_id": rid})
        assert r["result"]["reservation"]["status"] == "Cancelled"
        r = await call_tool(
            client,
            "send_local_list",
            {
                "cp_id": "OP006",
                "update_type": "Full",
                "list_version": 3,
                "local_authorization_list": [entry("AGENT1")],
            },
        )
        assert r["result"]["status"] == "Accepted"
        r = await call_tool(client, "get_local_list", {"cp_id": "OP006"})
        assert r["result"]["list_version"] == 3
        r = await call_tool(
            client,
            "set_charging_profile",
            {
                "cp_id": "OP006",
                "connector_id": 1,
                "cs_charging_profiles": profile(8, "TxDefaultProfile", 3000.0),
            },
        )
        assert r["result"]["charging_profile"]["status"] == "Installed"
        r = await call_tool(client, "get_charging_profiles", {"cp_id": "OP006"})
        assert r["result"]["limits"][1]["limit"] == 3000.0
        r = await call_tool(
            client, "get_composite_schedule", {"cp_id": "OP006", "connector_id": 1, "duration": 60}
        )
        assert r["result"]["csms_view"]["limit"] == 3000.0
        r = await call_tool(client, "clear_charging_profile", {"cp_id": "OP006", "id": 8})
        assert [p["charging_profile_id"] for p in r["result"]["cleared"]] == [8]
        nursery.cancel_scope.cancel()


async def test_a_local_list_bigger_than_one_frame_is_refused_with_what_fits(tmp_path):
    """102,000 tags made one 5.6 MB SendLocalList frame. A list that does not
    fit in one frame (here 4 KiB) is refused before anything is sent or recorded (413,
    naming how many entries a Differential update may carry); smaller updates still go."""
    from tests.support import charger_running

    async with (
        running_backend(str(tmp_path / "v4e.db"), max_message_size=4096) as backend,
        api(backend) as client,
        charger_running(backend),
    ):
        for i in range(120):
            r = await client.post("/id_tags", json={"id_tag": f"CARD{i:04}"})
            assert r.status_code == 201, r.text
        before = (await client.get("/chargers/EVSE001/local_list")).json()
        r = await client.post("/commands/send_local_list/EVSE001", json={"update_type": "Full"})
        assert r.status_code == 413, r.text
        body = r.json()
        assert body["error"] == "message_too_large" and "Differential" in body["hint"]
        per = int(body["hint"].split("at most ")[1].split()[0])
        assert 1 <= per < 120
        assert (await client.get("/chargers/EVSE001/local_list")).json() == before
        messages = (await client.get("/chargers/EVSE001/messages")).json()["messages"]
        assert not [m for m in messages if m["action"] == "SendLocalList"]
        chunk = [entry(f"CARD{i:04}") for i in range(per)]
        r = await client.post(
            "/commands/send_local_list/EVSE001",
            json={"update_type": "Differential", "local_authorization_list": chunk},
        )
        assert r.status_code == 200, r.text
