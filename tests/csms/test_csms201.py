"""The CSMS answering an OCPP 2.0.1 charger's non-transaction calls, over a real socket:
what it records (registry, REST) and that every answer is valid against the `ocpp`
package's 2.0.1 schemas, checked here with jsonschema directly (not through our own
validation layer)."""

from __future__ import annotations

import datetime as dt
import json
from importlib import resources
from typing import Any

import jsonschema
import pytest
import trio
from ocpp.v16 import call_result as result16
from trio_websocket import ConnectionRejected, open_websocket_url

from libv4e.csms import IdTag
from tests.support import api, raw_call, running_backend, ws_url

pytestmark = pytest.mark.usefixtures("both_transports")

STATION = {"model": "M201", "vendorName": "V201", "serialNumber": "S1", "firmwareVersion": "1.0"}
BOOT = {"chargingStation": STATION, "reason": "PowerUp"}


def schema(action: str) -> dict:
    path = resources.files("ocpp") / "v201" / "schemas" / f"{action}Response.json"
    return json.loads(path.read_text(encoding="utf-8-sig"))


def assert_valid(action: str, frame: list) -> dict:
    assert frame[0] == 3, frame
    jsonschema.Draft6Validator(
        schema(action), format_checker=jsonschema.Draft6Validator.FORMAT_CHECKER
    ).validate(frame[2])
    return frame[2]


async def command_answered(client, ws, path: str, body: dict, answer) -> tuple[list, Any]:
    """POST ``body`` to the command route ``path`` while the raw station ``ws`` answers
    the call it is sent with ``answer(frame)``: (that call's frame, the REST response)."""
    responses = []

    async def post():
        responses.append(await client.post(path, json=body))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(post)
        frame = json.loads(await ws.get_message())
        await ws.send_message(json.dumps([3, frame[1], answer(frame)]))
    return frame, responses[0]


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


CALLS = [
    ("Heartbeat", {}),
    (
        "StatusNotification",
        {
            "timestamp": "2024-05-01T12:00:00Z",
            "connectorStatus": "Available",
            "evseId": 1,
            "connectorId": 1,
        },
    ),
    ("Authorize", {"idToken": {"idToken": "GOOD1", "type": "ISO14443"}}),
    ("Authorize", {"idToken": {"idToken": "CHILD", "type": "ISO15693"}}),  # expiry + group
    ("Authorize", {"idToken": {"idToken": "GONE", "type": "Central"}}),
    ("Authorize", {"idToken": {"idToken": "", "type": "NoAuthorization"}}),
    ("NotifyReport", {"requestId": 1, "generatedAt": "2024-05-01T12:00:00Z", "seqNo": 0}),
    (
        "NotifyReport",
        {
            "requestId": 1,
            "generatedAt": "2024-05-01T12:00:00Z",
            "seqNo": 1,
            "tbc": False,
            "reportData": [
                {
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                    "variableAttribute": [{"type": "Actual", "value": "30"}],
                    "variableCharacteristics": {"dataType": "integer", "supportsMonitoring": False},
                }
            ],
        },
    ),
    (
        "NotifyEvent",
        {
            "generatedAt": "2024-05-01T12:00:00Z",
            "seqNo": 0,
            "eventData": [
                {
                    "eventId": 1,
                    "timestamp": "2024-05-01T12:00:00Z",
                    "trigger": "Alerting",
                    "actualValue": "true",
                    "eventNotificationType": "PreconfiguredMonitor",
                    "component": {"name": "EVSE", "evse": {"id": 1}},
                    "variable": {"name": "Problem"},
                }
            ],
        },
    ),
    ("DataTransfer", {"vendorId": "com.example", "messageId": "x", "data": {"n": 1}}),
    ("DataTransfer", {"vendorId": "com.unknown"}),
]


