"""The Trio shell end to end: a real server on 127.0.0.1 port 0 and a real client."""

from __future__ import annotations

import json

import pytest
import trio
from ocpp.v16 import call, call_result, datatypes, enums
from trio_websocket import open_websocket_url

from libv4e import (
    CallTimeoutError,
    ConnectError,
    ConnectionLostError,
    OcppConnection,
    RemoteCallError,
    Reply,
    open_ocpp,
    serve_ocpp,
)
from libv4e.transport import Refusal

pytestmark = pytest.mark.usefixtures("both_transports")

NOW = "2024-05-01T12:00:00+00:00"


class Csms:
    """A tiny central system for these tests; records what it sees."""

    def __init__(self):
        self.connections: dict[str, OcppConnection] = {}
        self.heartbeats = 0
        self.hold = trio.Event()
        self.connected = trio.Event()
        self.slow_arrived = trio.Event()

    async def on_boot_notification(self, payload):
        return call_result.BootNotification(NOW, 30, enums.RegistrationStatus.accepted)

    async def on_heartbeat(self, payload):
        self.heartbeats += 1
        return call_result.Heartbeat(NOW)

    async def on_authorize(self, payload):
        if payload.id_tag == "SLOW":
            self.slow_arrived.set()
            await self.hold.wait()
        if payload.id_tag == "CRASH":
            raise RuntimeError("internal detail")
        return call_result.Authorize(datatypes.IdTagInfo(enums.AuthorizationStatus.accepted))

    async def on_connect(self, conn: OcppConnection):
        from libv4e import handlers_from

        self.connections[conn.cp_id] = conn
        self.connected.set()
        await conn.serve(handlers_from(self))


@pytest.fixture
async def csms(nursery):
    server = Csms()
    port = await nursery.start(serve_ocpp, server.on_connect, "127.0.0.1", 0)
    server.url = f"ws://127.0.0.1:{port}"
    return server


async def test_boot_and_heartbeat_from_charger(csms):
    async with open_ocpp(csms.url, "EVSE001") as conn:
        boot = await conn.call(call.BootNotification("M", "V"), timeout=5)
        assert boot.status == enums.RegistrationStatus.accepted
        assert boot.interval == 30
        hb = await conn.call(call.Heartbeat(), timeout=5)
        assert hb.current_time == NOW
    assert csms.heartbeats == 1


async def test_csms_calls_charger_while_charger_calls_csms(csms):
    async def on_reset(payload):
        return call_result.Reset(enums.ResetStatus.accepted)

    async with open_ocpp(csms.url, "EVSE002", handlers={"Reset": on_reset}) as conn:
        await conn.call(call.BootNotification("M", "V"), timeout=5)
        server_side = csms.connections["EVSE002"]
        result = await server_side.call(call.Reset(enums.ResetType.hard), timeout=5)
        assert result.status == enums.ResetStatus.accepted


async def test_concurrent_calls_are_serialized_in_order(csms):
    sent_order = []
    async with open_ocpp(csms.url, "EVSE003") as conn:

        def observe(record):
            if record.direction == "out":
                sent_order.append(record.action)

        conn.observer = observe
        results = []

        async def one(i, *, task_status=trio.TASK_STATUS_IGNORED):
            task_status.started()  # runs on into call() (to its queue) before the next
            results.append((i, await conn.call(call.Heartbeat(), timeout=5)))

        async with trio.open_nursery() as n:
            for i in range(5):
                await n.start(one, i)  # the calls start in a known order
    assert [i for i, _ in results] == [0, 1, 2, 3, 4]
    assert csms.heartbeats == 5
    assert sent_order == ["Heartbeat"] * 5


async def test_second_call_waits_for_first_result(csms, autojump_clock):
    # time jumps only once nothing has happened for 50 ms: a heartbeat on its way has
    # arrived before the 0.2 s below have passed
    autojump_clock.autojump_threshold = 0.05
    async with open_ocpp(csms.url, "EVSE004") as conn:
        order = []

        async def slow():
            await conn.call(call.Authorize("SLOW"), timeout=5)
            order.append("slow")

        async def quick():
            await csms.slow_arrived.wait()  # the Authorize is in flight
            await conn.call(call.Heartbeat(), timeout=5)
            order.append("quick")

        async with trio.open_nursery() as n:
            n.start_soon(slow)
            n.start_soon(quick)
            await trio.sleep(0.2)
            assert csms.heartbeats == 0  # the heartbeat is still queued behind Authorize
            csms.hold.set()
        assert order == ["slow", "quick"]


