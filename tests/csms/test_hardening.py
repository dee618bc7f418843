"""Nothing a peer sends may end, starve or steer anything beyond its own
connection or request. Every test runs the real backend on 127.0.0.1 over real sockets."""

from __future__ import annotations

import json

import pytest
import trio
from ocpp.v16 import call
from trio_websocket import open_websocket_url

from bench.flood import FLOOD_CLIENT
from tests.support import api, boot, running_backend, wait_for, ws_url


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "v4e.db")


# -- 1. one frame must not stop the CSMS -------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        '[2, "\\ud800", "Heartbeat", {}]',  # lone surrogate in the unique id
        '[2, "s1", "Heart\\udcffbeat", {}]',  # ... in the action name
        '[2, "s2", "\\ud800", {}]',
    ],
)
async def test_surrogate_in_unique_id_or_action_does_not_stop_the_csms(db, frame, autojump_clock):
    autojump_clock.autojump_threshold = 0.01  # no jump while I/O is in flight
    from libv4e import open_ocpp

    async with running_backend(db, log_flush_interval=0.05) as backend:
        async with open_ocpp(ws_url(backend), "GOOD01") as good:
            await boot(good)
            async with open_websocket_url(
                ws_url(backend) + "/EVIL01", subprotocols=["ocpp1.6"]
            ) as ws:
                # booted: only a booted id's messages are stored
                await ws.send_message(
                    '[2,"b","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]'
                )
                assert json.loads(await ws.get_message())[2]["status"] == "Accepted"
                await ws.send_message(frame)
                with trio.fail_after(5):
                    answer = json.loads(await ws.get_message())
                assert answer[0] in (3, 4)
                assert answer[1] == json.loads(frame)[1]
                await trio.sleep(0.3)  # several log flushes
                await ws.send_message('[2,"ok","Heartbeat",{}]')
                with trio.fail_after(5):
                    assert json.loads(await ws.get_message())[:2] == [3, "ok"]
            assert await good.call(call.Heartbeat(), timeout=5)
            async with api(backend) as client:
                assert (await client.get("/status")).status_code == 200
                logged = (await client.get("/chargers/GOOD01/messages")).json()["messages"]
                assert any(m["action"] == "Heartbeat" for m in logged)
            await backend.csms.flush_log()
            rows = await backend.csms.store.messages("EVIL01", limit=10, offset=0)
            assert rows, "the offending message is logged (sanitized), not lost"


# -- 2. one charger must not exhaust memory or stall the others -----------------------------


@pytest.mark.slow
async def test_a_flood_of_unread_calls_is_closed_for_flooding_and_others_stay_served(db):
    """One charger sends 150,000 calls and never reads an answer: it is closed with 1008
    (each time it comes back), nothing else; a quiet charger is answered throughout.
    (Its latency and the backend's memory growth meanwhile are figures of
    ``python -m bench.flood``, with their targets.)"""
    import sys

    total = 150_000
    async with running_backend(db) as backend:
        from libv4e import open_ocpp

        async with open_ocpp(ws_url(backend), "QUIET01") as quiet:
            await boot(quiet)
            done = trio.Event()
            result = {}
            answered = 0

            async def flood():
                proc = await trio.run_process(
                    [sys.executable, "-c", FLOOD_CLIENT, ws_url(backend) + "/FLOOD01", str(total)],
                    capture_stdout=True,
                )
                result.update(json.loads(proc.stdout))
                done.set()

            async def heartbeats():
                nonlocal answered
                while not done.is_set():
                    await quiet.call(call.Heartbeat(), timeout=5)
                    answered += 1
                    await trio.sleep(0.02)  # wall: paced beside a flood from another process

            with trio.fail_after(300):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(flood)
                    nursery.start_soon(heartbeats)
            assert result["sent"] == total
            assert set(result["closes"]) <= {"1008"}, result  # only ever closed for flooding
            assert answered > 0  # served while the flood ran (every call answered in 5 s)
            assert await quiet.call(call.Heartbeat(), timeout=5)  # and after it