async def test_every_answer_to_a_2_0_1_charger_is_schema_valid(tmp_path):
    async with running_backend(str(tmp_path / "v4e.db")) as backend, api(backend) as client:
        csms = backend.csms
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        await csms.upsert_tag(IdTag("GOOD1"))
        await csms.upsert_tag(IdTag("CHILD", expiry=later, parent_id_tag="FLEET"))
        await csms.upsert_tag(IdTag("GONE", status="Blocked"))
        seen = []

        async def transfer(cp_id, req):
            seen.append((cp_id, req.vendor_id, req.message_id, req.data))
            return result16.DataTransfer("Accepted", data="ok")

        csms.register_data_transfer("com.example", transfer)
        async with open_websocket_url(ws_url(backend) + "/CS201", subprotocols=["ocpp2.0.1"]) as ws:
            boot = assert_valid(
                "BootNotification", await raw_call(ws, "b", "BootNotification", BOOT)
            )
            assert boot["status"] == "Accepted" and boot["interval"] == 30
            answers = []
            for i, (action, payload) in enumerate(CALLS):
                answers.append(assert_valid(action, await raw_call(ws, f"c{i}", action, payload)))
            by_token = {CALLS[i][1]["idToken"]["idToken"]: answers[i] for i in range(2, 6)}
            assert by_token["GOOD1"]["idTokenInfo"] == {"status": "Accepted"}
            child = by_token["CHILD"]["idTokenInfo"]
            assert child["groupIdToken"] == {"idToken": "FLEET", "type": "Central"}
            assert child["cacheExpiryDateTime"].startswith(later.date().isoformat())
            assert by_token["GONE"]["idTokenInfo"]["status"] == "Blocked"
            assert by_token[""]["idTokenInfo"]["status"] == "Accepted"
            assert answers[-2] == {"status": "Accepted", "data": "ok"}
            assert seen == [("CS201", "com.example", "x", '{"n": 1}')]
            assert answers[-1] == {"status": "UnknownVendorId"}
            # a session: booked on the same ledger as a 1.6 one
            te = await raw_call(
                ws,
                "t",
                "TransactionEvent",
                {
                    "eventType": "Started",
                    "timestamp": now(),
                    "triggerReason": "Authorized",
                    "seqNo": 0,
                    "transactionInfo": {"transactionId": "TX1"},
                    "evse": {"id": 1, "connectorId": 1},
                },
            )
            assert_valid("TransactionEvent", te)
            assert csms.transactions.of_charger("CS201", "TX1") is not None
            state = (await client.get("/chargers/CS201")).json()
        assert state["ocpp_version"] == "2.0.1"
        assert state["boot"]["serial_number"] == "S1" and state["boot"]["reason"] == "PowerUp"
        assert state["connectors"][0]["connector_id"] == 1
        assert state["connectors"][0]["status"] == "Available"
        model = csms.registry.device_model("CS201")
        assert model.value("OCPPCommCtrlr", "HeartbeatInterval") == "30"
        assert model.value("EVSE", "Problem", evse_id=1) == "true"


async def test_the_boot_gate_and_the_connector_bound_hold_for_2_0_1(tmp_path):
    async with running_backend(str(tmp_path / "v4e.db"), max_connectors=4) as backend:
        async with open_websocket_url(ws_url(backend) + "/CS201", subprotocols=["ocpp2.0.1"]) as ws:
            # before an accepted boot: only Boot/Heartbeat/Status answer
            for action, payload in CALLS[2:3] + CALLS[6:7] + CALLS[-1:]:
                frame = await raw_call(ws, "x", action, payload)
                assert frame[0] == 4 and frame[2] == "SecurityError", frame
            assert_valid("Heartbeat", await raw_call(ws, "h", "Heartbeat", {}))
            assert_valid("StatusNotification", await raw_call(ws, "s0", *CALLS[1]))
            boot = await raw_call(ws, "b", "BootNotification", BOOT)
            assert assert_valid("BootNotification", boot)["status"] == "Accepted"
            assert_valid("Authorize", await raw_call(ws, "a", *CALLS[2]))
            # the connector bound applies to EVSE ids
            too_far = {**CALLS[1][1], "evseId": 5}
            frame = await raw_call(ws, "s", "StatusNotification", too_far)
            assert frame[0] == 4 and frame[2] == "PropertyConstraintViolation"
            assert frame[4] == {"field": "evseId"}
            # and to the connector ids within an EVSE (each one's status is kept)
            many = {**CALLS[1][1], "evseId": 1, "connectorId": 5}
            frame = await raw_call(ws, "c", "StatusNotification", many)
            assert frame[0] == 4 and frame[4] == {"field": "connectorId"}, frame
            for connector in range(1, 5):  # up to the bound: kept
                fine = {**CALLS[1][1], "evseId": 1, "connectorId": connector}
                assert_valid(
                    "StatusNotification",
                    await raw_call(ws, f"c{connector}", "StatusNotification", fine),
                )
        state = backend.csms.registry.get("CS201")
        assert sorted(state.connectors[1].plugs) == [1, 2, 3, 4]