async def test_call_times_out_and_connection_carries_on(csms):
    async with open_ocpp(csms.url, "EVSE005") as conn:
        with pytest.raises(CallTimeoutError):
            await conn.call(call.Authorize("SLOW"), timeout=0.2)
        csms.hold.set()  # the late answer is dropped
        hb = await conn.call(call.Heartbeat(), timeout=5)
        assert hb.current_time == NOW


async def test_handler_crash_answers_internal_error(csms):
    async with open_ocpp(csms.url, "EVSE006") as conn:
        with pytest.raises(RemoteCallError) as info:
            await conn.call(call.Authorize("CRASH"), timeout=5)
        assert info.value.code == "InternalError"
        assert "internal detail" not in info.value.description
        await conn.call(call.Heartbeat(), timeout=5)


async def test_unhandled_known_action_gets_not_supported(csms):
    async with open_ocpp(csms.url, "EVSE007") as conn:
        with pytest.raises(RemoteCallError) as info:
            await conn.call(call.FirmwareStatusNotification("Idle"), timeout=5)
        assert info.value.code == "NotSupported"


async def test_peer_disconnecting_mid_call_releases_the_waiter(csms):
    async with open_ocpp(csms.url, "EVSE008") as conn:
        await conn.call(call.BootNotification("M", "V"), timeout=5)
    # the charger went away; the CSMS's call to it must fail fast, not hang
    server_side = csms.connections["EVSE008"]
    with trio.fail_after(3):
        with pytest.raises(ConnectionLostError):
            await server_side.call(call.Reset(enums.ResetType.hard), timeout=30)


async def test_disconnect_while_waiting_raises_connection_lost(nursery):
    answered = trio.Event()

    async def on_connect(conn):
        async def on_authorize(payload):
            await conn.aclose()
            answered.set()
            await trio.sleep_forever()

        await conn.serve({"Authorize": on_authorize})

    port = await nursery.start(serve_ocpp, on_connect, "127.0.0.1", 0)
    with trio.fail_after(5):
        async with open_ocpp(f"ws://127.0.0.1:{port}", "EVSE009") as conn:
            with pytest.raises(ConnectionLostError):
                await conn.call(call.Authorize("X"), timeout=30)


async def test_reply_after_runs_once_the_result_is_sent(csms):
    events = []

    async def on_remote_start(payload):
        async def start():
            events.append("after")

        events.append("handler")
        return Reply(call_result.RemoteStartTransaction("Accepted"), after=start)

    async with open_ocpp(csms.url, "EVSE010", handlers={"RemoteStartTransaction": on_remote_start}):
        await csms.connected.wait()
        result = await csms.connections["EVSE010"].call(call.RemoteStartTransaction("T"), timeout=5)
        assert result.status == "Accepted"
        await trio.testing.wait_all_tasks_blocked()  # the work after the reply has run
    assert events == ["handler", "after"]


async def raw(url, subprotocols=("ocpp1.6",)):
    return open_websocket_url(url, subprotocols=list(subprotocols))


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('[2,"e1","Heartbeat"]', "ProtocolError"),
        ('[2,"e2","BootNotification",{"chargePointVendor":"V"}]', "OccurenceConstraintViolation"),
        (
            '[2,"e3","BootNotification",{"chargePointVendor":1,"chargePointModel":"M"}]',
            "TypeConstraintViolation",
        ),
        ('[2,"e4","Heartbeat",{"x":1}]', "FormationViolation"),
        (
            '[2,"e5","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"On"}]',
            "PropertyConstraintViolation",
        ),
        ('[2,"e6","Teleport",{}]', "NotImplemented"),
        ('[2,"e7","Reset",{"type":"Hard"}]', "NotSupported"),
        ('[2,"e8","Heartbeat",{', "FormationViolation"),
    ],
)
async def test_bad_input_gets_the_right_call_error_and_others_carry_on(csms, frame, code):
    async with open_ocpp(csms.url, "GOOD01") as good:
        async with open_websocket_url(csms.url + "/BAD01", subprotocols=["ocpp1.6"]) as ws:
            await ws.send_message(frame)
            with trio.fail_after(5):
                answer = json.loads(await ws.get_message())
            assert answer[0] == 4 and answer[2] == code
            assert answer[1] == json.loads(frame[: frame.index(",", 4)] + "]")[1]
            # the bad connection itself still works
            await ws.send_message('[2,"ok","Heartbeat",{}]')
            assert json.loads(await ws.get_message())[:2] == [3, "ok"]
        assert (await good.call(call.Heartbeat(), timeout=5)).current_time == NOW


