"""The CSMS and its REST API end to end: real Hypercorn, real websockets, real SQLite."""

from __future__ import annotations

import json

import pytest
import trio
from ocpp.v16 import call, datatypes, enums
from trio_websocket import open_websocket_url

from libv4e import open_ocpp
from tests.support import NOW, api, boot, plain_charger, running_backend, ws_url


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "v4e.db")


async def test_boot_status_heartbeat_visible_in_status(db):
    async with (
        running_backend(db, heartbeat_interval=45) as backend,
        plain_charger(backend) as (conn, _),
    ):
        hb = await conn.call(call.Heartbeat(), timeout=5)
        assert hb.current_time.endswith("Z")
        async with api(backend) as client:
            status = (await client.get("/status")).json()
    assert status["total_connected"] == 1
    cp = status["charge_points"]["EVSE001"]
    assert cp["connection"] == "online"
    assert cp["heartbeat_interval"] == 45
    assert cp["last_heartbeat"] is not None
    assert cp["boot"]["vendor"] == "Vendor-Y"
    assert cp["boot"]["model"] == "Model-X"
    assert cp["boot"]["firmware_version"] == "1.2.3"
    assert [c["status"] for c in cp["connectors"]] == ["Available", "Available"]


async def test_overview_lists_connected_chargers_and_commands(db):
    async with running_backend(db) as backend, plain_charger(backend), api(backend) as client:
        body = (await client.get("/")).json()
    assert body["connected_charge_points"] == ["EVSE001"]
    assert "POST /commands/reset/{cp_id}" in body["commands"]
    assert "POST /demo/clear" in body["demo_routes"]


async def test_full_transaction_with_meter_values(db):
    async with running_backend(db) as backend, plain_charger(backend) as (conn, _):
        start = await conn.call(call.StartTransaction(1, "USER123", 1000, NOW), timeout=5)
        assert start.id_tag_info.status == enums.AuthorizationStatus.accepted
        tx_id = start.transaction_id
        mv = [
            datatypes.MeterValue(
                "2024-05-01T12:01:00Z",
                [
                    datatypes.SampledValue(
                        "1500", measurand="Energy.Active.Import.Register", unit="Wh"
                    ),
                    datatypes.SampledValue("7.4", measurand="Power.Active.Import", unit="kW"),
                ],
            )
        ]
        await conn.call(call.MeterValues(1, mv, tx_id), timeout=5)
        async with api(backend) as client:
            live = (await client.get("/chargers/EVSE001")).json()
            assert live["connectors"][1]["transaction_id"] == tx_id
            assert live["connectors"][1]["meter"]["power_w"] == 7400
            await conn.call(
                call.StopTransaction(3000, "2024-05-01T13:00:00Z", tx_id, reason="EVDisconnected"),
                timeout=5,
            )
            txs = (await client.get("/transactions", params={"cp_id": "EVSE001"})).json()[
                "transactions"
            ]
            detail = (await client.get(f"/transactions/{tx_id}")).json()
    assert txs[0]["transaction_id"] == tx_id
    assert txs[0]["active"] is False
    assert txs[0]["energy_wh"] == 2000
    assert txs[0]["stop_reason"] == "EVDisconnected"
    assert detail["meter_values"][0]["sampledValue"][0]["value"] == "1500"


async def test_transaction_ids_increase_and_survive_restart(db):
    async with running_backend(db) as backend, plain_charger(backend) as (conn, _):
        first = await conn.call(call.StartTransaction(1, "A", 0, NOW), timeout=5)
        await conn.call(call.StopTransaction(10, NOW, first.transaction_id), timeout=5)
    async with running_backend(db) as backend, plain_charger(backend) as (conn, _):
        second = await conn.call(
            call.StartTransaction(1, "A", 10, "2024-05-01T12:30:00Z"), timeout=5
        )
        async with api(backend) as client:
            txs = (await client.get("/transactions")).json()["transactions"]
    assert second.transaction_id > first.transaction_id
    assert [t["transaction_id"] for t in txs] == [second.transaction_id, first.transaction_id]


