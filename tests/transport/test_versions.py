"""Both OCPP versions on one port: the websocket handshake picks ocpp2.0.1 or ocpp1.6 from
what the charger offers (the server's order of preference decides), and a 2.0.1 link gets
2.0.1's messages, schemas and CallError codes. Real sockets on 127.0.0.1, port 0."""

from __future__ import annotations

import json

import pytest
import trio
from ocpp.v16 import call as call16
from ocpp.v201 import call, call_result, datatypes, enums
from trio_websocket import ConnectionRejected, open_websocket_url

from libv4e import ConnectError, OcppConnection, handlers_from, open_ocpp, serve_ocpp
from libv4e.protocol import OcppVersion

pytestmark = pytest.mark.usefixtures("both_transports")

NOW = "2024-05-01T12:00:00+00:00"


class Csms:
    """Answers BootNotification and Heartbeat in whichever version the link speaks."""

    def __init__(self) -> None:
        self.versions: dict[str, OcppVersion] = {}

    async def on_boot_notification(self, payload):
        if isinstance(payload, call.BootNotification):
            return call_result.BootNotification(NOW, 30, enums.RegistrationStatusEnumType.accepted)
        from ocpp.v16 import call_result as result16

        return result16.BootNotification(NOW, 30, "Accepted")

    async def on_heartbeat(self, payload):
        if isinstance(payload, call.Heartbeat):
            return call_result.Heartbeat(NOW)
        from ocpp.v16 import call_result as result16

        return result16.Heartbeat(NOW)

    async def on_connect(self, conn: OcppConnection) -> None:
        self.versions[conn.cp_id] = conn.version
        await conn.serve(handlers_from(self))


async def start(nursery, **options) -> tuple[Csms, str]:
    server = Csms()
    port = await nursery.start(
        lambda task_status: serve_ocpp(
            server.on_connect, "127.0.0.1", 0, task_status=task_status, **options
        )
    )
    return server, f"ws://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("offered", "agreed"),
    [
        (["ocpp1.6", "ocpp2.0.1"], "ocpp2.0.1"),  # the server's order wins, not the charger's
        (["ocpp2.0.1", "ocpp1.6"], "ocpp2.0.1"),
        (["ocpp1.6"], "ocpp1.6"),
        (["ocpp2.0.1"], "ocpp2.0.1"),
    ],
)
async def test_the_handshake_prefers_2_0_1_and_falls_back_to_1_6(nursery, offered, agreed):
    server, url = await start(nursery)
    async with open_websocket_url(url + "/CP1", subprotocols=offered) as ws:
        assert ws.subprotocol == agreed
        await ws.send_message('[2,"h","Heartbeat",{}]')
        with trio.fail_after(5):
            assert json.loads(await ws.get_message()) == [3, "h", {"currentTime": NOW}]
    assert server.versions["CP1"] == OcppVersion(agreed)


async def test_a_charger_offering_neither_version_is_refused(nursery):
    _, url = await start(nursery)
    with pytest.raises(ConnectionRejected) as info:
        async with open_websocket_url(url + "/CP1", subprotocols=["ocpp2.1", "ocpp1.5"]):
            pass
    assert info.value.status_code == 400
    assert b"ocpp2.0.1, ocpp1.6" in (info.value.body or b"")


async def test_the_server_option_restricts_and_reorders_the_versions(nursery):
    _, only16 = await start(nursery, subprotocols=["ocpp1.6"])
    with pytest.raises(ConnectionRejected) as info:
        async with open_websocket_url(only16 + "/CP1", subprotocols=["ocpp2.0.1"]):
            pass
    assert info.value.status_code == 400
    async with open_websocket_url(only16 + "/CP1", subprotocols=["ocpp2.0.1", "ocpp1.6"]) as ws:
        assert ws.subprotocol == "ocpp1.6"
    _, prefers16 = await start(nursery, subprotocols=["1.6", "2.0.1"])
    async with open_websocket_url(prefers16 + "/CP1", subprotocols=["ocpp2.0.1", "ocpp1.6"]) as ws:
        assert ws.subprotocol == "ocpp1.6"