async def test_message_log_retention_keeps_the_newest_rows_and_drops_old_ones(db, autojump_clock):
    autojump_clock.autojump_threshold = 0.01  # no jump while I/O is in flight
    async with running_backend(
        db, log_max_rows=100, log_max_age=3600, log_prune_interval=0.1, log_flush_interval=0.05
    ) as backend:
        from libv4e import open_ocpp

        async with open_ocpp(ws_url(backend), "RET01") as conn:
            await boot(conn)
            await trio.sleep(1)  # the first retention passes, with nothing to drop, are over
            for _ in range(150):
                await conn.call(call.Heartbeat(), timeout=5)
            await trio.sleep(0.5)  # a few retention passes
            store = backend.csms.store
            rows = await store.messages(None, limit=1000, offset=0)
            assert len(rows) <= 100 + 20  # the newest 100, plus what arrived since the pass
            assert rows[0]["action"] == "Heartbeat"
            # age: move the clock forward past the age limit; everything logged is older
            import datetime as dt

            later = backend.csms.clock() + dt.timedelta(hours=2)
            backend.csms.clock = lambda: later
            await backend.csms.flush_log()
            assert await backend.csms.prune_log() > 0
            assert await store.messages(None, limit=10, offset=0) == []


async def test_inbound_calls_are_handled_one_at_a_time_and_a_flood_is_closed_with_1008(
    nursery, autojump_clock
):
    autojump_clock.autojump_threshold = 0.05  # no jump while I/O is in flight
    from trio_websocket import ConnectionClosed

    from libv4e import serve_ocpp
    from libv4e.transport import FlowControl

    release = trio.Event()
    running = []
    most = 0

    async def on_connect(conn):
        async def on_authorize(payload):
            nonlocal most
            running.append(payload.id_tag)
            most = max(most, len(running))
            await release.wait()
            running.remove(payload.id_tag)
            from ocpp.v16 import call_result, datatypes

            return call_result.Authorize(datatypes.IdTagInfo("Accepted"))

        await conn.serve({"Authorize": on_authorize})

    port = await nursery.start(
        lambda task_status: serve_ocpp(
            on_connect, "127.0.0.1", 0, flow=FlowControl(backlog=3), task_status=task_status
        )
    )
    url = f"ws://127.0.0.1:{port}/FLOW01"
    async with open_websocket_url(url, subprotocols=["ocpp1.6"]) as ws:
        for i in range(4):  # one handled + three waiting: within the backlog
            await ws.send_message(f'[2,"a{i}","Authorize",{{"idTag":"T{i}"}}]')
        await trio.sleep(0.2)
        assert most == 1 and running == ["T0"]
        release.set()
        with trio.fail_after(5):
            answers = [json.loads(await ws.get_message()) for _ in range(4)]
        assert [a[1] for a in answers] == ["a0", "a1", "a2", "a3"]  # in order
        assert most == 1
    release = trio.Event()
    async with open_websocket_url(url, subprotocols=["ocpp1.6"]) as ws:

        async def flood():
            for i in range(100):
                await ws.send_message(f'[2,"b{i}","Authorize",{{"idTag":"T{i}"}}]')
                await trio.sleep(0.01)
            await ws.get_message()

        with trio.fail_after(10), pytest.raises(ConnectionClosed) as info:
            await flood()
        assert info.value.reason.code == 1008


def test_token_bucket_paces_calls_after_a_burst():
    from libv4e.transport._flow import FlowControl, TokenBucket

    bucket = TokenBucket(rate=10, burst=3)
    assert [bucket.take(0.0) for _ in range(3)] == [0, 0, 0]
    assert bucket.take(0.0) == pytest.approx(0.1)  # the 4th waits one token's time
    assert bucket.take(0.0) == pytest.approx(0.2)
    assert bucket.take(10.0) == 0  # refilled (capped at the burst)
    assert FlowControl(rate=None).bucket() is None
    with pytest.raises(ValueError):
        FlowControl(backlog=-1)