async def test_the_csms_can_serve_1_6_only(tmp_path):
    async with running_backend(str(tmp_path / "v4e.db"), ocpp_versions=("ocpp1.6",)) as backend:
        with pytest.raises(ConnectionRejected) as info:
            async with open_websocket_url(ws_url(backend) + "/X", subprotocols=["ocpp2.0.1"]):
                pass
        assert info.value.status_code == 400
        offered = ["ocpp2.0.1", "ocpp1.6"]
        async with open_websocket_url(ws_url(backend) + "/X", subprotocols=offered) as ws:
            assert ws.subprotocol == "ocpp1.6"
            with trio.fail_after(5):
                assert (await raw_call(ws, "h", "Heartbeat", {}))[0] == 3


def test_the_command_line_names_the_versions_served():
    from libv4e_apps.csms.cli import ocpp_versions

    assert ocpp_versions("2.0.1,1.6") == ("ocpp2.0.1", "ocpp1.6")
    assert ocpp_versions("1.6") == ("ocpp1.6",)
    assert ocpp_versions("ocpp1.6, 2.0.1") == ("ocpp1.6", "ocpp2.0.1")
    with pytest.raises(SystemExit, match="--ocpp-versions"):
        ocpp_versions("2.1")


async def test_a_2_0_1_charger_meets_the_same_password_rules(tmp_path):
    from ocpp.v201 import call, datatypes

    from libv4e import ConnectError, open_ocpp

    async with running_backend(str(tmp_path / "v4e.db")) as backend, api(backend) as client:
        await client.put("/chargers/CS201/password", json={"password": "correct-horse-battery"})
        for creds in (None, ("CS201", "wrong-password-123456")):
            with pytest.raises(ConnectError) as info:
                async with open_ocpp(ws_url(backend), "CS201", basic_auth=creds, version="2.0.1"):
                    pass
            assert info.value.status == 401
        good = ("CS201", "correct-horse-battery")
        async with open_ocpp(ws_url(backend), "CS201", basic_auth=good, version="2.0.1") as conn:
            station = datatypes.ChargingStationType(model="M", vendor_name="V")
            boot = await conn.call(call.BootNotification(station, "PowerUp"), timeout=5)
            assert boot.status == "Accepted"
        assert (await client.get("/chargers/CS201")).json()["ocpp_version"] == "2.0.1"


async def test_a_2_0_1_charger_over_tls_with_basic_auth(tmp_path):
    import ssl

    import trustme
    from ocpp.v201 import call, datatypes

    from libv4e import open_ocpp
    from libv4e.csms import CsmsConfig
    from libv4e_apps.csms.backend import BackendConfig, serve_backend

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    config = BackendConfig(
        host="127.0.0.1",
        ws_port=0,
        api_port=0,
        db_path=str(tmp_path / "v4e.db"),
        csms=CsmsConfig(require_password=True),
        ssl_context=server_ctx,
    )
    async with trio.open_nursery() as nursery:
        backend = await nursery.start(
            lambda task_status: serve_backend(config, task_status=task_status)
        )
        async with api(backend) as client:
            await client.put("/chargers/CS201/password", json={"password": "correct-horse-battery"})
            url = f"wss://127.0.0.1:{backend.ws_port}"
            async with open_ocpp(
                url,
                "CS201",
                version="2.0.1",
                ssl_context=client_ctx,
                basic_auth=("CS201", "correct-horse-battery"),
            ) as conn:
                station = datatypes.ChargingStationType(model="M", vendor_name="V")
                boot = await conn.call(call.BootNotification(station, "PowerUp"), timeout=5)
                assert boot.status == "Accepted" and conn.version == "ocpp2.0.1"
            state = (await client.get("/chargers/CS201")).json()
            assert state["ocpp_version"] == "2.0.1"
        nursery.cancel_scope.cancel()


def test_the_device_model_is_bounded():
    from ocpp.v201 import datatypes

    from libv4e.csms._devicemodel import DeviceModel

    model = DeviceModel(max_variables=3, max_events=2)

    def item(n: int, value: str) -> datatypes.ReportDataType:
        return datatypes.ReportDataType(
            component=datatypes.ComponentType(name="C"),
            variable=datatypes.VariableType(name=f"V{n}"),
            variable_attribute=[datatypes.VariableAttributeType(value=value)],
        )

    model.report([item(n, "a") for n in range(5)])
    assert len(model) == 3 and model.dropped == 2
    model.report([item(0, "b")])  # a known variable is still updated
    assert model.value("C", "V0") == "b" and len(model) == 3
    for n in range(4):
        model.event(
            [
                datatypes.EventDataType(
                    event_id=n,
                    timestamp="2024-05-01T12:00:00Z",
                    trigger="Delta",
                    actual_value=str(n),
                    event_notification_type="HardWiredNotification",
                    component=datatypes.ComponentType(name="C"),
                    variable=datatypes.VariableType(name="V1"),
                )
            ],
            "2024-05-01T12:00:00Z",
        )
    assert [e["event_id"] for e in model.events] == [2, 3]
    assert model.value("C", "V1") == "3"