async def test_retried_start_transaction_gets_the_same_id(db):
    async with running_backend(db) as backend, plain_charger(backend) as (conn, _):
        a = await conn.call(call.StartTransaction(1, "A", 5, NOW), timeout=5)
        b = await conn.call(call.StartTransaction(1, "A", 5, NOW), timeout=5)
    assert a.transaction_id == b.transaction_id


async def test_authorization_list_answers_and_unknown_tag_policy(db):
    async with (
        running_backend(db, unknown_tags="reject") as backend,
        plain_charger(backend) as (conn, _),
    ):
        async with api(backend) as client:
            r = await client.post("/id_tags", json={"id_tag": "GOOD", "status": "Accepted"})
            assert r.status_code == 201
            await client.post("/id_tags", json={"id_tag": "BAD", "status": "Blocked"})
            await client.post(
                "/id_tags", json={"id_tag": "OLD", "expiry_date": "2001-01-01T00:00:00Z"}
            )
            tags = (await client.get("/id_tags")).json()
        answers = {
            t: (await conn.call(call.Authorize(t), timeout=5)).id_tag_info.status
            for t in ("GOOD", "BAD", "OLD", "NOBODY")
        }
    assert answers == {"GOOD": "Accepted", "BAD": "Blocked", "OLD": "Expired", "NOBODY": "Invalid"}
    assert tags["list_version"] == 3


async def test_seed_commands_reach_the_charger(db):
    async with running_backend(db) as backend, plain_charger(backend) as (_, charger):
        async with api(backend) as client:
            calls = [
                ("reset", {"type": "Hard"}, call.Reset("Hard")),
                (
                    "change_availability",
                    {"type": "Inoperative", "connector_id": 1},
                    call.ChangeAvailability(1, "Inoperative"),
                ),
                (
                    "change_availability",
                    {"type": "Operative"},
                    call.ChangeAvailability(0, "Operative"),
                ),
                (
                    "change_configuration",
                    {"key": "HeartbeatInterval", "value": "60"},
                    call.ChangeConfiguration("HeartbeatInterval", "60"),
                ),
                (
                    "remote_start",
                    {"id_tag": "USER123", "connector_id": 1},
                    call.RemoteStartTransaction("USER123", 1),
                ),
                ("remote_start", {"id_tag": "USER123"}, call.RemoteStartTransaction("USER123")),
                ("remote_stop", {"transaction_id": 1}, call.RemoteStopTransaction(1)),
                ("unlock_connector", {"connector_id": 1}, call.UnlockConnector(1)),
            ]
            for name, body, expected in calls:
                r = await client.post(f"/commands/{name}/EVSE001", json=body)
                assert r.status_code == 200, r.text
                assert r.json()["status"] in ("Accepted", "Unlocked")
                assert r.json()["cp_id"] == "EVSE001"
                assert charger.received[-1] == expected
            r = await client.post(
                "/commands/send_local_list/EVSE001",
                json={"id_tag": "NEWCARD123", "status": "Accepted"},
            )
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "Accepted"
            pushed = charger.received[-1]
            assert pushed.update_type == "Differential"
            assert pushed.list_version == r.json()["list_version"]
            assert pushed.local_authorization_list[0].id_tag == "NEWCARD123"
            assert (await client.get("/id_tags")).json()["id_tags"][0]["id_tag"] == "NEWCARD123"


