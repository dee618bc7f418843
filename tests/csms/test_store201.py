"""What the CSMS stores of OCPP 2.0.1 beyond the sessions, on SQLite and PostgreSQL (a
throwaway server started by the test session), over real sockets:

- a station's device model (NotifyReport, NotifyEvent, an accepted SetVariables) survives
  a restart of the CSMS: ``GET /chargers/{id}/device_model`` shows it from the store, and a
  station reporting again after the restart adds to it; the per-charger bound holds in the
  store too, even for writers racing each other;
- the IdToken type of a session is in its REST record, from the first event that carries
  an idToken, never changed by later events or resends, read back after a restart; null
  for a 1.6 session;
- a database created by the previous schema (no device-model tables, no
  ``id_token_type`` column) migrates when a store opens it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3

import pytest
import trio
from ocpp.v16 import call as call16
from trio_websocket import open_websocket_url

from libv4e import open_ocpp
from libv4e.csms._devicemodel import ReportedVariable, VariableKey
from libv4e.csms._pgschema import CLUSTER_SCHEMA
from libv4e.csms._pgstore import PostgresStore
from libv4e.csms._registry import Transaction
from libv4e.csms._sqlite import SqliteStore
from libv4e.csms._sqlschema import POSTGRESQL, SQLITE, TABLES, Sql
from tests.support import api, boot, node, raw_call, running_backend, synced, ws_url

STATION = {"model": "M201", "vendorName": "V201"}
BOOT = {"chargingStation": STATION, "reason": "PowerUp"}
NEW_TABLES = ("device_models", "device_variables", "device_events")


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "v4e.db")
    return request.getfixturevalue("pg_url")


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def variable(component: str, name: str, value: str, **more) -> dict:
    attribute = {"type": more.pop("type", "Actual"), "value": value, "mutability": "ReadWrite"}
    return {
        "component": {"name": component, **more},
        "variable": {"name": name},
        "variableAttribute": [attribute],
    }


def report(seq: int, *items: dict) -> dict:
    return {
        "requestId": 1,
        "generatedAt": "2024-05-01T12:00:00Z",
        "seqNo": seq,
        "reportData": list(items),
    }


def event(event_id: int, value: str, *, evse: int = 1) -> dict:
    return {
        "generatedAt": "2024-05-01T12:00:00Z",
        "seqNo": event_id,
        "eventData": [
            {
                "eventId": event_id,
                "timestamp": "2024-05-01T12:00:00Z",
                "trigger": "Delta",
                "actualValue": value,
                "eventNotificationType": "HardWiredNotification",
                "component": {"name": "EVSE", "evse": {"id": evse}},
                "variable": {"name": "AvailabilityState"},
            }
        ],
    }


def values(model: dict) -> dict:
    """(component, evse, variable, attribute) → (value, source) of a REST device model."""
    return {
        (v["component"], v["evse_id"], v["variable"], v["attribute"]): (v["value"], v["source"])
        for v in model["variables"]
    }


async def test_a_device_model_survives_a_restart_and_grows_after_it(database):
    async with running_backend(database) as backend, api(backend) as client:
        async with open_websocket_url(ws_url(backend) + "/DM1", subprotocols=["ocpp2.0.1"]) as ws:
            assert (await raw_call(ws, "b", "BootNotification", BOOT))[2]["status"] == "Accepted"
            first = report(
                0,
                variable("OCPPCommCtrlr", "HeartbeatInterval", "30"),
                variable("OCPPCommCtrlr", "HeartbeatInterval", "10", type="MinSet"),
                variable("EVSE", "Power", "22000", evse={"id": 1}),
                variable("Connector", "ConnectorType", "cType2", evse={"id": 1, "connectorId": 1}),
                variable("SecurityCtrlr", "Identity", "DM1", instance=""),  # '': no instance
            )
            assert (await raw_call(ws, "r0", "NotifyReport", first))[0] == 3
            second = report(1, variable("OCPPCommCtrlr", "HeartbeatInterval", "45"))
            assert (await raw_call(ws, "r1", "NotifyReport", second))[0] == 3
            assert (await raw_call(ws, "e1", "NotifyEvent", event(1, "Faulted")))[0] == 3
        before = (await client.get("/chargers/DM1/device_model")).json()
    assert len(before["variables"]) == 6 and len(before["events"]) == 1

    async with running_backend(database) as backend, api(backend) as client:
        after = (await client.get("/chargers/DM1/device_model")).json()
        assert after == before  # the same record, read from the store
        assert values(after)[("OCPPCommCtrlr", None, "HeartbeatInterval", "Actual")] == (
            "45",
            "NotifyReport",
        )
        assert values(after)[("EVSE", 1, "AvailabilityState", "Actual")] == (
            "Faulted",
            "NotifyEvent",
        )
        connector = next(v for v in after["variables"] if v["component"] == "Connector")
        assert (connector["evse_id"], connector["connector_id"]) == (1, 1)
        identity = next(v for v in after["variables"] if v["component"] == "SecurityCtrlr")
        assert identity["component_instance"] is None
        assert after["events"][0]["actual_value"] == "Faulted"
        # the station reports again: what it says now joins what was stored
        async with open_websocket_url(ws_url(backend) + "/DM1", subprotocols=["ocpp2.0.1"]) as ws:
            assert (await raw_call(ws, "b", "BootNotification", BOOT))[2]["status"] == "Accepted"
            assert (await raw_call(ws, "e2", "NotifyEvent", event(2, "Available")))[0] == 3
            held = backend.csms.registry.device_model("DM1")
            assert held.value("OCPPCommCtrlr", "HeartbeatInterval") == "45"  # loaded
            assert held.value("EVSE", "AvailabilityState", evse_id=1) == "Available"
        grown = (await client.get("/chargers/DM1/device_model")).json()
        assert len(grown["variables"]) == 6
        assert [e["event_id"] for e in grown["events"]] == [1, 2]

    store = SqliteStore(database) if "://" not in database else PostgresStore(database)
    await store.open()
    try:
        stored = await store.device_model("DM1")
    finally:
        await store.close()
    assert stored.value("EVSE", "AvailabilityState", evse_id=1) == "Available"
    assert stored.value("OCPPCommCtrlr", "HeartbeatInterval", "MinSet") == "10"


async def test_the_bound_holds_in_the_store_across_a_restart(database):
    async with running_backend(database) as backend:
        backend.csms.device_models.max_variables = 3
        backend.csms.device_models.max_events = 2
        async with open_websocket_url(ws_url(backend) + "/DM2", subprotocols=["ocpp2.0.1"]) as ws:
            assert (await raw_call(ws, "b", "BootNotification", BOOT))[2]["status"] == "Accepted"
            five = report(0, *(variable("C", f"V{n}", "a") for n in range(5)))
            assert (await raw_call(ws, "r0", "NotifyReport", five))[0] == 3
            again = report(1, variable("C", "V0", "b"), variable("C", "V9", "x"))
            assert (await raw_call(ws, "r1", "NotifyReport", again))[0] == 3
            for n in range(4):
                assert (await raw_call(ws, f"e{n}", "NotifyEvent", event(n, str(n), evse=2)))[
                    0
                ] == 3
        held = backend.csms.registry.device_model("DM2")
        assert (len(held), held.dropped) == (3, 2 + 1 + 4)
    async with running_backend(database) as backend, api(backend) as client:
        model = (await client.get("/chargers/DM2/device_model")).json()
    # the bound of the first life: V0..V2, the events' variable never got a place
    assert sorted(v["variable"] for v in model["variables"]) == ["V0", "V1", "V2"]
    assert values(model)[("C", None, "V0", "Actual")] == ("b", "NotifyReport")
    assert model["dropped"] == 3 + 4
    assert [e["event_id"] for e in model["events"]] == [2, 3]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_factory(request, tmp_path):
    if request.param == "sqlite":
        path = tmp_path / "v4e.db"
        return lambda: SqliteStore(path)
    url = request.getfixturevalue("pg_url")
    return lambda: PostgresStore(url, pool_size=4)


def reported(name: str, value: str, **key) -> ReportedVariable:
    return ReportedVariable(VariableKey("C", name, **key), value)


async def test_racing_writers_of_one_charger_never_pass_the_bound(store_factory):
    stores = [store_factory() for _ in range(3)]
    for s in stores:
        await s.open()
    try:

        async def write(n: int) -> None:
            store = stores[n % len(stores)]
            await store.save_device_model(
                "RACE",
                [reported(f"W{n}-{i}", "v") for i in range(3)],
                max_variables=10,
                max_events=5,
            )

        async with trio.open_nursery() as nursery:
            for n in range(12):
                nursery.start_soon(write, n)
        model = await stores[0].device_model("RACE")
        assert (len(model), model.dropped) == (10, 12 * 3 - 10)
    finally:
        for s in stores:
            await s.close()


async def test_the_device_model_store_keys_events_text_and_deletion(store_factory):
    stores = [store_factory() for _ in range(3)]  # as three nodes (or restarts) see it
    for s in stores:
        await s.open()
    try:
        # one key per (component, instance, EVSE, connector, variable, instance, attribute)
        keyed = [
            reported("K", "1"),
            reported("K", "2", evse_id=1),
            reported("K", "3", evse_id=1, connector_id=1),
            reported("K", "4", component_instance="a"),
            reported("K", "5", variable_instance="b"),
            reported("K", "6", attribute="Target"),
            reported("K", "7"),  # the same key as the first: the last one wins
        ]
        assert await stores[1].save_device_model("KEYS", keyed, max_variables=10, max_events=1) == 0
        model = await stores[2].device_model("KEYS")
        assert len(model) == 6 and model.value("C", "K", evse_id=None) == "7"
        assert model.value("C", "K", evse_id=1, connector_id=1) == "3"
        # a station's text the databases cannot hold as it is (NUL, a lone surrogate)
        odd = [reported("N\x00", "v\ud800", component_instance="i\x00")]
        await stores[1].save_device_model(
            "ODD", odd, [{"tech_info": "t\x00\udc00"}], max_variables=10, max_events=1
        )
        model = await stores[1].device_model("ODD")
        assert len(model) == 1 and model.events[0]["tech_info"].startswith("t")
        assert (await stores[1].save_device_model("ODD", odd, max_variables=1, max_events=1)) == 0
        events = [{"event_id": n} for n in range(4)]
        await stores[0].save_device_model("KEYS", [], events, max_variables=10, max_events=3)
        assert [e["event_id"] for e in (await stores[0].device_model("KEYS")).events] == [1, 2, 3]
        await stores[0].delete_charger("KEYS")  # forgets its device model too
        assert len(await stores[0].device_model("KEYS")) == 0
        assert not (await stores[0].device_model("KEYS")).events
    finally:
        for s in stores:
            await s.close()


async def test_an_accepted_set_variables_is_the_stored_value(database):
    async with running_backend(database) as backend, api(backend) as client:
        async with open_websocket_url(ws_url(backend) + "/DM3", subprotocols=["ocpp2.0.1"]) as ws:
            assert (await raw_call(ws, "b", "BootNotification", BOOT))[2]["status"] == "Accepted"
            items = [
                variable("OCPPCommCtrlr", "HeartbeatInterval", "30"),
                variable("AuthCtrlr", "Enabled", "true"),
            ]
            assert (await raw_call(ws, "r0", "NotifyReport", report(0, *items)))[0] == 3
            body = {
                "variables": [
                    {"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval", "value": "90"},
                    {"component": "AuthCtrlr", "variable": "Enabled", "value": "false"},
                ]
            }
            async with trio.open_nursery() as nursery:
                answers = []

                async def command() -> None:
                    answers.append(await client.post("/commands/set_variables/DM3", json=body))

                nursery.start_soon(command)
                frame = json.loads(await ws.get_message())
                assert frame[:3:2] == [2, "SetVariables"]
                results = [
                    {
                        "attributeStatus": status,
                        "component": d["component"],
                        "variable": d["variable"],
                    }
                    for d, status in zip(
                        frame[3]["setVariableData"], ["Accepted", "Rejected"], strict=True
                    )
                ]
                await ws.send_message(json.dumps([3, frame[1], {"setVariableResult": results}]))
            assert answers[0].status_code == 200, answers[0].text
    async with running_backend(database) as backend, api(backend) as client:
        model = (await client.get("/chargers/DM3/device_model")).json()
    assert values(model)[("OCPPCommCtrlr", None, "HeartbeatInterval", "Actual")] == (
        "90",
        "SetVariables",
    )
    assert values(model)[("AuthCtrlr", None, "Enabled", "Actual")] == ("true", "NotifyReport")
    beat = next(v for v in model["variables"] if v["variable"] == "HeartbeatInterval")
    assert beat["mutability"] == "ReadWrite"  # as reported


def transaction_event(kind: str, seq: int, tid: str, token: dict | None = None) -> dict:
    payload = {
        "eventType": kind,
        "timestamp": now(),
        "triggerReason": "Authorized" if token else "CablePluggedIn",
        "seqNo": seq,
        "transactionInfo": {"transactionId": tid},
        "evse": {"id": 1 if tid == "A" else 2, "connectorId": 1},
    }
    if token is not None:
        payload["idToken"] = token
    return payload


async def test_the_id_token_type_is_kept_with_the_session(database):
    card = {"idToken": "CARD1", "type": "ISO14443"}
    async with running_backend(database) as backend, api(backend) as client:
        async with open_websocket_url(ws_url(backend) + "/TT1", subprotocols=["ocpp2.0.1"]) as ws:
            assert (await raw_call(ws, "b", "BootNotification", BOOT))[2]["status"] == "Accepted"
            started = transaction_event("Started", 0, "A", card)
            assert (await raw_call(ws, "s", "TransactionEvent", started))[0] == 3
            # a resend with another type, a later event with another token: no change
            resent = transaction_event("Started", 0, "A", {"idToken": "X", "type": "Central"})
            assert (await raw_call(ws, "s2", "TransactionEvent", resent))[0] == 3
            other = transaction_event("Updated", 1, "A", {"idToken": "K1", "type": "KeyCode"})
            assert (await raw_call(ws, "u", "TransactionEvent", other))[0] == 3
            # a session whose token comes after the cable: its first token's type
            assert (
                await raw_call(ws, "s3", "TransactionEvent", transaction_event("Started", 0, "B"))
            )[0] == 3
            late = transaction_event("Updated", 1, "B", {"idToken": "", "type": "NoAuthorization"})
            assert (await raw_call(ws, "u2", "TransactionEvent", late))[0] == 3
            mac = transaction_event("Ended", 2, "B", {"idToken": "AA", "type": "MacAddress"})
            assert (await raw_call(ws, "e", "TransactionEvent", mac))[0] == 3
            listed = (await client.get("/chargers/TT1")).json()["active_transactions"]
            assert [(t["charger_transaction_id"], t["id_token_type"]) for t in listed] == [
                ("A", "ISO14443")
            ]
        async with open_ocpp(ws_url(backend), "OLD16") as conn:  # a 1.6 session: null
            await boot(conn)
            await conn.call(call16.StartTransaction(1, "TAG16", 0, now()), timeout=5)
        await backend.csms.flush_log()
    async with running_backend(database) as backend, api(backend) as client:
        rows = (await client.get("/transactions")).json()["transactions"]
        types = {(t["cp_id"], t["charger_transaction_id"]): t["id_token_type"] for t in rows}
        assert types == {
            ("TT1", "A"): "ISO14443",
            ("TT1", "B"): "NoAuthorization",
            ("OLD16", None): None,
        }
        a = next(t for t in rows if t["charger_transaction_id"] == "A")
        detail = (await client.get(f"/transactions/{a['transaction_id']}")).json()
        assert (detail["id_tag"], detail["id_token_type"]) == ("CARD1", "ISO14443")
        # after the restart, the station goes on: an event with another type changes nothing
        async with open_websocket_url(ws_url(backend) + "/TT1", subprotocols=["ocpp2.0.1"]) as ws:
            assert (await raw_call(ws, "b", "BootNotification", BOOT))[2]["status"] == "Accepted"
            local = transaction_event("Updated", 2, "A", {"idToken": "L", "type": "Local"})
            assert (await raw_call(ws, "u3", "TransactionEvent", local))[0] == 3
            ended = transaction_event("Ended", 3, "A", {"idToken": "L", "type": "Local"})
            assert (await raw_call(ws, "e3", "TransactionEvent", ended))[0] == 3
        detail = (await client.get(f"/transactions/{a['transaction_id']}")).json()
        assert (detail["active"], detail["id_token_type"]) == (False, "ISO14443")


def old_tables():
    """The tables as the previous schema created them: no device-model tables, no
    ``id_token_type`` column."""
    return tuple(
        dataclasses.replace(t, added=tuple(c for c in t.added if c[0] != "id_token_type"))
        for t in TABLES
        if t.name not in NEW_TABLES
    )


OLD_ROW = Transaction(
    transaction_id=7,
    cp_id="OLD",
    connector_id=1,
    id_tag="TAG",
    meter_start=0,
    started_at=dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC),
    charger_transaction_id="T7",
)


def old_data() -> str:
    data = dict(json.loads(json.dumps(dataclasses.asdict(OLD_ROW), default=str)))
    data.pop("id_token_type")  # the previous release did not write it
    data["started_at"] = "2024-05-01T12:00:00Z"
    return json.dumps(data)


async def test_a_database_of_the_previous_schema_migrates(database):
    insert = (
        "INSERT INTO transactions (transaction_id, cp_id, active, data, charger_transaction_id) "
        "VALUES (?, ?, ?, ?, ?)"
    )
    if "://" not in database:
        db = sqlite3.connect(database)
        with db:
            q = Sql(db, SQLITE)
            q.create_tables(old_tables())
            q.execute(insert, (7, "OLD", 1, old_data(), "T7"))
        db.close()
        store = SqliteStore(database)
    else:
        import psycopg

        with psycopg.connect(database) as conn:
            q = Sql(conn, POSTGRESQL)
            q.create_tables(old_tables())
            conn.execute(CLUSTER_SCHEMA)
            q.execute(insert, (7, "OLD", True, old_data(), "T7"))
        store = PostgresStore(database)
    await store.open()
    try:
        columns = await store.query(lambda q: q.rows(q.dialect.columns, ("transactions",)))
        assert "id_token_type" in {r[0] for r in columns}
        old = await store.transaction(7)
        assert old is not None and old.id_token_type is None and old.charger_transaction_id == "T7"
        old.id_token_type = "eMAID"
        await store.write_transactions([], [old])
        assert (await store.transaction(7)).id_token_type == "eMAID"
        column = await store.query(
            lambda q: q.value("SELECT id_token_type FROM transactions WHERE transaction_id = 7")
        )
        assert column == "eMAID"
        await store.save_device_model("OLD", [reported("V", "1")], max_variables=5, max_events=5)
        assert (await store.device_model("OLD")).value("C", "V") == "1"
    finally:
        await store.close()


async def test_a_node_that_does_not_hold_the_station_reads_its_device_model_from_the_store(
    pg_url,
):
    def heartbeat(model: dict) -> str:
        return values(model)[("OCPPCommCtrlr", None, "HeartbeatInterval", "Actual")][0]

    async with node(pg_url) as a, node(pg_url) as b, api(a) as on_a, api(b) as on_b:
        async with open_websocket_url(ws_url(a) + "/CL1", subprotocols=["ocpp2.0.1"]) as ws:
            assert (await raw_call(ws, "b", "BootNotification", BOOT))[2]["status"] == "Accepted"
            beat = variable("OCPPCommCtrlr", "HeartbeatInterval", "30")
            assert (await raw_call(ws, "r0", "NotifyReport", report(0, beat)))[0] == 3
            await synced(a, b)  # B knows the charger (its record); the model is read each time
            assert heartbeat((await on_b.get("/chargers/CL1/device_model")).json()) == "30"
            beat = variable("OCPPCommCtrlr", "HeartbeatInterval", "40")
            assert (await raw_call(ws, "r1", "NotifyReport", report(1, beat)))[0] == 3
            assert heartbeat((await on_b.get("/chargers/CL1/device_model")).json()) == "40"
        # the station moves to B and reports there: A, which held it, reads the store
        async with open_websocket_url(ws_url(b) + "/CL1", subprotocols=["ocpp2.0.1"]) as ws:
            assert (await raw_call(ws, "b", "BootNotification", BOOT))[2]["status"] == "Accepted"
            beat = variable("OCPPCommCtrlr", "HeartbeatInterval", "50")
            assert (await raw_call(ws, "r2", "NotifyReport", report(2, beat)))[0] == 3
            assert (await raw_call(ws, "e1", "NotifyEvent", event(1, "Faulted")))[0] == 3
            on_a_model = (await on_a.get("/chargers/CL1/device_model")).json()
            assert heartbeat(on_a_model) == "50" and len(on_a_model["events"]) == 1
            assert a.csms.registry.held_device_model("CL1") is not None  # stale, not shown
            assert b.csms.registry.device_model("CL1").value("EVSE", "AvailabilityState") == (
                "Faulted"
            )