# -- 3. no web page may drive the chargers ---------------------------------------------------


async def _reset_ok(req):
    from ocpp.v16 import call_result

    return call_result.Reset("Accepted")


async def test_cross_origin_text_plain_post_is_refused_and_seed_curl_still_works(db):
    from libv4e import open_ocpp

    async with running_backend(db) as backend, api(backend) as client:
        received = []

        async def reset(req):
            received.append(req)
            return await _reset_ok(req)

        async with open_ocpp(ws_url(backend), "EVSE001", handlers={"Reset": reset}) as conn:
            await boot(conn)
            # what a browser sends for a form-like fetch: no preflight
            r = await client.post(
                "/commands/reset/EVSE001",
                content=b'{"type":"Soft"}',
                headers={"Origin": "http://evil.example", "Content-Type": "text/plain"},
            )
            assert r.status_code == 403 and r.json()["error"] == "cross_origin"
            r = await client.post(
                "/commands/reset/EVSE001",
                content=b'{"type":"Soft"}',
                headers={"Content-Type": "text/plain"},
            )
            assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type"
            r = await client.post(
                "/commands/reset/EVSE001",
                content=b'{"type":"Soft"}',
                headers={"Origin": "http://evil.example", "Content-Type": "application/json"},
            )
            assert r.status_code == 403
            assert received == []  # nothing reached the charger
            # the seed's curl, verbatim (curl sends Host: localhost:PORT, no Origin)
            r = await client.post(
                "/commands/reset/EVSE001",
                content=b'{"type": "Hard"}',
                headers={
                    "Content-Type": "application/json",
                    "Host": f"localhost:{backend.api_port}",
                },
            )
            assert r.status_code == 200 and r.json()["status"] == "Accepted"
            # our own pages (same origin) may write
            origin = f"http://127.0.0.1:{backend.api_port}"
            r = await client.post(
                "/commands/reset/EVSE001", json={"type": "Soft"}, headers={"Origin": origin}
            )
            assert r.status_code == 200
            # a body-less POST (seed: /demo/clear) needs no content type
            assert (await client.post("/demo/clear")).status_code == 200
            assert len(received) == 2


@pytest.mark.parametrize(
    "host", ["evil.example:8000", "evil.example", "10.0.0.9", "[::2]:80", "a:b"]
)
async def test_dns_rebinding_host_names_are_refused(db, host):
    async with running_backend(db) as backend, api(backend) as client:
        r = await client.get("/status", headers={"Host": host})
        assert r.status_code == 400 and r.json()["error"] == "bad_host"
        for ok in ("localhost", f"localhost:{backend.api_port}", "127.0.0.1:1", "[::1]:8000"):
            assert (await client.get("/status", headers={"Host": ok})).status_code == 200


async def test_allowed_hosts_and_wildcard_binding(tmp_path):
    import contextlib

    from libv4e import CsmsConfig
    from libv4e_apps.csms.backend import BackendConfig, serve_backend

    @contextlib.asynccontextmanager
    async def backend_with(**options):
        config = BackendConfig(
            ws_port=0, api_port=0, db_path=str(tmp_path / "v.db"), csms=CsmsConfig(), **options
        )
        async with trio.open_nursery() as nursery:
            backend = await nursery.start(
                lambda task_status: serve_backend(config, task_status=task_status)
            )
            yield backend
            nursery.cancel_scope.cancel()

    async with backend_with(
        host="127.0.0.1", allowed_hosts=("v4e.lan",), api_token="pr0xy-t0ken"
    ) as backend:
        async with api(backend) as client:
            auth = {"Authorization": "Bearer pr0xy-t0ken"}
            r = await client.get("/status", headers={**auth, "Host": "V4E.lan:8000"})
            assert r.status_code == 200
            r = await client.get("/status", headers={**auth, "Host": "other.lan"})
            assert r.status_code == 400
            # behind a same-host proxy every caller looks local: no token, nothing
            r = await client.post("/demo/clear", headers={"Host": "v4e.lan"})
            assert r.status_code == 401
            assert (await client.get("/id_tags", headers={"Host": "v4e.lan"})).status_code == 401
    # bound to every address: reads need the token too, any IP literal is a valid Host
    async with backend_with(host="0.0.0.0", api_token="t0ken-t0ken") as backend:
        async with api(backend) as client:
            r = await client.get("/status")
            assert r.status_code == 401
            auth = {"Authorization": "Bearer t0ken-t0ken"}
            assert (await client.get("/status", headers=auth)).status_code == 200
            r = await client.get("/status", headers={**auth, "Host": "192.168.1.20:8000"})
            assert r.status_code == 200
            r = await client.get("/status", headers={**auth, "Host": "evil.example"})
            assert r.status_code == 400
            # a non-ASCII token is a 401, not a 500
            r = await client.get("/status", headers={"Authorization": "Bearer tök".encode()})
            assert r.status_code == 401


