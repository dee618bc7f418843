"""Several CSMS nodes on one PostgreSQL database (a throwaway server started by the test
session): presence, routing of REST commands to the node holding the charger, hand-over
of a charger (and its transaction) to another node, ids unique across nodes."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import trio
from ocpp.v16 import call, call_result, datatypes, enums

from libv4e import ConnectError, open_ocpp
from libv4e._errors import ErrorCode, OcppError
from libv4e.csms._central import CsmsConfig
from tests.support import (
    NOW,
    PlainCharger,
    accepting_set_variables,
    api,
    boot,
    holders,
    node,
    synced,
    wait_for,
    ws_url,
)


async def test_reset_sent_to_node_b_reaches_the_charger_on_node_a(pg_url):
    async with node(pg_url) as a, node(pg_url) as b:
        charger = PlainCharger()
        async with open_ocpp(ws_url(a), "CP-A", handlers=charger.handlers()) as conn:
            await boot(conn)
            assert holders(pg_url)["CP-A"] == (a.node.node_id, True)
            async with api(b) as client:
                r = await client.post("/commands/reset/CP-A", json={"type": "Soft"})
                assert r.status_code == 200, r.text
                assert r.json()["status"] == "Accepted"
                assert charger.received == [call.Reset("Soft")]
                # the fleet view of B shows the charger A holds, connected and booted
                await synced(a, b)
                r = await client.get("/chargers/CP-A")
                assert r.status_code == 200
                assert r.json()["connected"] is True
                assert r.json()["boot"]["vendor"] == "Vendor-Y"
                assert r.json()["online"] is True
                assert (await client.get("/")).json()["connected_charge_points"] == ["CP-A"]
                status = (await client.get("/status")).json()
                assert status["total_connected"] == 1
                assert status["total_online"] == 1
                # a local list pushed through B lands on the charger on A
                r = await client.post(
                    "/commands/send_local_list/CP-A", json={"id_tag": "TAG1", "status": "Accepted"}
                )
                assert r.status_code == 200, r.text
                assert isinstance(charger.received[-1], call.SendLocalList)
                # a diagnosis from B does not call a charger held by A offline
                r = await client.get("/chargers/CP-A/diagnosis", params={"probe": "false"})
                assert r.status_code == 200, r.text
                assert "offline_charger" not in [f["code"] for f in r.json()["findings"]]
            # and A's own API still answers for its charger
            async with api(a) as client:
                r = await client.post("/commands/reset/CP-A", json={"type": "Hard"})
                assert r.status_code == 200, r.text
                assert charger.received[-1] == call.Reset("Hard")
        # disconnected: B answers 404 charger_not_connected, like a single node
        await synced(a, b)
        async with api(b) as client:
            r = await client.post("/commands/reset/CP-A", json={"type": "Soft"})
            assert r.status_code == 404
            assert r.json()["error"] == "charger_not_connected"
            r = await client.post("/commands/reset/NOBODY", json={"type": "Soft"})
            assert r.status_code == 404
            assert r.json()["error"] == "unknown_charger"

        async def released():  # A writes the presence row once it has seen the close
            return holders(pg_url)["CP-A"][1] is False

        await wait_for(released)


async def test_routed_errors_come_back_as_the_charger_gave_them(pg_url):
    async def refuse(payload):
        raise OcppError(ErrorCode.NOT_SUPPORTED, "no resets here", {"why": "test"})

    async def silent(payload):
        await trio.sleep_forever()

    async with node(pg_url) as a, node(pg_url, reply_grace=2) as b:
        async with open_ocpp(
            ws_url(a), "CP-E", handlers={"Reset": refuse, "UnlockConnector": silent}
        ) as conn:
            await boot(conn)
            async with api(b) as client:
                r = await client.post("/commands/reset/CP-E", json={"type": "Soft"})
                assert r.status_code == 502
                assert r.json()["error"] == "charger_error"
                assert r.json()["ocpp_error_code"] == "NotSupported"
                assert r.json()["ocpp_error_details"] == {"why": "test"}
                b.csms.config = CsmsConfig(call_timeout=0.5)
                r = await client.post("/commands/unlock_connector/CP-E", json={"connector_id": 1})
                assert r.status_code == 504, r.text
                assert r.json()["error"] == "charger_timeout"


async def test_malformed_cluster_messages_are_ignored(pg_url):
    charger = PlainCharger()
    async with node(pg_url) as a, node(pg_url) as b:
        async with open_ocpp(ws_url(a), "CP-G", handlers=charger.handlers()) as conn:
            await boot(conn)
            with psycopg.connect(pg_url, autocommit=True) as db:
                for junk in (
                    "not json",
                    "[]",
                    '{"kind": "call"}',
                    '{"kind": "call", "id": 1, "from": [], "cp_id": "CP-G", "action": "Reset"}',
                    '{"kind": "evict", "cp_id": "CP-G", "claim": "x"}',
                    '{"kind": "mailbox", "id": "nope"}',
                    '{"kind": "reply", "id": "unknown"}',
                    '{"kind": "call", "id": "i", "from": "nobody", "cp_id": "CP-G", '
                    '"action": "NoSuchAction", "payload": {}}',
                ):
                    db.execute("SELECT pg_notify(%s, %s)", (a.node.state.channel, junk))
            await trio.sleep(0.3)  # wall: PostgreSQL's notifications, from another process
            result = await b.csms.send("CP-G", call.Reset("Soft"), timeout=5)
            assert result == call_result.Reset("Accepted")
            assert charger.received == [call.Reset("Soft")]


async def test_large_commands_go_through_the_mailbox(pg_url):
    charger = PlainCharger()
    async with node(pg_url) as a, node(pg_url) as b:
        async with open_ocpp(ws_url(a), "CP-M", handlers=charger.handlers()) as conn:
            await boot(conn)
            entries = [
                datatypes.AuthorizationData(f"TAG{i:05d}", datatypes.IdTagInfo("Accepted"))
                for i in range(300)
            ]  # about 16 kB: beyond NOTIFY's 8000 bytes
            command = call.SendLocalList(7, "Full", entries)
            result = await b.csms.send("CP-M", command, timeout=5)
            assert result == call_result.SendLocalList("Accepted")
            assert len(charger.received) == 1
            assert len(charger.received[0].local_authorization_list) == 300
        with psycopg.connect(pg_url) as db:
            assert db.execute("SELECT count(*) FROM mailbox").fetchone() == (0,)


async def test_a_second_connection_on_another_node_follows_the_identity_policy(pg_url):
    async with node(pg_url) as a, node(pg_url) as b:
        async with open_ocpp(ws_url(a), "CP-T") as first:
            await boot(first)
            # no password: the first connection answers pings, so the newcomer is refused
            with pytest.raises(ConnectError) as refused:
                async with open_ocpp(ws_url(b), "CP-T"):
                    pass
            assert refused.value.status == 409
            assert not first.closed
            assert holders(pg_url)["CP-T"] == (a.node.node_id, True)
        # with a password the newcomer proved who it is: it replaces the first
        password = "a-long-enough-password-1"
        await a.csms.passwords.set("CP-S", password)
        await synced(a, b)
        charger = PlainCharger()
        async with open_ocpp(ws_url(a), "CP-S", basic_auth=("CP-S", password)) as first:
            await boot(first)
            async with open_ocpp(
                ws_url(b), "CP-S", handlers=charger.handlers(), basic_auth=("CP-S", password)
            ) as second:
                await boot(second)
                with trio.fail_after(5):
                    await first.wait_closed()  # the older connection is closed on node A
                assert holders(pg_url)["CP-S"] == (b.node.node_id, True)
                await synced(a, b)
                assert a.csms.connection("CP-S") is None
                assert a.csms.registry.get("CP-S").connected  # held by B, seen from A
                result = await a.csms.send("CP-S", call.Reset("Soft"), timeout=5)
                assert result == call_result.Reset("Accepted")
                assert charger.received == [call.Reset("Soft")]


async def test_a_node_whose_lease_ran_out_claims_its_chargers_again(pg_url):
    async with node(pg_url) as a, node(pg_url) as b:
        async with open_ocpp(ws_url(a), "CP-L") as conn:
            await boot(conn)
            with psycopg.connect(pg_url) as db:  # as if A had been paused past its lease
                db.execute(
                    "UPDATE nodes SET lease_until = now() - interval '1 second' WHERE node_id = %s",
                    (a.node.node_id,),
                )
            await b.node.refresh_lease()  # any live node expires A's chargers
            assert holders(pg_url)["CP-L"] == (a.node.node_id, False)
            await a.node.refresh_lease()  # A is back: it claims what it still holds
            assert holders(pg_url)["CP-L"] == (a.node.node_id, True)
            await synced(a, b)
            assert b.node.holder("CP-L") == a.node.node_id


async def test_reservations_made_on_any_node_are_one_book_with_unique_ids(pg_url):
    reserved: list[Any] = []

    async def reserve(payload):
        reserved.append(payload)
        return call_result.ReserveNow("Accepted")

    async with node(pg_url) as a, node(pg_url) as b:
        async with open_ocpp(ws_url(a), "CP-R", handlers={"ReserveNow": reserve}) as conn:
            await boot(conn, connectors=2)
            await synced(a, b)
            body = {"expiry_date": "2099-01-01T00:00:00Z", "id_tag": "TAG"}
            async with api(b) as client_b, api(a) as client_a:
                r = await client_b.post(
                    "/commands/reserve_now/CP-R", json={**body, "connector_id": 1}
                )  # B → A → the charger, recorded by B
                assert r.status_code == 200, r.text
                first = r.json()["reservation"]["reservation_id"]
                await synced(a, b)
                r = await client_a.post(
                    "/commands/reserve_now/CP-R", json={**body, "connector_id": 2}
                )
                assert r.status_code == 200, r.text
                second = r.json()["reservation"]["reservation_id"]
                assert second != first  # A continued after the id B used
                assert [p.reservation_id for p in reserved] == [first, second]
                await synced(a, b)
                for client in (client_a, client_b):  # either node lists both
                    r = await client.get("/reservations", params={"cp_id": "CP-R"})
                    listed = {x["reservation_id"]: x["status"] for x in r.json()["reservations"]}
                    assert listed == {first: "Reserved", second: "Reserved"}
                assert a.csms.reservations.get(first).status == "Reserved"


async def test_transaction_moves_with_its_charger_and_ids_never_repeat(pg_url):
    async with node(pg_url) as a, node(pg_url) as b:
        async with open_ocpp(ws_url(a), "CP-X") as conn:
            await boot(conn)
            started = await conn.call(call.StartTransaction(1, "TAG", 1000, NOW), timeout=5)
        tx_id = started.transaction_id
        async with open_ocpp(ws_url(b), "CP-X") as conn:
            await boot(conn)
            await conn.call(
                call.MeterValues(
                    1,
                    [datatypes.MeterValue(NOW, [datatypes.SampledValue("1500")])],
                    transaction_id=tx_id,
                ),
                timeout=5,
            )
            await conn.call(
                call.StopTransaction(2000, NOW, tx_id, reason=enums.Reason.local), timeout=5
            )
            again = await conn.call(call.StartTransaction(1, "TAG", 2000, NOW), timeout=5)
        assert again.transaction_id != tx_id
        async with api(a) as client:
            await synced(a, b)
            r = await client.get(f"/transactions/{tx_id}")
            assert r.status_code == 200
            data = r.json()
            assert data["active"] is False
            assert data["meter_stop"] == 2000
            assert len(data["meter_values"]) == 1
            r = await client.get("/transactions", params={"cp_id": "CP-X"})
            assert sorted(t["transaction_id"] for t in r.json()["transactions"]) == sorted(
                [tx_id, again.transaction_id]
            )


@pytest.mark.slow
async def test_a_thousand_concurrent_start_transactions_over_two_nodes_get_distinct_ids(pg_url):
    count = 1000
    ids: list[int] = []
    async with node(pg_url) as a, node(pg_url) as b:

        async def charger(i: int, ready: trio.Event, go: trio.Event) -> None:
            target = (a, b)[i % 2]
            async with open_ocpp(ws_url(target), f"CP{i:04d}", connect_timeout=60) as conn:
                await conn.call(call.BootNotification("M", "V"), timeout=60)  # then stored
                ready.set()
                await go.wait()
                result = await conn.call(call.StartTransaction(1, "TAG", i, NOW), timeout=60)
                ids.append(result.transaction_id)

        go = trio.Event()
        readies = [trio.Event() for _ in range(count)]
        async with trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(charger, i, readies[i], go)
            for ready in readies:
                await ready.wait()
            go.set()
    assert len(ids) == count
    assert len(set(ids)) == count
    with psycopg.connect(pg_url) as db:
        (stored,) = db.execute("SELECT count(DISTINCT transaction_id) FROM transactions").fetchone()
    assert stored == count


async def test_security_records_are_shared_by_the_nodes(pg_url):
    """A profile set through one node is enforced by the other (no downgrade by picking a
    node); security events received by one node are listed by the other."""
    async with node(pg_url) as a, node(pg_url) as b:
        async with api(a) as client_a, api(b) as client_b:
            async with open_ocpp(ws_url(b), "CP-S") as conn:
                await boot(conn)
                await conn.call(
                    call.SecurityEventNotification(
                        type="TamperDetectionActivated", timestamp=NOW, tech_info=None
                    ),
                    timeout=5,
                )
            r = await client_a.put("/chargers/CP-S/security_profile", json={"profile": 2})
            assert r.status_code == 200, r.text
            await synced(a, b)
            with pytest.raises(ConnectError) as info:  # plain ws:// on the other node
                async with open_ocpp(ws_url(b), "CP-S", connect_timeout=3):
                    pass
            assert info.value.status == 403
            events = (await client_a.get("/chargers/CP-S/security_events")).json()["events"]
            assert [(e["type"], e["critical"]) for e in events] == [
                ("TamperDetectionActivated", True)
            ]
            assert (await client_b.get("/chargers/CP-S/security")).json()["profile"] == 2


async def test_commands_to_a_2_0_1_station_held_by_another_node_are_translated_there(pg_url):
    """A 1.6 command asked on node B for a 2.0.1 station on node A goes there and is sent
    as its 2.0.1 call (Reset Hard → Reset Immediate), a 2.0.1-native one as it is, and
    each answer comes back as asked; a 2.0.1-native command for a 1.6 charger on A is
    the same 409 as on one node; an accepted SetVariables lands in the device model."""
    from ocpp.v201 import call as call201
    from ocpp.v201 import call_result as result201
    from ocpp.v201 import datatypes as data201

    received: list[Any] = []

    async def reset(msg):
        received.append(msg)
        return result201.Reset(status="Accepted")

    set_variables = accepting_set_variables(received)

    async with node(pg_url) as a, node(pg_url) as b:
        handlers = {"Reset": reset, "SetVariables": set_variables}
        async with (
            open_ocpp(ws_url(a), "CS-201", version="2.0.1", handlers=handlers) as conn,
            open_ocpp(ws_url(a), "CP-16", handlers=PlainCharger().handlers()) as old,
        ):
            boot201 = call201.BootNotification(
                charging_station=data201.ChargingStationType(model="M", vendor_name="V"),
                reason="PowerUp",
            )
            assert str((await conn.call(boot201, timeout=5)).status) == "Accepted"
            await boot(old)
            async with api(b) as client:
                r = await client.post("/commands/reset/CS-201", json={"type": "Hard"})
                assert r.status_code == 200, r.text
                assert r.json()["status"] == "Accepted"
                assert received[-1] == call201.Reset(type="Immediate")
                body = {
                    "variables": [
                        {
                            "component": "OCPPCommCtrlr",
                            "variable": "HeartbeatInterval",
                            "value": "90",
                        }
                    ]
                }
                r = await client.post("/commands/set_variables/CS-201", json=body)
                assert r.status_code == 200, r.text
                assert r.json()["setVariableResult"][0]["attributeStatus"] == "Accepted"
                await synced(a, b)  # B knows the station A holds, and what it speaks
                state = (await client.get("/chargers/CS-201")).json()
                assert state["ocpp_version"] == "2.0.1", state
                r = await client.get("/chargers/CS-201/device_model")
                assert r.status_code == 200, r.text
                model = r.json()
                values = {(v["component"], v["variable"]): v["value"] for v in model["variables"]}
                assert values[("OCPPCommCtrlr", "HeartbeatInterval")] == "90", model
                r = await client.post("/commands/set_variables/CP-16", json=body)
                assert r.status_code == 409 and r.json()["error"] == "unsupported_for_version"
                assert "1.6" in r.json()["message"]
                r = await client.post(
                    "/commands/change_configuration/CS-201", json={"key": "NoSuchKey", "value": "1"}
                )
                assert r.status_code == 409 and "NoSuchKey" in r.json()["message"], r.text