def test_the_device_model_never_keeps_the_basic_auth_password():
    from ocpp.v201 import datatypes

    from libv4e.csms._devicemodel import DeviceModel, variable_key

    model = DeviceModel()
    where = {
        "component": datatypes.ComponentType(name="SecurityCtrlr"),
        "variable": datatypes.VariableType(name="BasicAuthPassword"),
    }
    secret = "a-password-a-careless-station-reports"
    model.report(
        [
            datatypes.ReportDataType(
                **where, variable_attribute=[datatypes.VariableAttributeType(value=secret)]
            )
        ]
    )
    event = datatypes.EventDataType(
        event_id=1,
        timestamp="2024-05-01T12:00:00Z",
        trigger="Delta",
        actual_value=secret,
        event_notification_type="HardWiredNotification",
        **where,
    )
    model.event([event], "2024-05-01T12:00:00Z")
    key = variable_key(where["component"], where["variable"], None)
    model.apply(model.plan_set([(key, secret)]), [])
    assert model.value("SecurityCtrlr", "BasicAuthPassword") is None
    assert secret not in str(model.as_dict())


async def test_a_negative_evse_id_creates_no_connector_and_no_session(tmp_path):
    async with running_backend(str(tmp_path / "v4e.db"), max_connectors=4) as backend:
        async with open_websocket_url(ws_url(backend) + "/CSNEG", subprotocols=["ocpp2.0.1"]) as ws:
            boot = await raw_call(ws, "b", "BootNotification", BOOT)
            assert assert_valid("BootNotification", boot)["status"] == "Accepted"
            started = {
                "eventType": "Started",
                "timestamp": now(),
                "triggerReason": "Authorized",
                "seqNo": 0,
                "transactionInfo": {"transactionId": "neg-1"},
                "evse": {"id": -2147483648},
            }
            frame = await raw_call(ws, "t", "TransactionEvent", started)
            assert frame[0] == 4 and frame[2] == "PropertyConstraintViolation", frame
        csms = backend.csms
        state = csms.registry.get("CSNEG")
        assert state is not None and all(c >= 0 for c in state.connectors)
        assert csms.transactions.of_charger("CSNEG", "neg-1") is None


async def test_a_number_too_large_for_a_float_is_refused_not_a_crash(tmp_path):
    # JSON numbers are unbounded: 1 followed by 400 zeros is an int no float holds
    huge = "1" + "0" * 400
    async with running_backend(str(tmp_path / "v4e.db")) as backend:
        async with open_websocket_url(ws_url(backend) + "/CSBIG", subprotocols=["ocpp2.0.1"]) as ws:
            boot = await raw_call(ws, "b", "BootNotification", BOOT)
            assert assert_valid("BootNotification", boot)["status"] == "Accepted"
            started = {
                "eventType": "Started",
                "timestamp": now(),
                "triggerReason": "Authorized",
                "seqNo": 0,
                "transactionInfo": {"transactionId": "big-1"},
                "evse": {"id": 1},
                "meterValue": [{"timestamp": now(), "sampledValue": [{"value": 0}]}],
            }
            text = json.dumps([2, "t", "TransactionEvent", started])
            await ws.send_message(text.replace('"value": 0', f'"value": {huge}'))
            frame = json.loads(await ws.get_message())
            assert frame[:3] == [4, "t", "PropertyConstraintViolation"], frame
            assert_valid("Heartbeat", await raw_call(ws, "h", "Heartbeat", {}))
        assert backend.csms.transactions.of_charger("CSBIG", "big-1") is None