async def test_open_ocpp_speaks_the_version_asked_for(nursery):
    server, url = await start(nursery)
    async with open_ocpp(url, "CP201", version="2.0.1") as conn:
        assert conn.version is OcppVersion.V201
        boot = await conn.call(
            call.BootNotification(
                datatypes.ChargingStationType(model="M", vendor_name="V"),
                enums.BootReasonEnumType.power_up,
            ),
            timeout=5,
        )
        assert boot.status == "Accepted" and boot.interval == 30
    async with open_ocpp(url, "CP16") as conn:  # 1.6 stays the client's default
        assert conn.version is OcppVersion.V16
        assert (await conn.call(call16.Heartbeat(), timeout=5)).current_time == NOW
    assert server.versions == {"CP201": OcppVersion.V201, "CP16": OcppVersion.V16}


async def test_open_ocpp_fails_clearly_if_the_server_does_not_agree(nursery):
    _, url = await start(nursery, subprotocols=["ocpp1.6"])
    with pytest.raises(ConnectError, match="HTTP 400"):
        async with open_ocpp(url, "CP201", version=OcppVersion.V201):
            pass


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('[2,"e1","Heartbeat",{"x":1}]', "FormatViolation"),
        ('[2,"e2","Heartbeat",{', "RpcFrameworkError"),
        ('[2,"e3","Heartbeat",{},1]', "RpcFrameworkError"),
        ('[7,"e4","Heartbeat",{}]', "MessageTypeNotSupported"),
        ('[2,"e5","BootNotification",{"reason":"PowerUp"}]', "OccurrenceConstraintViolation"),
        (
            '[2,"e6","BootNotification",{"reason":"PowerUp",'
            '"chargingStation":{"model":1,"vendorName":"V"}}]',
            "TypeConstraintViolation",
        ),
        (
            '[2,"e7","BootNotification",{"reason":"Teleport",'
            '"chargingStation":{"model":"M","vendorName":"V"}}]',
            "PropertyConstraintViolation",
        ),
        ('[2,"e8","Teleport",{}]', "NotImplemented"),
        ('[2,"e9","StartTransaction",{}]', "NotImplemented"),  # 1.6 only: not in 2.0.1
        (
            '[2,"e10","RequestStartTransaction",{"idToken":{"idToken":"T","type":"ISO14443"},'
            '"remoteStartId":1}]',
            "NotSupported",
        ),  # the CSMS's to send
        (
            '[2,"e11","StatusNotification",{"timestamp":"2024-01-01T00:00:00Z",'
            '"connectorStatus":"Available","evseId":-1,"connectorId":1}]',
            "PropertyConstraintViolation",
        ),  # the bounds layer, as in 1.6
    ],
)
async def test_a_2_0_1_link_answers_bad_input_with_2_0_1_codes(nursery, frame, code):
    _, url = await start(nursery)
    async with open_websocket_url(url + "/RAW201", subprotocols=["ocpp2.0.1"]) as ws:
        await ws.send_message(frame)
        with trio.fail_after(5):
            answer = json.loads(await ws.get_message())
        assert answer[0] == 4 and answer[2] == code, answer
        await ws.send_message('[2,"ok","Heartbeat",{}]')
        assert json.loads(await ws.get_message())[:2] == [3, "ok"]


async def test_a_1_6_link_keeps_1_6_spellings_on_the_same_server(nursery):
    _, url = await start(nursery)
    async with open_websocket_url(url + "/RAW16", subprotocols=["ocpp1.6"]) as ws:
        for frame, code in [
            ('[2,"a","Heartbeat",{"x":1}]', "FormationViolation"),
            ('[7,"b","Heartbeat",{}]', "FormationViolation"),
            (
                '[2,"c","BootNotification",{"chargePointVendor":"V"}]',
                "OccurenceConstraintViolation",
            ),
            ('[2,"d","NotifyReport",{}]', "NotImplemented"),  # 2.0.1 only
        ]:
            await ws.send_message(frame)
            with trio.fail_after(5):
                assert json.loads(await ws.get_message())[2] == code