async def test_result_for_a_call_never_made_is_ignored(csms):
    async with open_websocket_url(csms.url + "/BAD02", subprotocols=["ocpp1.6"]) as ws:
        await ws.send_message('[3,"never-sent",{"currentTime":"x"}]')
        await ws.send_message('[2,"ok","Heartbeat",{}]')
        assert json.loads(await ws.get_message())[:2] == [3, "ok"]


async def test_client_without_ocpp_subprotocol_is_refused(csms):
    from trio_websocket import ConnectionRejected

    # (ocpp2.0.1 is served too now: see test_versions.py; these are versions we do not speak)
    with pytest.raises(ConnectionRejected) as info:
        async with open_websocket_url(csms.url + "/EVSE001", subprotocols=["ocpp2.0", "ocpp1.5"]):
            pass
    assert info.value.status_code == 400


@pytest.mark.parametrize("path", ["/", "/bad%20id", "/" + "x" * 49, "/a%2Fb", "/%00"])
async def test_invalid_charge_point_ids_are_refused_at_the_handshake(csms, path):
    with pytest.raises(ConnectError) as info:
        async with open_ocpp(csms.url + path):
            pass
    assert info.value.status == 404


@pytest.mark.parametrize("transport", ["wsproto", "trio-websocket"])
@pytest.mark.parametrize("path", ["/EVSE001%0A", "/EVSE001%0D%0A", "/%2E", "/%2E%2E", "/..."])
async def test_look_alike_ids_are_refused_on_both_transports(nursery, transport, path):
    """``EVSE001\\n`` is not EVSE001 (a ``$`` would match before the newline and let it
    boot without EVSE001's password), and ``.``/``..`` are not charger names."""
    server = Csms()
    port = await nursery.start(
        lambda task_status: serve_ocpp(
            server.on_connect, "127.0.0.1", 0, transport=transport, task_status=task_status
        )
    )
    with pytest.raises(ConnectError) as info:
        async with open_ocpp(f"ws://127.0.0.1:{port}{path}"):
            pass
    assert info.value.status == 404
    assert server.connections == {}


async def test_cp_id_is_the_last_path_segment(csms):
    async with open_ocpp(csms.url + "/ocpp/site-7/CP%2B1"):
        with trio.fail_after(5):
            await csms.connected.wait()
    assert "CP+1" in csms.connections


async def test_admission_policy_can_refuse_with_status(nursery):
    async def admit(request):
        if request.basic_auth() != ("EVSE001", "s3cret"):
            return Refusal(401, "bad credentials", (("WWW-Authenticate", 'Basic realm="ocpp"'),))
        return None

    async def on_connect(conn):
        await conn.serve({})

    port = await nursery.start(
        lambda task_status: serve_ocpp(
            on_connect, "127.0.0.1", 0, admit=admit, task_status=task_status
        )
    )
    url = f"ws://127.0.0.1:{port}"
    with pytest.raises(ConnectError) as info:
        async with open_ocpp(url, "EVSE001", basic_auth=("EVSE001", "wrong")):
            pass
    assert info.value.status == 401
    async with open_ocpp(url, "EVSE001", basic_auth=("EVSE001", "s3cret")) as conn:
        assert not conn.closed


async def test_oversized_frame_closes_the_connection_with_1009(nursery):
    async def on_connect(conn):
        await conn.serve({})

    port = await nursery.start(
        lambda task_status: serve_ocpp(
            on_connect, "127.0.0.1", 0, max_message_size=1024, task_status=task_status
        )
    )
    async with open_websocket_url(f"ws://127.0.0.1:{port}/BIG", subprotocols=["ocpp1.6"]) as ws:
        await ws.send_message(
            '[2,"big","DataTransfer",{"vendorId":"v","data":"' + "x" * 4096 + '"}]'
        )
        with trio.fail_after(5):
            with pytest.raises(Exception):  # noqa: B017 - ConnectionClosed
                await ws.get_message()
        assert ws.closed is not None and ws.closed.code == 1009


async def test_connection_refused_when_nothing_listens():
    with pytest.raises(ConnectError):
        async with open_ocpp("ws://127.0.0.1:1", "EVSE001", connect_timeout=2):
            pass


async def test_failing_work_after_a_reply_does_not_break_the_connection(csms):
    exploded = trio.Event()

    async def on_reset(payload):
        async def explode():
            exploded.set()
            raise RuntimeError("follow-up failed")

        return Reply(call_result.Reset(enums.ResetStatus.accepted), after=explode)

    async with open_ocpp(csms.url, "EVSE011", handlers={"Reset": on_reset}) as conn:
        await conn.call(call.BootNotification("M", "V"), timeout=5)
        server_side = csms.connections["EVSE011"]
        assert (await server_side.call(call.Reset("Soft"), timeout=5)).status == "Accepted"
        await exploded.wait()
        await trio.testing.wait_all_tasks_blocked()  # and its failure is dealt with
        assert (await conn.call(call.Heartbeat(), timeout=5)).current_time == NOW
        assert not conn.closed