async def test_a_session_started_without_an_evse_is_shown_on_the_evse_it_then_names(tmp_path):
    async with running_backend(str(tmp_path / "v4e.db")) as backend:
        async with open_websocket_url(
            ws_url(backend) + "/CSNOEVSE", subprotocols=["ocpp2.0.1"]
        ) as ws:
            boot = await raw_call(ws, "b", "BootNotification", BOOT)
            assert assert_valid("BootNotification", boot)["status"] == "Accepted"
            event = {
                "eventType": "Started",
                "timestamp": now(),
                "triggerReason": "Authorized",
                "seqNo": 0,
                "transactionInfo": {"transactionId": "no-evse"},
                "idToken": {"idToken": "GOOD1", "type": "ISO14443"},
            }
            assert_valid("TransactionEvent", await raw_call(ws, "t0", "TransactionEvent", event))
            register = [
                {
                    "timestamp": now(),
                    "sampledValue": [{"value": 1500, "measurand": "Energy.Active.Import.Register"}],
                }
            ]
            updated = {
                **event,
                "eventType": "Updated",
                "triggerReason": "CablePluggedIn",
                "seqNo": 1,
                "evse": {"id": 1, "connectorId": 1},
                "meterValue": register,
            }
            del updated["idToken"]
            assert_valid("TransactionEvent", await raw_call(ws, "t1", "TransactionEvent", updated))
            async with api(backend) as client:
                (tx,) = (await client.get("/transactions", params={"active": "true"})).json()[
                    "transactions"
                ]
                assert (tx["charger_transaction_id"], tx["connector_id"]) == ("no-evse", 1)
                state = (await client.get("/chargers/CSNOEVSE")).json()
                on = {c["connector_id"]: c["transaction_id"] for c in state["connectors"]}
                assert on.get(1) == tx["transaction_id"] and on.get(0) is None, on
        stored = await backend.csms.store.transaction_of_charger("CSNOEVSE", "no-evse")
        assert stored is not None and stored.connector_id == 1


TS = "2024-05-01T12:00:00Z"
PROFILE_201 = {
    "id": 1,
    "stackLevel": 0,
    "chargingProfilePurpose": "TxDefaultProfile",
    "chargingProfileKind": "Absolute",
    "chargingSchedule": [
        {
            "id": 1,
            "chargingRateUnit": "W",
            "startSchedule": TS,
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7000.0}],
        }
    ],
}
EVERY_CALL = {
    "Authorize": {"idToken": {"idToken": "GOOD1", "type": "ISO14443"}},
    "BootNotification": BOOT,
    "ClearedChargingLimit": {"chargingLimitSource": "EMS", "evseId": 1},
    "DataTransfer": {"vendorId": "com.unknown"},
    "FirmwareStatusNotification": {"status": "Downloading", "requestId": 1},
    "Get15118EVCertificate": {
        "iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef",
        "action": "Install",
        "exiRequest": "AAEC",
    },
    "GetCertificateStatus": {
        "ocspRequestData": {
            "hashAlgorithm": "SHA256",
            "issuerNameHash": "a" * 64,
            "issuerKeyHash": "b" * 64,
            "serialNumber": "01",
            "responderURL": "http://ocsp.example/",
        }
    },
    "Heartbeat": {},
    "LogStatusNotification": {"status": "Uploading", "requestId": 2},
    "MeterValues": {
        "evseId": 1,
        "meterValue": [{"timestamp": TS, "sampledValue": [{"value": 5.0}]}],
    },
    "NotifyChargingLimit": {
        "chargingLimit": {"chargingLimitSource": "EMS", "isGridCritical": False},
        "evseId": 1,
    },
    "NotifyCustomerInformation": {"data": "none", "seqNo": 0, "generatedAt": TS, "requestId": 3},
    "NotifyDisplayMessages": {"requestId": 4},
    "NotifyEVChargingNeeds": {"chargingNeeds": {"requestedEnergyTransfer": "DC"}, "evseId": 1},
    "NotifyEVChargingSchedule": {
        "timeBase": TS,
        "evseId": 1,
        "chargingSchedule": PROFILE_201["chargingSchedule"][0],
    },
    "NotifyEvent": dict(CALLS)["NotifyEvent"],
    "NotifyMonitoringReport": {"requestId": 5, "seqNo": 0, "generatedAt": TS},
    "NotifyReport": {"requestId": 6, "seqNo": 0, "generatedAt": TS},
    "PublishFirmwareStatusNotification": {"status": "Idle"},
    "ReportChargingProfiles": {
        "requestId": 7,
        "chargingLimitSource": "CSO",
        "evseId": 1,
        "chargingProfile": [PROFILE_201],
    },
    "ReservationStatusUpdate": {"reservationId": 99, "reservationUpdateStatus": "Expired"},
    "SecurityEventNotification": {"type": "StartupOfTheDevice", "timestamp": TS},
    "SignCertificate": {
        "csr": "-----BEGIN CERTIFICATE REQUEST-----\nAA==\n-----END CERTIFICATE REQUEST-----"
    },
    "StatusNotification": dict(CALLS)["StatusNotification"],
    "TransactionEvent": {
        "eventType": "Started",
        "timestamp": TS,
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "EVERY"},
        "evse": {"id": 1, "connectorId": 1},
    },
}
"""A valid request of every action a 2.0.1 station may send."""