async def test_generated_token_is_never_logged(tmp_path, caplog):
    from libv4e_apps.csms.api import ApiAccess

    token_file = tmp_path / "v4e.db.api-token"
    access = ApiAccess.for_binding("0.0.0.0", token_file=str(token_file))
    assert access.token
    assert access.token not in caplog.text
    assert str(token_file) in caplog.text
    assert token_file.read_text().strip() == access.token
    assert token_file.stat().st_mode & 0o777 == 0o600


# -- 5. no request may hang --------------------------------------------------------------


async def _raw_post(stream, port, path, body, pause):
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    await stream.send_all(head)  # headers and body in separate TCP segments
    await trio.sleep(pause)
    await stream.send_all(body)
    data = b""
    with trio.fail_after(5):  # was: no answer at all (the client gave up after 60 s)
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(65536)
            assert chunk, "connection closed without an answer"
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(
            next(
                line.split(b":")[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
        )
        while len(rest) < length:
            rest += await stream.receive_some(65536)
    return int(head.split(b" ")[1]), json.loads(rest)


@pytest.mark.parametrize("pause", [0.0, 0.05, 0.3])
async def test_keep_alive_requests_with_body_in_a_separate_segment_are_answered(
    db, pause, autojump_clock
):
    autojump_clock.autojump_threshold = 0.02  # no jump while I/O is in flight
    async with running_backend(db) as backend:
        port = backend.api_port
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            stream.socket.setsockopt(6, 1, 1)  # TCP_NODELAY: really separate segments
            for _ in range(3):
                # a route that takes no body answers before the body arrives ...
                status, _ = await _raw_post(stream, port, "/demo/clear", b"{}", pause)
                assert status == 200
                # ... and the next request on the same connection is still answered
                status, body = await _raw_post(
                    stream, port, "/id_tags", b'{"id_tag": "SPLIT1"}', pause
                )
                assert status == 201 and body["id_tag"]["id_tag"] == "SPLIT1"
                status, body = await _raw_post(stream, port, "/demo/trigger/nope", b"{}", pause)
                assert status == 404


# -- 4. impostors and junk -------------------------------------------------------------------


async def test_impostor_without_password_cannot_take_over_a_live_charger(db):
    from libv4e import ConnectError, open_ocpp

    async with running_backend(db, duplicate_probe_timeout=1.0) as backend:
        async with open_ocpp(ws_url(backend), "EVSE001") as first:
            await boot(first)
            with pytest.raises(ConnectError) as info:
                async with open_ocpp(ws_url(backend), "EVSE001"):
                    pass
            assert info.value.status == 409
            assert await first.call(call.Heartbeat(), timeout=5)  # still the one in charge
            assert backend.csms.connection("EVSE001") is not None
        # a charger whose old socket is dead gets back in (the probe fails): the first
        # connection is a raw socket that completed the handshake and then went silent
        port = backend.ws_port
        async with await raw_handshake(port, "/EVSE002"):

            async def registered():
                return backend.csms.connection("EVSE002") is not None

            await wait_for(registered)
            with trio.fail_after(10):
                async with open_ocpp(ws_url(backend), "EVSE002") as second:
                    assert await second.call(call.Heartbeat(), timeout=5)


async def raw_handshake(port, path):
    """A websocket handshake by hand; the returned stream is never read again."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
        ).encode()
    )
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive_some(4096)
    assert data.startswith(b"HTTP/1.1 101"), data
    return stream


async def test_with_a_password_the_newer_connection_replaces_the_older(db):
    from libv4e import open_ocpp

    password = "sixteen-chars-pw!"
    async with running_backend(db) as backend:
        await backend.csms.passwords.set("EVSE001", password)
        url = ws_url(backend)
        async with open_ocpp(url, "EVSE001", basic_auth=("EVSE001", password)) as first:
            await boot(first)
            async with open_ocpp(url, "EVSE001", basic_auth=("EVSE001", password)) as second:
                assert await second.call(call.Heartbeat(), timeout=5)
                with trio.fail_after(5):
                    await first.wait_closed()


async def test_only_booted_chargers_get_a_lasting_record_and_records_can_be_deleted(
    db, autojump_clock
):
    autojump_clock.autojump_threshold = 0.01  # no jump while I/O is in flight
    from libv4e import open_ocpp

    async with running_backend(db) as backend, api(backend) as client:
        for i in range(20):  # junk ids that never boot
            async with open_ocpp(ws_url(backend), f"JUNK{i:03d}") as junk:
                await junk.call(call.Heartbeat(), timeout=5)
        async with open_ocpp(ws_url(backend), "REAL01") as real:
            await boot(real)
            r = await client.delete("/chargers/REAL01")
            assert r.status_code == 409 and r.json()["error"] == "charger_connected"
        await trio.sleep(0.3)
        status = (await client.get("/status")).json()
        assert set(status["charge_points"]) == {"REAL01"}
        await backend.csms.flush_log()
        stored = {s.cp_id for s in await backend.csms.store.load_chargers()}
        assert stored == {"REAL01"}
        r = await client.delete("/chargers/REAL01")
        assert r.status_code == 200 and r.json() == {"cp_id": "REAL01", "deleted": True}
        assert (await client.get("/chargers/REAL01")).status_code == 404
        assert (await client.delete("/chargers/REAL01")).status_code == 404
        assert await backend.csms.store.load_chargers() == []


async def test_loud_warning_when_ocpp_binds_beyond_loopback_without_passwords(db, caplog):
    from libv4e import CsmsConfig
    from libv4e_apps.csms.backend import BackendConfig, serve_backend

    config = BackendConfig(host="0.0.0.0", ws_port=0, api_port=0, db_path=db, api_token="x" * 20)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: serve_backend(config, task_status=task_status))
        nursery.cancel_scope.cancel()
    assert "chargers without a password may connect" in caplog.text
    caplog.clear()
    config = BackendConfig(
        host="0.0.0.0",
        ws_port=0,
        api_port=0,
        db_path=db,
        api_token="x" * 20,
        csms=CsmsConfig(require_password=True),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: serve_backend(config, task_status=task_status))
        nursery.cancel_scope.cancel()
    assert "chargers without a password may connect" not in caplog.text


# -- 6. smaller ------------------------------------------------------------------------------


async def test_huge_transaction_id_is_404_not_500(db):
    async with running_backend(db) as backend, api(backend) as client:
        for tx in ("12345678901234567890", str(2**63), str(2**63 - 1), "99999999999999999999999"):
            r = await client.get(f"/transactions/{tx}")
            assert r.status_code == 404, (tx, r.text)
            assert r.json()["error"] == "unknown_transaction"


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        (
            '[2,"m1","MeterValues",{"connectorId":9223372036854775808,"meterValue":[{"timestamp":"2024-05-01T12:00:00Z","sampledValue":[{"value":"1"}]}]}]',
            "connectorId",
        ),
        (
            '[2,"m2","MeterValues",{"connectorId":1,"transactionId":99999999999999999999,"meterValue":[{"timestamp":"2024-05-01T12:00:00Z","sampledValue":[{"value":"1"}]}]}]',
            "transactionId",
        ),
        (
            '[2,"m3","StatusNotification",{"connectorId":-1,"errorCode":"NoError","status":"Available"}]',
            "connectorId",
        ),
        (
            '[2,"m4","StartTransaction",{"connectorId":1,"idTag":"T","meterStart":1e30,"timestamp":"2024-05-01T12:00:00Z"}]',
            "meterStart",
        ),
        (
            '[2,"m5","StartTransaction",{"connectorId":1,"idTag":"T","meterStart":-5,"timestamp":"2024-05-01T12:00:00Z"}]',
            "meterStart",
        ),
        (
            '[2,"m6","StopTransaction",{"transactionId":1,"meterStop":1e30,"timestamp":"2024-05-01T12:00:00Z"}]',
            "meterStop",
        ),
        (
            '[2,"m7","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":"2024-05-01T12:00:00Z","sampledValue":[{"value":"1"}]}],"transactionId":-99999999999}]',
            "transactionId",
        ),
    ],
)
async def test_numbers_out_of_range_get_property_constraint_violation(db, frame, field):
    async with running_backend(db) as backend:
        async with open_websocket_url(ws_url(backend) + "/BOUNDS1", subprotocols=["ocpp1.6"]) as ws:
            await ws.send_message(frame)
            with trio.fail_after(5):
                answer = json.loads(await ws.get_message())
            assert answer[:2] == [4, json.loads(frame)[1]]
            if "1e30" in frame:  # a float where an integer belongs: the schema's answer
                assert answer[2] in ("TypeConstraintViolation", "PropertyConstraintViolation")
            else:
                assert answer[2] == "PropertyConstraintViolation"
                assert field in answer[3]
            await ws.send_message('[2,"ok","Heartbeat",{}]')
            assert json.loads(await ws.get_message())[:2] == [3, "ok"]
        await backend.csms.flush_log()
        assert len(backend.csms.transactions) == 0
        assert (
            await backend.csms.store.transactions(cp_id=None, active=None, limit=5, offset=0) == []
        )


async def test_invalid_utf8_text_frame_is_closed_with_1007_and_logged(db, caplog):
    async with running_backend(db) as backend:
        stream = await raw_handshake(backend.ws_port, "/UTF8BAD")
        async with stream:
            payload = b'[2,"x","Heartbeat",{"a":"\xff\xfe"}]'
            mask = b"\x01\x02\x03\x04"
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            await stream.send_all(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
            data = b""
            with trio.fail_after(5):
                while True:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        break
                    data += chunk
            assert data[:1] == b"\x88", data  # a close frame ...
            assert int.from_bytes(data[2:4], "big") == 1007  # ... with code 1007
        assert "1007" in caplog.text and "UTF8BAD" in caplog.text


async def test_password_guessing_is_throttled_per_id_and_per_address(db, caplog):
    from libv4e import ConnectError, CsmsConfig, open_ocpp
    from libv4e.csms._throttle import ThrottlePolicy

    password = "the-right-password"
    throttle = ThrottlePolicy(per_id=3, per_address=5, window=30)
    async with running_backend(db, auth_throttle=throttle) as backend:
        for cp in ("GUARD1", "GUARD2"):
            await backend.csms.passwords.set(cp, password)

        async def attempt(cp, pw):
            try:
                async with open_ocpp(ws_url(backend), cp, basic_auth=(cp, pw)):
                    return 101
            except ConnectError as exc:
                return exc.status

        statuses = [await attempt("GUARD1", f"wrong-guess-{i:06d}") for i in range(5)]
        assert statuses == [401, 401, 401, 429, 429]  # per id: 3 failures, then refused
        # even the right password waits now (no PBKDF2 check while throttled)
        assert await attempt("GUARD1", password) == 429
        # per address: 2 more failures on another id reach 5 from this address
        assert [await attempt("GUARD2", "wrong-guess-xxxxxx") for _ in range(3)] == [401, 401, 429]
        assert await attempt("GUARD2", password) == 429
        assert "127.0.0.1:" in caplog.text  # the refusal logs name the remote address
    assert CsmsConfig().auth_throttle.per_id == 5


def test_guessing_from_many_addresses_does_not_lock_the_real_charger_out():
    """200 wrong passwords for a known id from 10 addresses: every guessing address is
    throttled, the real charger (its own address) is not."""
    from libv4e.csms._throttle import FailureThrottle, ThrottlePolicy

    throttle = FailureThrottle(ThrottlePolicy())
    refused = 0
    for i in range(200):
        address, now = f"10.0.0.{i % 10}", i * 0.1
        if throttle.retry_after("EVSE001", address, now) > 0:
            refused += 1
        else:
            throttle.failed("EVSE001", address, now)
    assert refused >= 200 - 10 * 5, "each guessing address gets its 5 tries a minute"
    assert throttle.retry_after("EVSE001", "192.0.2.7", 20.0) == 0


def test_failure_throttle_window_slides():
    from libv4e.csms._throttle import FailureThrottle, ThrottlePolicy, address_of

    throttle = FailureThrottle(ThrottlePolicy(per_id=2, per_address=10, window=10))
    throttle.failed("A", "1.2.3.4", 0)
    assert throttle.retry_after("A", "1.2.3.4", 1) == 0
    throttle.failed("A", "1.2.3.4", 1)
    assert throttle.retry_after("A", "1.2.3.4", 2) == pytest.approx(8)
    assert throttle.retry_after("A", "9.9.9.9", 2) == 0, "the guesser is throttled, not the id"
    assert throttle.retry_after("B", "1.2.3.4", 2) == 0
    assert throttle.retry_after("A", "1.2.3.4", 10.5) == 0  # the first failure expired
    assert throttle.retry_after("A", "1.2.3.4", 20) == 0 and len(throttle) == 0
    assert address_of("127.0.0.1:5555") == "127.0.0.1"
    assert address_of("[::1]:80") == "::1"


def _v4e(*args, cwd):
    import os
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "libv4e_apps", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_startup_errors_are_one_line_naming_the_option(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for flag, env in (("--ws-port", "V4E_WS_PORT"), ("--api-port", "V4E_API_PORT")):
            other = "--api-port" if flag == "--ws-port" else "--ws-port"
            args = ("csms", flag, str(port), other, "0", "--db", str(tmp_path / "a.db"))
            result = _v4e(*args, cwd=tmp_path)
            assert result.returncode == 2
            errors = [line for line in result.stderr.splitlines() if line.startswith("v4e:")]
            assert errors == [
                f"v4e: cannot listen: port {port} is already in use — choose another with "
                f"{flag} ({env})"
            ]
            assert "Traceback" not in result.stderr
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"not a database " * 100)
    result = _v4e("csms", "--ws-port", "0", "--api-port", "0", "--db", str(corrupt), cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("v4e:")]
    assert "corrupt.db" in line and "--db" in line
    # a database path that cannot be created (its "directory" is a file)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    db = str(blocker / "v4e.db")
    result = _v4e("csms", "--ws-port", "0", "--api-port", "0", "--db", db, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("v4e:")]
    assert "not-a-dir" in line and "--db" in line


async def test_405_names_the_allowed_methods_and_the_document_lists_error_statuses(db):
    async with running_backend(db) as backend, api(backend) as client:
        r = await client.put("/status")
        assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"
        assert "GET" in r.headers["allow"]
        document = (await client.get("/openapi.json")).json()
        reset = document["paths"]["/commands/reset/{cp_id}"]["post"]
        assert {"200", "403", "404", "415", "422", "502", "504"} <= set(reset["responses"])
        assert reset["requestBody"]["required"] is True
        assert document["paths"]["/chargers/{cp_id}"]["delete"]


async def test_peer_that_never_reads_is_closed_and_others_are_served(db):
    from libv4e import open_ocpp

    async with running_backend(db) as backend, open_ocpp(ws_url(backend), "QUIET02") as quiet:
        await boot(quiet)
        stream = await raw_handshake(backend.ws_port, "/NOREAD1")
        mask = b"\x01\x02\x03\x04"
        sent, closed = 0, False
        async with stream:
            with trio.fail_after(20):
                try:
                    while sent < 150_000:  # never reads a byte
                        payload = f'[2,"{sent}","Heartbeat",{{}}]'.encode()
                        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                        frame = bytes([0x81, 0x80 | len(payload)]) + mask + masked
                        await stream.send_all(frame)
                        sent += 1
                        if sent % 500 == 0:
                            assert await quiet.call(call.Heartbeat(), timeout=1)
                except trio.BrokenResourceError:
                    closed = True  # the server closed the socket (kernel buffers took the rest)
        assert closed and sent < 150_000
        server_side = backend.csms.connection("NOREAD1")
        if server_side is not None:
            with trio.fail_after(5):
                await server_side.wait_closed()
        assert backend.csms.connection("NOREAD1") is None
        assert await quiet.call(call.Heartbeat(), timeout=5)


async def test_log_writer_survives_any_exception_and_drops_only_the_offending_rows(
    db, autojump_clock
):
    autojump_clock.autojump_threshold = 0.01  # no jump while I/O is in flight
    from libv4e import CsmsConfig, SqliteStore, open_ocpp
    from libv4e_apps.csms.backend import BackendConfig, serve_backend

    class PoisonedStore(SqliteStore):
        async def log_messages(self, records):
            if any(r.cp_id == "POISON1" for r in records):
                raise RuntimeError("a bug in a store backend")
            await super().log_messages(records)

    store = PoisonedStore(db)
    config = BackendConfig(
        host="127.0.0.1",
        ws_port=0,
        api_port=0,
        db_path=db,
        csms=CsmsConfig(log_flush_interval=0.05),
    )
    async with trio.open_nursery() as nursery:
        backend = await nursery.start(
            lambda task_status: serve_backend(config, store=store, task_status=task_status)
        )
        async with (
            open_ocpp(ws_url(backend), "POISON1") as bad,
            open_ocpp(ws_url(backend), "GOOD02") as good,
        ):
            await bad.call(call.BootNotification("M", "V"), timeout=5)  # stored once booted
            await good.call(call.BootNotification("M", "V"), timeout=5)
            for _ in range(3):
                await bad.call(call.Heartbeat(), timeout=5)
                await good.call(call.Heartbeat(), timeout=5)
                await trio.sleep(0.1)  # several flushes, some with both chargers' rows
            assert await good.call(call.Heartbeat(), timeout=5)
            await backend.csms.flush_log()
            good_rows = await store.messages("GOOD02", limit=100, offset=0)
            assert len(good_rows) == 5 * 2  # every call and answer of the good charger
            assert await store.messages("POISON1", limit=100, offset=0) == []
        nursery.cancel_scope.cancel()


async def test_refused_calls_are_paced_by_the_same_rate_limit(nursery):
    from libv4e import serve_ocpp
    from libv4e.transport import FlowControl

    async def on_connect(conn):
        await conn.serve({})

    port = await nursery.start(
        lambda task_status: serve_ocpp(
            on_connect,
            "127.0.0.1",
            0,
            flow=FlowControl(rate=50, burst=10),
            task_status=task_status,
        )
    )
    async with open_websocket_url(f"ws://127.0.0.1:{port}/RATE01", subprotocols=["ocpp1.6"]) as ws:
        start = trio.current_time()
        for i in range(40):
            await ws.send_message(f'[2,"t{i}","Teleport",{{}}]')
            answer = json.loads(await ws.get_message())
            assert answer[:3] == [4, f"t{i}", "NotImplemented"]
        elapsed = trio.current_time() - start
    assert elapsed >= (40 - 10) / 50 * 0.9  # 10 at once, then 50 per second