async def test_a_crashing_connection_handler_does_not_stop_the_server(nursery):
    async def on_connect(conn):
        if conn.cp_id == "CRASH":
            raise RuntimeError("bug in the application")
        await conn.serve({"Heartbeat": lambda p: _heartbeat()})

    port = await nursery.start(serve_ocpp, on_connect, "127.0.0.1", 0)
    url = f"ws://127.0.0.1:{port}"
    async with open_ocpp(url, "OK1") as ok:
        async with open_ocpp(url, "CRASH") as crashing:
            with trio.fail_after(5):
                await crashing.wait_closed()
        assert crashing.ws.closed.code == 1011
        assert (await ok.call(call.Heartbeat(), timeout=5)).current_time == NOW
    async with open_ocpp(url, "OK2") as again:  # the server still accepts
        assert (await again.call(call.Heartbeat(), timeout=5)).current_time == NOW


async def _heartbeat():
    return call_result.Heartbeat(NOW)


@pytest.mark.parametrize("transport", ["wsproto", "trio-websocket"])
async def test_a_browser_origin_cannot_connect_as_a_charger(tmp_path, transport):
    """Chargers send no Origin; a page on any site could otherwise open ws://…/EVSE001 (and,
    without passwords, take an offline charger's id and stop its session)."""
    from trio_websocket import ConnectionRejected, open_websocket_url

    from tests.support import running_backend, ws_url

    allowed = frozenset({"https://ops.example"})
    db = str(tmp_path / "v4e.db")
    async with running_backend(db, transport=transport, allowed_origins=allowed) as backend:
        url = f"{ws_url(backend)}/EVSE001"
        for origin in ("http://evil.example", "null", "http://127.0.0.1"):
            with pytest.raises(ConnectionRejected) as info:
                async with open_websocket_url(
                    url, subprotocols=["ocpp1.6"], extra_headers=[(b"Origin", origin.encode())]
                ):
                    pass
            assert info.value.status_code == 403
        assert "EVSE001" not in backend.csms.connected_ids
        headers = [(b"Origin", b"https://ops.example")]
        async with open_websocket_url(url, subprotocols=["ocpp1.6"], extra_headers=headers) as ws:
            await ws.send_message(
                '[2,"b","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]'
            )
            assert '"Accepted"' in await ws.get_message()
        async with open_websocket_url(url, subprotocols=["ocpp1.6"]) as ws:  # no Origin
            await ws.send_message('[2,"h","Heartbeat",{}]')
            assert '"currentTime"' in await ws.get_message()


@pytest.mark.parametrize("transport", ["wsproto", "trio-websocket"])
async def test_a_call_to_a_charger_that_stops_reading_ends_within_its_timeout(
    nursery, transport, autojump_clock
):
    """The send counts against the call's timeout: a charger that stops reading (its
    receive window full) ends the call with CallTimeoutError after ``timeout`` and the
    connection is closed, instead of blocking until a ping fails (76–81 s for a
    --call-timeout of 10)."""
    import socket

    server = Csms()
    port = await nursery.start(
        lambda task_status: serve_ocpp(
            server.on_connect, "127.0.0.1", 0, transport=transport, task_status=task_status
        )
    )
    client = trio.socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with client:
        await _deaf_client_calls(server, client, port)


async def _deaf_client_calls(server, client, port):
    from libv4e import CallTimeoutError, ConnectionLostError

    await client.connect(("127.0.0.1", port))
    request = (
        "GET /DEAF HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
    )
    await client.send(request.encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += await client.recv(1)  # the handshake answer only; then it stops reading
    assert b" 101 " in answer
    await server.connected.wait()
    conn = server.connections["DEAF"]
    big = call.DataTransfer(vendor_id="v", data="x" * 1_000_000)
    outcomes = []
    with trio.fail_after(1000):  # trio's clock: each call may take its 5 s, not forever
        for _ in range(40):
            started = trio.current_time()
            try:
                await conn.call(big, timeout=5)
            except CallTimeoutError:
                outcomes.append("timeout")
            except ConnectionLostError:
                outcomes.append("lost")
                break
            assert trio.current_time() - started <= 5 + 10  # timeout, then a bounded close
    assert "timeout" in outcomes
    assert outcomes[-1] == "lost" or conn.closed