def request_schema(action: str) -> dict:
    path = resources.files("ocpp") / "v201" / "schemas" / f"{action}Request.json"
    return json.loads(path.read_text())


async def test_every_action_a_station_may_send_is_answered_with_a_valid_result(tmp_path):
    from libv4e.protocol._session import CHARGING_STATION_ACTIONS

    assert set(EVERY_CALL) == CHARGING_STATION_ACTIONS
    for action, payload in EVERY_CALL.items():  # the input is valid…
        jsonschema.Draft6Validator(request_schema(action)).validate(payload)
    async with running_backend(str(tmp_path / "v4e.db")) as backend:
        async with open_websocket_url(ws_url(backend) + "/CSALL", subprotocols=["ocpp2.0.1"]) as ws:
            assert_valid("BootNotification", await raw_call(ws, "b", "BootNotification", BOOT))
            for i, (action, payload) in enumerate(EVERY_CALL.items()):  # …and so is the answer
                assert_valid(action, await raw_call(ws, f"e{i}", action, payload))


@pytest.mark.parametrize(
    ("reported", "recorded"), [("Removed", "Cancelled"), ("Expired", "Expired")]
)
async def test_a_reservation_the_station_ends_is_recorded_ended(tmp_path, reported, recorded):
    async with running_backend(str(tmp_path / "v4e.db")) as backend, api(backend) as client:
        async with open_websocket_url(ws_url(backend) + "/CSRES", subprotocols=["ocpp2.0.1"]) as ws:
            assert_valid("BootNotification", await raw_call(ws, "b", "BootNotification", BOOT))
            body = {"connector_id": 1, "id_tag": "GOOD1", "expiry_date": "2099-01-01T00:00:00Z"}
            asked, answer = await command_answered(
                client, ws, "/commands/reserve_now/CSRES", body, lambda _: {"status": "Accepted"}
            )
            assert asked[2] == "ReserveNow" and asked[3]["evseId"] == 1, asked
            reservation = answer.json()["reservation"]
            assert reservation["status"] == "Reserved", reservation
            rid = reservation["reservation_id"]
            assert asked[3]["id"] == rid
            # another reservation id, or another station's, moves nothing
            update = {"reservationId": rid + 1, "reservationUpdateStatus": reported}
            assert_valid(
                "ReservationStatusUpdate",
                await raw_call(ws, "u0", "ReservationStatusUpdate", update),
            )
            update = {"reservationId": rid, "reservationUpdateStatus": reported}
            assert_valid(
                "ReservationStatusUpdate",
                await raw_call(ws, "u1", "ReservationStatusUpdate", update),
            )
        (held,) = (await client.get("/reservations", params={"cp_id": "CSRES"})).json()[
            "reservations"
        ]
        assert (held["reservation_id"], held["status"], held["active"]) == (rid, recorded, False)
        assert held["history"][-1]["detail"] == f"the station reported it {reported}"
        stored = await backend.csms.store.reservations(
            cp_id="CSRES", status=None, limit=5, offset=0
        )
        assert [r.status for r in stored] == [recorded]


async def test_get_configuration_says_readonly_as_the_device_model_reports_it(tmp_path):
    async with running_backend(str(tmp_path / "v4e.db")) as backend, api(backend) as client:
        async with open_websocket_url(ws_url(backend) + "/CSRO", subprotocols=["ocpp2.0.1"]) as ws:
            assert_valid("BootNotification", await raw_call(ws, "b", "BootNotification", BOOT))

            def reported(variable, mutability):
                return {
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": variable},
                    "variableAttribute": [{"value": "30", "mutability": mutability}],
                }

            report = {
                "requestId": 1,
                "generatedAt": TS,
                "seqNo": 0,
                "reportData": [
                    reported("HeartbeatInterval", "ReadOnly"),
                    reported("ResetRetries", "ReadWrite"),
                ],
            }
            assert_valid("NotifyReport", await raw_call(ws, "r", "NotifyReport", report))

            def values(frame):
                data = frame[3]["getVariableData"]
                return {
                    "getVariableResult": [
                        {**item, "attributeStatus": "Accepted", "attributeValue": "30"}
                        for item in data
                    ]
                }

            body = {"keys": ["HeartbeatInterval", "ResetRetries", "WebSocketPingInterval"]}
            asked, answer = await command_answered(
                client, ws, "/commands/get_configuration/CSRO", body, values
            )
            assert asked[2] == "GetVariables", asked
            keys = {k["key"]: k["readonly"] for k in answer.json()["configurationKey"]}
            # reported ReadOnly / ReadWrite; not reported: writable, as the table's are
            assert keys == {
                "HeartbeatInterval": True,
                "ResetRetries": False,
                "WebSocketPingInterval": False,
            }, answer.text