async def test_message_log_is_paginated_newest_first(db):
    async with running_backend(db) as backend, plain_charger(backend) as (conn, _):
        for _ in range(3):
            await conn.call(call.Heartbeat(), timeout=5)
        async with api(backend) as client:
            page = (await client.get("/chargers/EVSE001/messages", params={"limit": 2})).json()
            beats = (
                await client.get(
                    "/chargers/EVSE001/messages", params={"action": "Heartbeat", "limit": 100}
                )
            ).json()
    assert len(page["messages"]) == 2
    assert page["messages"][0]["id"] > page["messages"][1]["id"]
    assert len(beats["messages"]) == 6  # three calls in, three results out
    assert {m["direction"] for m in beats["messages"]} == {"in", "out"}


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("/commands/reset/NOPE", {"type": "Hard"}, 404, "unknown_charger"),
        ("/commands/fly/EVSE001", {}, 404, "unknown_command"),
        ("/commands/reset/EVSE001", {"type": "Medium"}, 422, "invalid_body"),
        ("/commands/reset/EVSE001", {}, 422, "invalid_body"),
        ("/commands/remote_stop/EVSE001", {"transaction_id": "one"}, 422, "invalid_body"),
        ("/commands/remote_start/EVSE001", {"id_tag": "X" * 21}, 422, "invalid_body"),
        ("/commands/reset/EVSE001", {"type": "Hard", "extra": 1}, 422, "invalid_body"),
    ],
)
async def test_command_errors_are_json_with_their_status(db, path, body, status, error):
    async with running_backend(db) as backend, plain_charger(backend), api(backend) as client:
        r = await client.post(path, json=body)
    assert r.status_code == status
    assert r.json()["error"] == error
    assert r.json()["message"]
    if error == "invalid_body":
        assert r.json()["details"][0]["field"]


async def test_malformed_json_and_huge_bodies_are_4xx(db):
    async with running_backend(db) as backend, plain_charger(backend), api(backend) as client:
        bad = await client.post(
            "/commands/reset/EVSE001",
            content=b"{nope",
            headers={"content-type": "application/json"},
        )
        huge = await client.post(
            "/commands/reset/EVSE001",
            content=b"x" * 400_000,
            headers={"content-type": "application/json"},
        )
        missing = await client.get("/no/such/route")
    assert (bad.status_code, bad.json()["error"]) == (400, "bad_request")
    assert (huge.status_code, huge.json()["error"]) == (413, "body_too_large")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")


async def test_disconnected_charger_is_404_with_message(db):
    async with running_backend(db) as backend:
        async with plain_charger(backend):
            pass
        async with api(backend) as client:
            r = await client.post("/commands/reset/EVSE001", json={"type": "Soft"})
            status = (await client.get("/status")).json()
    assert (r.status_code, r.json()["error"]) == (404, "charger_not_connected")
    assert status["charge_points"]["EVSE001"]["connection"] == "offline"


async def test_charger_timeout_is_504_and_call_error_is_502(db, autojump_clock):
    autojump_clock.autojump_threshold = 0.01  # no jump while I/O is in flight

    async def slow(payload):
        await trio.sleep(10)  # wall: a peer that never answers (the call times out)

    async def refuse(payload):
        from libv4e import OcppError

        raise OcppError("NotSupported", "no unlocking here")

    async with (
        running_backend(db, call_timeout=0.3) as backend,
        open_ocpp(
            ws_url(backend), "EVSE001", handlers={"Reset": slow, "UnlockConnector": refuse}
        ) as conn,
    ):
        await boot(conn)
        async with api(backend) as client:
            # the charger handles one call at a time (OCPP-J): the error first, as the
            # slow Reset keeps it busy after the CSMS gave up on it
            error = await client.post(
                "/commands/unlock_connector/EVSE001", json={"connector_id": 1}
            )
            timeout = await client.post("/commands/reset/EVSE001", json={"type": "Soft"})
    assert (timeout.status_code, timeout.json()["error"]) == (504, "charger_timeout")
    assert (error.status_code, error.json()["error"]) == (502, "charger_error")
    assert error.json()["ocpp_error_code"] == "NotSupported"