async def test_an_evse_with_two_connectors_shows_each_and_is_as_its_most_telling(tmp_path):
    db = str(tmp_path / "v4e.db")

    def status(connector: int, value: str) -> dict:
        return {"timestamp": TS, "connectorStatus": value, "evseId": 1, "connectorId": connector}

    async def evse(client) -> dict:
        state = (await client.get("/chargers/CSTWO")).json()
        (one,) = [c for c in state["connectors"] if c["connector_id"] == 1]
        return {"status": one["status"], "plugs": one["plugs"]}

    async with running_backend(db) as backend, api(backend) as client:
        async with open_websocket_url(ws_url(backend) + "/CSTWO", subprotocols=["ocpp2.0.1"]) as ws:
            assert_valid("BootNotification", await raw_call(ws, "b", "BootNotification", BOOT))
            steps = [
                (status(1, "Available"), "Available", {"1": "Available"}),
                (status(2, "Available"), "Available", {"1": "Available", "2": "Available"}),
                # a cable in the second connector: the EVSE is taken (not yet charging)
                (status(2, "Occupied"), "Preparing", {"1": "Available", "2": "Occupied"}),
                (status(2, "Available"), "Available", {"1": "Available", "2": "Available"}),
                # a fault on one connector shows, a free neighbour does not hide it
                (status(1, "Faulted"), "Faulted", {"1": "Faulted", "2": "Available"}),
            ]
            for i, (notification, shown, plugs) in enumerate(steps):
                answer = await raw_call(ws, f"s{i}", "StatusNotification", notification)
                assert_valid("StatusNotification", answer)
                assert await evse(client) == {"status": shown, "plugs": plugs}, i
                if notification["connectorStatus"] == "Occupied":  # the stuck cable's plug
                    frame, unlocked = await command_answered(
                        client,
                        ws,
                        "/commands/unlock_connector/CSTWO",
                        {"connector_id": 1},
                        lambda _: {"status": "Unlocked"},
                    )
                    assert frame[2] == "UnlockConnector", frame
                    assert frame[3] == {"evseId": 1, "connectorId": 2}, frame
                    assert unlocked.json()["status"] == "Unlocked", unlocked.text
    async with running_backend(db) as backend, api(backend) as client:  # after a restart
        assert await evse(client) == {
            "status": "Faulted",
            "plugs": {"1": "Faulted", "2": "Available"},
        }


async def test_a_session_without_an_evse_ended_on_the_evse_it_names_frees_connector_0(tmp_path):
    """The first event naming the EVSE may be the Ended one: the session moves there and
    ends; connector 0 no longer shows it running."""
    async with running_backend(str(tmp_path / "v4e.db")) as backend:
        async with open_websocket_url(
            ws_url(backend) + "/CSNOEVSE", subprotocols=["ocpp2.0.1"]
        ) as ws:
            boot = await raw_call(ws, "b", "BootNotification", BOOT)
            assert assert_valid("BootNotification", boot)["status"] == "Accepted"
            event = {
                "eventType": "Started",
                "timestamp": now(),
                "triggerReason": "Authorized",
                "seqNo": 0,
                "transactionInfo": {"transactionId": "no-evse"},
                "idToken": {"idToken": "GOOD1", "type": "ISO14443"},
            }
            assert_valid("TransactionEvent", await raw_call(ws, "t0", "TransactionEvent", event))
            async with api(backend) as client:
                state = (await client.get("/chargers/CSNOEVSE")).json()
                on = {c["connector_id"]: c["transaction_id"] for c in state["connectors"]}
                assert on.get(0) is not None, on
                ended = {
                    **event,
                    "eventType": "Ended",
                    "triggerReason": "StopAuthorized",
                    "seqNo": 1,
                    "evse": {"id": 1, "connectorId": 1},
                    "transactionInfo": {"transactionId": "no-evse", "stoppedReason": "Local"},
                }
                del ended["idToken"]
                answer = await raw_call(ws, "t1", "TransactionEvent", ended)
                assert_valid("TransactionEvent", answer)
                assert (await client.get("/transactions", params={"active": "true"})).json()[
                    "transactions"
                ] == []
                state = (await client.get("/chargers/CSNOEVSE")).json()
                on = {c["connector_id"]: c["transaction_id"] for c in state["connectors"]}
                assert on.get(0) is None and on.get(1) is None, on
        stored = await backend.csms.store.transaction_of_charger("CSNOEVSE", "no-evse")
        assert stored is not None and stored.connector_id == 1 and not stored.active


async def test_a_station_reporting_its_basic_auth_password_is_not_logged_with_it(tmp_path):
    """A careless station that reports SecurityCtrlr.BasicAuthPassword's value (write-only:
    it should not) in a NotifyReport or a NotifyEvent: neither the message log nor the
    device model keeps it."""
    secret = "a-password-a-careless-station-reports"
    where = {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}}
    async with running_backend(str(tmp_path / "v4e.db")) as backend:
        async with open_websocket_url(
            ws_url(backend) + "/CSCARELESS", subprotocols=["ocpp2.0.1"]
        ) as ws:
            boot = await raw_call(ws, "b", "BootNotification", BOOT)
            assert assert_valid("BootNotification", boot)["status"] == "Accepted"
            report = {
                "requestId": 1,
                "generatedAt": now(),
                "seqNo": 0,
                "reportData": [
                    {**where, "variableAttribute": [{"value": secret, "mutability": "WriteOnly"}]}
                ],
            }
            assert_valid("NotifyReport", await raw_call(ws, "r", "NotifyReport", report))
            event = {
                "generatedAt": now(),
                "seqNo": 0,
                "eventData": [
                    {
                        **where,
                        "eventId": 1,
                        "timestamp": now(),
                        "trigger": "Delta",
                        "actualValue": secret,
                        "eventNotificationType": "HardWiredNotification",
                    }
                ],
            }
            assert_valid("NotifyEvent", await raw_call(ws, "e", "NotifyEvent", event))
            async with api(backend) as client:
                messages = (await client.get("/chargers/CSCARELESS/messages?limit=50")).text
                assert "NotifyReport" in messages and "NotifyEvent" in messages
                assert secret not in messages
                model = (await client.get("/chargers/CSCARELESS/device_model")).text
                assert "BasicAuthPassword" in model and secret not in model
        await backend.csms.flush_log()
        assert secret not in str(await backend.csms.recent_messages("CSCARELESS"))


async def test_a_schema_error_names_the_field_and_the_rule_never_the_value(tmp_path):
    """A value that breaks the schema is not repeated in the CallError, the message log
    or a REST 422 (it may be long, or a password)."""
    secret = "s3cret-" + "x" * 1200  # over SetVariables' 1000 characters
    where = {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}}
    async with running_backend(str(tmp_path / "v4e.db")) as backend, api(backend) as client:
        async with open_websocket_url(ws_url(backend) + "/CSERR", subprotocols=["ocpp2.0.1"]) as ws:
            assert_valid("BootNotification", await raw_call(ws, "b", "BootNotification", BOOT))
            event = {
                "eventId": 1,
                "timestamp": TS,
                "trigger": "Delta",
                "actualValue": "true",
                "eventNotificationType": "HardWiredNotification",
                **where,
            }
            frame = await raw_call(
                ws,
                "n",
                "NotifyEvent",
                {
                    "generatedAt": TS,
                    "seqNo": 0,
                    "eventData": [{**event, "eventId": secret}],
                },  # not an integer
            )
            assert frame[0] == 4 and "eventId" in frame[3], frame
            assert "s3cret" not in json.dumps(frame)
            body = {"setVariableData": [{"attributeValue": secret, **where}]}
            r = await client.post("/ocpp201/SetVariables/CSERR", json=body)
            assert r.status_code == 422, r.text
            assert "attributeValue" in r.json()["message"] and "1000" in r.json()["message"]
            assert "s3cret" not in r.text and not r.json()["message"].startswith(
                "SetVariables: SetVariables"
            )
        log = (await client.get("/chargers/CSERR/messages", params={"limit": 50})).json()
        answers = [m for m in log["messages"] if m["message_type"] == 4]
        assert answers and all("s3cret" not in json.dumps(m) for m in answers)