async def test_restart_keeps_chargers_transactions_and_tags(db):
    async with running_backend(db) as backend, plain_charger(backend) as (conn, _):
        tx = await conn.call(call.StartTransaction(1, "KEEP", 100, NOW), timeout=5)
        async with api(backend) as client:
            await client.post("/id_tags", json={"id_tag": "KEEP", "status": "Blocked"})
    async with running_backend(db) as backend, api(backend) as client:
        status = (await client.get("/status")).json()
        txs = (await client.get("/transactions", params={"active": "true"})).json()["transactions"]
        tags = (await client.get("/id_tags")).json()
        log = (await client.get("/chargers/EVSE001/messages")).json()["messages"]
    assert status["charge_points"]["EVSE001"]["boot"]["vendor"] == "Vendor-Y"
    assert status["charge_points"]["EVSE001"]["connection"] == "offline"
    assert [t["transaction_id"] for t in txs] == [tx.transaction_id]
    assert tags["id_tags"][0]["status"] == "Blocked"
    assert tags["list_version"] == 1
    assert any(m["action"] == "StartTransaction" for m in log)


async def test_allow_list_refuses_unknown_ids_at_handshake(db):
    from libv4e import ConnectError

    async with running_backend(db, allowed_ids=frozenset({"EVSE001"})) as backend:
        with pytest.raises(ConnectError) as info:
            async with open_ocpp(ws_url(backend), "INTRUDER"):
                pass
        assert info.value.status == 404
        async with plain_charger(backend):
            pass


async def test_a_raw_json_charger_works_too(db):
    """A charger written elsewhere: plain JSON frames, no libv4e on its side."""
    async with running_backend(db) as backend:
        async with open_websocket_url(ws_url(backend) + "/RAW1", subprotocols=["ocpp1.6"]) as ws:
            await ws.send_message(
                json.dumps(
                    [
                        2,
                        "1",
                        "BootNotification",
                        {"chargePointVendor": "A", "chargePointModel": "B"},
                    ]
                )
            )
            boot_answer = json.loads(await ws.get_message())
            await ws.send_message(
                json.dumps(
                    [
                        2,
                        "2",
                        "StatusNotification",
                        {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
                    ]
                )
            )
            assert json.loads(await ws.get_message()) == [3, "2", {}]
            async with api(backend) as client, trio.open_nursery() as n:
                results = {}

                async def command():
                    results["r"] = await client.post("/commands/reset/RAW1", json={"type": "Soft"})

                n.start_soon(command)
                frame = json.loads(await ws.get_message())
                assert frame[0] == 2 and frame[2] == "Reset" and frame[3] == {"type": "Soft"}
                await ws.send_message(json.dumps([3, frame[1], {"status": "Rejected"}]))
    assert boot_answer[2]["status"] == "Accepted"
    assert results["r"].json()["status"] == "Rejected"


async def test_second_connection_replaces_the_first_only_with_a_password(db):
    from libv4e import ConnectError

    async with running_backend(db) as backend:
        # no password: the live first connection stays, the newcomer is refused (409)
        async with open_ocpp(ws_url(backend), "EVSE001") as first:
            await boot(first)
            with pytest.raises(ConnectError) as info:
                async with open_ocpp(ws_url(backend), "EVSE001"):
                    pass
            assert info.value.status == 409
            await first.call(call.Heartbeat(), timeout=5)
        # with a password the newcomer proved who it is and replaces the first
        password = "a-good-long-password"
        await backend.csms.passwords.set("EVSE001", password)
        auth = ("EVSE001", password)
        async with open_ocpp(ws_url(backend), "EVSE001", basic_auth=auth) as first:
            await boot(first)
            async with open_ocpp(ws_url(backend), "EVSE001", basic_auth=auth) as second:
                await boot(second)
                with trio.fail_after(5):
                    await first.wait_closed()
                async with api(backend) as client:
                    status = (await client.get("/status")).json()
                assert status["total_connected"] == 1
                assert status["charge_points"]["EVSE001"]["connection"] == "online"
                await second.call(call.Heartbeat(), timeout=5)


async def test_openapi_document_describes_the_commands(db):
    async with running_backend(db) as backend, api(backend) as client:
        doc = (await client.get("/openapi.json")).json()
    assert "/commands/reset/{cp_id}" in doc["paths"]
    body = doc["paths"]["/commands/reset/{cp_id}"]["post"]["requestBody"]
    assert "application/json" in body["content"]
