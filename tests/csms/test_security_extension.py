"""The OCPP 1.6 security extension (Security Whitepaper ed. 3): security profile 3 with real
TLS client certificates, SignCertificate → CertificateSigned → reconnect with mTLS (with a
charger written with raw ``websockets`` frames), security events, AuthorizationKey rotation
and its redaction everywhere, the certificate and signed firmware/log commands."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import sqlite3
import ssl

import httpx
import pytest
import trio
import trustme
from ocpp.v16 import call, call_result, datatypes

from libv4e import ConnectError, CsmsConfig, open_ocpp
from libv4e.csms import CertificateAuthority
from libv4e.protocol import certificate_signing_request, new_private_key, private_key_pem
from libv4e.protocol._validation import validate
from libv4e_apps.csms.backend import BackendConfig, serve_backend
from tests.support import accepting_set_variables, boot, wait_for

pytestmark = pytest.mark.usefixtures("both_transports")


@pytest.fixture(scope="module")
def server_ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def charger_ca():
    return CertificateAuthority.create("test charger CA")


def server_context(server_ca, charger_ca):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.load_verify_locations(cadata=charger_ca.certificate_pem)
    return ctx


def client_context(server_ca, tmp_path, chain=None, key=None):
    ctx = ssl.create_default_context()
    server_ca.configure_trust(ctx)
    if chain is not None:
        cert_file, key_file = tmp_path / "client.pem", tmp_path / "client-key.pem"
        cert_file.write_text(chain)
        key_file.write_text(key)
        ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


def issue(ca, cp_id):
    """A charger key and the chain ``ca`` signs for it (subject CN ``cp_id``)."""
    key = new_private_key()
    chain = ca.sign_csr(certificate_signing_request(key, cp_id), cp_id)
    return chain, private_key_pem(key)


@contextlib.asynccontextmanager
async def backend_with(tmp_path, *, ssl_context=None, ca=None, **csms):
    config = BackendConfig(
        host="127.0.0.1",
        ws_port=0,
        api_port=0,
        db_path=str(tmp_path / "v4e.db"),
        csms=CsmsConfig(**csms),
        ssl_context=ssl_context,
        charger_ca=ca,
    )
    async with trio.open_nursery() as nursery:
        backend = await nursery.start(
            lambda task_status: serve_backend(config, task_status=task_status)
        )
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{backend.api_port}", timeout=10
        ) as client:
            yield backend, client
        nursery.cancel_scope.cancel()


async def connects(url, cp_id, ctx, basic_auth=None):
    """Whether ``cp_id`` gets in and boots; else the refusal's HTTP status (None: TLS)."""
    try:
        async with open_ocpp(
            url, cp_id, ssl_context=ctx, basic_auth=basic_auth, connect_timeout=3
        ) as conn:
            result = await boot(conn)
            return str(result.status)
    except ConnectError as exc:
        return exc.status


async def test_profile_3_admits_only_a_certificate_for_this_charger_from_the_ca(
    tmp_path, server_ca, charger_ca
):
    ctx = server_context(server_ca, charger_ca)
    async with backend_with(tmp_path, ssl_context=ctx, ca=charger_ca) as (backend, client):
        url = f"wss://127.0.0.1:{backend.ws_port}"
        r = await client.put("/chargers/EVSE001/security_profile", json={"profile": 3})
        assert r.status_code == 200, r.text
        assert r.json()["profile"] == 3
        good = client_context(
            server_ca, tmp_path / "a", *_mk(tmp_path / "a", charger_ca, "EVSE001")
        )
        assert await connects(url, "EVSE001", good) == "Accepted"
        # no certificate (a password does not help: that would be a downgrade)
        plain = client_context(server_ca, tmp_path)
        await client.put("/chargers/EVSE001/password", json={"password": "correct-horse-battery"})
        assert await connects(url, "EVSE001", plain, ("EVSE001", "correct-horse-battery")) == 403
        # a certificate from another CA: the TLS handshake fails
        evil = CertificateAuthority.create("evil CA")
        wrong_ca = client_context(server_ca, tmp_path / "b", *_mk(tmp_path / "b", evil, "EVSE001"))
        assert await connects(url, "EVSE001", wrong_ca) is None
        # the right CA, but another charger's certificate
        other = client_context(
            server_ca, tmp_path / "c", *_mk(tmp_path / "c", charger_ca, "EVSE002")
        )
        assert await connects(url, "EVSE001", other) == 403
        # ... which is fine for EVSE002 itself (profile 1, a certificate is more than enough)
        assert await connects(url, "EVSE002", other) == "Accepted"
        # the record survives a restart of the CSMS (stored)
    async with backend_with(tmp_path, ssl_context=ctx, ca=charger_ca) as (backend, client):
        url = f"wss://127.0.0.1:{backend.ws_port}"
        assert (await client.get("/chargers/EVSE001/security")).json()["profile"] == 3
        assert await connects(url, "EVSE001", plain) == 403


def _mk(folder, ca, cp_id):
    folder.mkdir(exist_ok=True)
    return issue(ca, cp_id)


async def test_profile_2_refuses_plain_ws_and_3_needs_a_ca(tmp_path):
    async with backend_with(tmp_path) as (backend, client):
        url = f"ws://127.0.0.1:{backend.ws_port}"
        assert await connects(url, "EVSE001", None) == "Accepted"
        r = await client.put("/chargers/EVSE001/security_profile", json={"profile": 2})
        assert r.status_code == 200
        assert await connects(url, "EVSE001", None) == 403  # no downgrade to ws://
        r = await client.put("/chargers/EVSE001/security_profile", json={"profile": 3})
        assert r.status_code == 422
        assert "charger CA" in r.json()["message"]
        r = await client.put("/chargers/EVSE001/security_profile", json={"profile": 4})
        assert r.status_code in (400, 422)


def _raw_charger(url, cp_id, ctx, script, headers=None):
    """Run ``script(ws)`` on a raw ``websockets`` connection (asyncio, in a thread)."""
    import websockets

    async def main():
        async with websockets.connect(
            url + "/" + cp_id,
            subprotocols=["ocpp1.6"],
            ssl=ctx,
            additional_headers=headers or {},
            open_timeout=5,
        ) as ws:
            return await script(ws)

    return asyncio.run(main())


async def _call(ws, unique_id, action, payload):
    validate("call", action, payload)  # what we send is valid
    await ws.send(json.dumps([2, unique_id, action, payload]))
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if frame[0] in (3, 4) and frame[1] == unique_id:
            return frame


async def _expect_call(ws, action):
    frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert frame[0] == 2 and frame[2] == action, frame
    validate("call", action, frame[3])  # what the CSMS sends is valid
    return frame


async def test_sign_install_reconnect_with_mtls_with_a_raw_websockets_charger(
    tmp_path, server_ca, charger_ca
):
    ctx = server_context(server_ca, charger_ca)
    key = new_private_key()
    csr = certificate_signing_request(key, "EVSE001", organization="Test CPO")
    basic = "Basic " + base64.b64encode(b"EVSE001:correct-horse-battery").decode()
    got: dict = {}

    async def first_session(ws):
        boot_answer = await _call(
            ws, "1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}
        )
        assert boot_answer[2]["status"] == "Accepted"
        answer = await _call(ws, "2", "SignCertificate", {"csr": csr})
        assert answer[0] == 3 and answer[2] == {"status": "Accepted"}
        signed = await _expect_call(ws, "CertificateSigned")
        got["chain"] = signed[3]["certificateChain"]
        await ws.send(json.dumps([3, signed[1], {"status": "Accepted"}]))
        change = await _expect_call(ws, "ChangeConfiguration")
        assert change[3] == {"key": "SecurityProfile", "value": "3"}
        await ws.send(json.dumps([3, change[1], {"status": "Accepted"}]))
        await asyncio.sleep(0.2)
        return True

    async with backend_with(tmp_path, ssl_context=ctx, ca=charger_ca) as (backend, client):
        url = f"wss://127.0.0.1:{backend.ws_port}"
        await client.put("/chargers/EVSE001/password", json={"password": "correct-horse-battery"})
        # profile 3 cannot be asked before the charger holds a certificate
        async with trio.open_nursery() as nursery:
            done = trio.Event()

            async def charger():
                await trio.to_thread.run_sync(
                    _raw_charger,
                    url,
                    "EVSE001",
                    client_context(server_ca, tmp_path),
                    first_session,
                    {"Authorization": basic},
                )
                done.set()

            nursery.start_soon(charger)
            with trio.fail_after(15):
                while True:
                    sec = (await client.get("/chargers/EVSE001/security")).json()
                    certs = sec.get("certificates", [])
                    if certs and certs[0]["status"] == "Accepted":
                        break
                    await trio.sleep(0.05)  # wall: the charger runs in asyncio, polled
            cert = certs[0]
            assert cert["certificate_type"] == "ChargePointCertificate"
            assert cert["subject"] == "EVSE001"
            assert 364 <= cert["expires_in_days"] <= 366
            assert cert["expiring"] is False
            r = await client.post(
                "/commands/change_configuration/EVSE001",
                json={"key": "SecurityProfile", "value": "3"},
            )
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "Accepted"
            with trio.fail_after(15):
                await done.wait()
        assert (await client.get("/chargers/EVSE001/security")).json()["profile"] == 3
        # the chain: the charger's certificate for EVSE001, then the CA
        from libv4e.protocol import certificate_info, load_pem_chain

        leaf, root = load_pem_chain(got["chain"])
        assert certificate_info(leaf).subject_cn == "EVSE001"
        assert root.subject == charger_ca.certificate.subject

        # reconnect with mutual TLS: the signed certificate is the credential
        async def second_session(ws):
            answer = await _call(
                ws, "1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}
            )
            return answer[2]["status"]

        mtls = client_context(server_ca, tmp_path, got["chain"], private_key_pem(key))
        status = await trio.to_thread.run_sync(_raw_charger, url, "EVSE001", mtls, second_session)
        assert status == "Accepted"
        # and the password alone is no longer enough (profile 3: no downgrade)
        import websockets

        with pytest.raises(websockets.exceptions.InvalidStatus) as info:
            await trio.to_thread.run_sync(
                _raw_charger,
                url,
                "EVSE001",
                client_context(server_ca, tmp_path),
                second_session,
                {"Authorization": basic},
            )
        assert info.value.response.status_code == 403


async def test_an_expiring_charger_certificate_shows(tmp_path, charger_ca):
    """With a short validity (``--charger-certificate-days``) the record says expiring."""
    from libv4e import Charger, ChargerConfig

    async with backend_with(tmp_path, ca=charger_ca, charger_certificate_days=7) as (
        backend,
        client,
    ):
        charger = Charger(ChargerConfig(cp_id="EVSE001", reconnect_min=0.05))
        async with trio.open_nursery() as nursery:
            await nursery.start(charger.run, f"ws://127.0.0.1:{backend.ws_port}")

            async def online():
                return charger.online

            await wait_for(online, timeout=20)
            await client.post(
                "/commands/extended_trigger_message/EVSE001",
                json={"requested_message": "SignChargePointCertificate"},
            )

            async def signed():
                certs = (await client.get("/chargers/EVSE001/security")).json()["certificates"]
                return [c for c in certs if c["status"] == "Accepted"]

            (cert,) = await wait_for(signed, timeout=20)
            assert cert["expiring"] is True and 6 <= cert["expires_in_days"] <= 7
            nursery.cancel_scope.cancel()


async def test_sign_certificate_rejects_a_csr_for_another_id(tmp_path, charger_ca):
    async with backend_with(tmp_path, ca=charger_ca) as (backend, client):
        async with open_ocpp(f"ws://127.0.0.1:{backend.ws_port}", "EVSE001") as conn:
            await boot(conn)
            result = await conn.call(
                call.SignCertificate(csr=certificate_signing_request(new_private_key(), "EVIL")),
                timeout=5,
            )
            assert str(result.status) == "Rejected"
            result = await conn.call(call.SignCertificate(csr="not a csr"), timeout=5)
            assert str(result.status) == "Rejected"
        sec = (await client.get("/chargers/EVSE001/security")).json()
        assert sec["certificates"] == []
    # without a CA the CSMS rejects every CSR
    async with backend_with(tmp_path) as (backend, client):
        async with open_ocpp(f"ws://127.0.0.1:{backend.ws_port}", "EVSE001") as conn:
            await boot(conn)
            csr = certificate_signing_request(new_private_key(), "EVSE001")
            result = await conn.call(call.SignCertificate(csr=csr), timeout=5)
            assert str(result.status) == "Rejected"


async def test_security_events_with_and_without_tech_info(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="libv4e.csms.security")
    async with backend_with(tmp_path) as (backend, client):
        url = f"ws://127.0.0.1:{backend.ws_port}"
        async with open_ocpp(url, "EVSE001") as conn:
            await boot(conn)
            # raw payload without the optional techInfo (was FormationViolation)
            await conn.call(
                call.SecurityEventNotification(
                    type="StartupOfTheDevice", timestamp="2026-12-03T10:00:00Z", tech_info=None
                ),
                timeout=5,
            )
            await conn.call(
                call.SecurityEventNotification(
                    type="InvalidTLSVersion",
                    timestamp="2026-12-03T10:00:01Z",
                    tech_info="TLS 1.0\nFORGED LOG LINE",
                ),
                timeout=5,
            )
            await conn.call(
                call.SecurityEventNotification(
                    type="VendorSpecificThing", timestamp="2026-12-03T10:00:02Z", tech_info="x"
                ),
                timeout=5,
            )
        events = (await client.get("/chargers/EVSE001/security_events")).json()
        assert [e["type"] for e in events["events"]] == [
            "VendorSpecificThing",
            "InvalidTLSVersion",
            "StartupOfTheDevice",
        ]
        assert [e["critical"] for e in events["events"]] == [False, False, True]
        assert events["events"][2]["tech_info"] is None
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert any("StartupOfTheDevice" in r.getMessage() for r in warnings)
        assert not any("\n" in r.getMessage() for r in caplog.records)
        metrics = (await client.get("/metrics")).text
        assert 'v4e_security_events_total{critical="true",type="StartupOfTheDevice"} 1.0' in metrics
        assert 'type="other"' in metrics and "VendorSpecificThing" not in metrics
        assert (await client.get("/chargers/NOPE/security_events")).status_code == 404


KEY = "new-authorization-key-0123456789"


async def test_authorization_key_rotation_and_redaction_everywhere(tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    db = tmp_path / "v4e.db"
    async with backend_with(tmp_path, authorization_key_grace=60.0) as (backend, client):
        url = f"ws://127.0.0.1:{backend.ws_port}"
        await client.put("/chargers/EVSE001/password", json={"password": "old-password-123456"})
        received = []

        async def change_configuration(msg):
            received.append(msg)
            return call_result.ChangeConfiguration("Accepted")

        async def get_configuration(msg):
            return call_result.GetConfiguration(
                configuration_key=[
                    datatypes.KeyValue(key="AuthorizationKey", readonly=False, value=KEY),
                    datatypes.KeyValue(key="HeartbeatInterval", readonly=False, value="30"),
                ]
            )

        handlers = {
            "ChangeConfiguration": change_configuration,
            "GetConfiguration": get_configuration,
        }
        async with open_ocpp(
            url, "EVSE001", basic_auth=("EVSE001", "old-password-123456"), handlers=handlers
        ) as conn:
            await boot(conn)
            r = await client.post("/chargers/EVSE001/authorization_key", json={"key": KEY})
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "Accepted"
            assert KEY not in r.text
            # the generic command rotates too (it used to leave the password unchanged)
            r = await client.post(
                "/commands/change_configuration/EVSE001",
                json={"key": "AuthorizationKey", "value": KEY + "x"},
            )
            assert r.status_code == 200 and KEY not in r.text
            r = await client.post("/commands/get_configuration/EVSE001", json={})
            assert r.status_code == 200 and KEY not in r.text, r.text
            # a generated key
            r = await client.post("/chargers/EVSE001/authorization_key", json={})
            assert r.status_code == 200 and r.json()["authorization_key"]["rotated"]
            generated = received[-1].value
            assert len(generated) == 40 and generated not in r.text
            r = await client.post("/chargers/EVSE001/authorization_key", json={"key": "short"})
            assert r.status_code == 400 or r.status_code == 422
            assert "short" not in r.text
        # the new key works; the previous one still does during the reconnect window
        assert await connects(url, "EVSE001", None, ("EVSE001", generated)) == "Accepted"
        assert await connects(url, "EVSE001", None, ("EVSE001", KEY + "x")) == "Accepted"
        assert await connects(url, "EVSE001", None, ("EVSE001", "old-password-123456")) == 401
        messages = (await client.get("/chargers/EVSE001/messages?limit=200")).text
        assert "***" in messages
    for secret in (KEY, generated):
        assert secret not in messages
        assert not any(secret in r.getMessage() for r in caplog.records)
        assert secret not in capsys.readouterr().out
        rows = sqlite3.connect(db).execute("SELECT * FROM messages").fetchall()
        assert rows and not any(secret in str(row) for row in rows)
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path


async def test_authorization_key_rotation_on_201_and_redaction_everywhere(tmp_path, caplog, capsys):
    """On a 2.0.1 station the AuthorizationKey is SetVariables SecurityCtrlr.BasicAuthPassword:
    the rotation works the same (the new key opens, the old one stops), and the key is in
    no answer, message log, database row, log line or file — even when a station answers
    GetVariables with the password it should never read back."""
    from ocpp.v201 import call_result as result201
    from ocpp.v201 import datatypes as data201

    caplog.set_level(logging.DEBUG)
    db = tmp_path / "v4e.db"
    async with backend_with(tmp_path, authorization_key_grace=60.0) as (backend, client):
        url = f"ws://127.0.0.1:{backend.ws_port}"
        await client.put("/chargers/EVSE001/password", json={"password": "old-password-123456"})
        received = []

        set_variables = accepting_set_variables(received)

        async def get_variables(msg):  # a careless station: it reads the password back
            return result201.GetVariables(
                get_variable_result=[
                    data201.GetVariableResultType(
                        attribute_status="Accepted",
                        attribute_value=KEY,
                        component=d.component,
                        variable=d.variable,
                    )
                    for d in msg.get_variable_data
                ]
            )

        handlers = {"SetVariables": set_variables, "GetVariables": get_variables}
        async with open_ocpp(
            url,
            "EVSE001",
            version="2.0.1",
            basic_auth=("EVSE001", "old-password-123456"),
            handlers=handlers,
        ) as conn:
            await _boot_201(conn)
            r = await client.post("/chargers/EVSE001/authorization_key", json={"key": KEY})
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "Accepted" and KEY not in r.text
            (sent,) = received
            assert (sent.component.name, sent.variable.name, sent.attribute_value) == (
                "SecurityCtrlr",
                "BasicAuthPassword",
                KEY,
            )
            r = await client.post(
                "/commands/get_configuration/EVSE001", json={"keys": ["AuthorizationKey"]}
            )
            assert r.status_code == 200 and KEY not in r.text, r.text
            assert r.json()["configurationKey"] == [{"key": "AuthorizationKey", "readonly": False}]
            r = await client.post("/chargers/EVSE001/authorization_key", json={})
            assert r.status_code == 200 and r.json()["authorization_key"]["rotated"]
            generated = received[-1].attribute_value
            assert len(generated) == 40 and generated not in r.text
        assert await connects(url, "EVSE001", None, ("EVSE001", generated)) == "Accepted"
        assert await connects(url, "EVSE001", None, ("EVSE001", "old-password-123456")) == 401
        messages = (await client.get("/chargers/EVSE001/messages?limit=200")).text
        assert "***" in messages and "BasicAuthPassword" in messages
    for secret in (KEY, generated):
        assert secret not in messages
        assert not any(secret in r.getMessage() for r in caplog.records)
        assert secret not in capsys.readouterr().out
        rows = sqlite3.connect(db).execute("SELECT * FROM messages").fetchall()
        assert rows and not any(secret in str(row) for row in rows)
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path


async def test_the_reconnect_window_closes(tmp_path, autojump_clock):
    """After the grace period only the new key opens (trio's clock, no wall time)."""
    from libv4e.csms import SqliteStore
    from libv4e.csms._admission import Passwords
    from libv4e.csms._throttle import ThrottlePolicy
    from libv4e.transport._websocket import ConnectionRequest

    store = SqliteStore(str(tmp_path / "p.db"))
    await store.open()
    try:
        passwords = Passwords(store, require=lambda: True, throttle=ThrottlePolicy())
        await passwords.set("EVSE001", "old-password-123456")
        await passwords.rotate("EVSE001", "new-password-123456", grace=300)

        def request(password):
            token = base64.b64encode(f"EVSE001:{password}".encode()).decode()
            return ConnectionRequest(
                "EVSE001", "/EVSE001", {"authorization": f"Basic {token}"}, "10.0.0.1:1", False
            )

        assert await passwords.check(request("old-password-123456")) is None
        assert await passwords.check(request("new-password-123456")) is None
        await trio.sleep(301)
        refusal = await passwords.check(request("old-password-123456"))
        assert refusal is not None and refusal.status == 401
        assert await passwords.check(request("new-password-123456")) is None
    finally:
        await store.close()


async def test_certificate_and_signed_firmware_and_log_commands(tmp_path, charger_ca):
    """InstallCertificate, GetInstalledCertificateIds, DeleteCertificate,
    ExtendedTriggerMessage, SignedUpdateFirmware + status, GetLog + status: the frames the
    charger receives are valid, the records follow the answers and notifications."""
    from libv4e.protocol import hash_data, load_pem_chain

    root = charger_ca.certificate_pem
    root_hash = hash_data(*load_pem_chain(root) * 2)
    received = []

    def answer(result):
        async def handler(msg):
            received.append(msg)
            return result

        return handler

    handlers = {
        "InstallCertificate": answer(call_result.InstallCertificate("Accepted")),
        "GetInstalledCertificateIds": answer(
            call_result.GetInstalledCertificateIds(
                "Accepted",
                certificate_hash_data=[
                    datatypes.CertificateHashData(
                        hash_algorithm=root_hash["hashAlgorithm"],
                        issuer_name_hash=root_hash["issuerNameHash"],
                        issuer_key_hash=root_hash["issuerKeyHash"],
                        serial_number=root_hash["serialNumber"],
                    )
                ],
            )
        ),
        "DeleteCertificate": answer(call_result.DeleteCertificate("Accepted")),
        "ExtendedTriggerMessage": answer(call_result.ExtendedTriggerMessage("Accepted")),
        "SignedUpdateFirmware": answer(call_result.SignedUpdateFirmware("Accepted")),
        "GetLog": answer(call_result.GetLog("Accepted", filename="log.txt")),
    }
    async with backend_with(tmp_path, ca=charger_ca) as (backend, client):
        async with open_ocpp(
            f"ws://127.0.0.1:{backend.ws_port}", "EVSE001", handlers=handlers
        ) as conn:
            await boot(conn)
            r = await client.post(
                "/commands/install_certificate/EVSE001",
                json={"certificate_type": "CentralSystemRootCertificate", "certificate": root},
            )
            assert r.status_code == 200, r.text
            assert r.json()["certificate"]["status"] == "Installed"
            r = await client.post(
                "/commands/install_certificate/EVSE001",
                json={"certificate_type": "CentralSystemRootCertificate", "certificate": "junk"},
            )
            assert r.status_code in (400, 422)
            r = await client.post(
                "/commands/get_installed_certificate_ids/EVSE001",
                json={"certificate_type": "CentralSystemRootCertificate"},
            )
            assert r.status_code == 200, r.text
            assert r.json()["certificateHashData"][0]["serialNumber"] == root_hash["serialNumber"]
            hash_body = {
                "hash_algorithm": "SHA256",
                "issuer_name_hash": root_hash["issuerNameHash"],
                "issuer_key_hash": root_hash["issuerKeyHash"],
                "serial_number": root_hash["serialNumber"],
            }
            r = await client.post(
                "/commands/delete_certificate/EVSE001", json={"certificate_hash_data": hash_body}
            )
            assert r.status_code == 200, r.text
            sec = (await client.get("/chargers/EVSE001/security")).json()
            assert [c["status"] for c in sec["certificates"]] == ["Deleted"]
            r = await client.post(
                "/commands/extended_trigger_message/EVSE001",
                json={"requested_message": "SignChargePointCertificate"},
            )
            assert r.status_code == 200 and r.json()["status"] == "Accepted"
            r = await client.post(
                "/commands/signed_update_firmware/EVSE001",
                json={
                    "location": "https://fw.example/v2.bin",
                    "retrieve_date_time": "2026-12-03T12:00:00Z",
                    "signing_certificate": root,
                    "signature": base64.b64encode(b"sig").decode(),
                },
            )
            assert r.status_code == 200, r.text
            fw_request = r.json()["security"]["signed_update"]["request_id"]
            r = await client.post(
                "/commands/get_log/EVSE001",
                json={
                    "log_type": "SecurityLog",
                    "remote_location": "https://logs.example/up",
                    "oldest_timestamp": "2026-12-01T00:00:00Z",
                    "latest_timestamp": "2026-12-02T00:00:00Z",
                },
            )
            assert r.status_code == 200, r.text
            log_request = r.json()["security"]["log_request"]["request_id"]
            assert log_request != fw_request
            r = await client.post(
                "/commands/get_log/EVSE001",
                json={
                    "log_type": "SecurityLog",
                    "remote_location": "https://logs.example/up",
                    "oldest_timestamp": "2026-12-02T00:00:00Z",
                    "latest_timestamp": "2026-12-01T00:00:00Z",
                },
            )
            assert r.status_code in (400, 422)
            # a status for another request moves nothing; the right one does
            await conn.call(
                call.SignedFirmwareStatusNotification(status="Downloading", request_id=999),
                timeout=5,
            )
            for status in ("Downloading", "Downloaded", "SignatureVerified", "Installed"):
                await conn.call(
                    call.SignedFirmwareStatusNotification(status=status, request_id=fw_request),
                    timeout=5,
                )
            await conn.call(
                call.LogStatusNotification(status="Uploading", request_id=log_request), timeout=5
            )
            await conn.call(
                call.LogStatusNotification(status="Uploaded", request_id=None), timeout=5
            )
        sec = (await client.get("/chargers/EVSE001/security")).json()
        update = sec["signed_update"]
        assert update["status"] == "Installed" and update["done"]
        assert [h["status"] for h in update["history"]] == [
            "Requested",
            "Downloading",
            "Downloaded",
            "SignatureVerified",
            "Installed",
        ]
        assert sec["log_request"]["status"] == "Uploaded" and sec["log_request"]["done"]
        assert sec["log_request"]["answer"] == {"status": "Accepted", "filename": "log.txt"}
    kinds = [type(m).__name__ for m in received]
    assert kinds == [
        "InstallCertificate",
        "GetInstalledCertificateIds",
        "DeleteCertificate",
        "ExtendedTriggerMessage",
        "SignedUpdateFirmware",
        "GetLog",
    ]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_the_simulator_speaks_the_security_extension(
    tmp_path, server_ca, charger_ca, version
):
    """Our CSMS and our simulator, as a 1.6 charger and as a 2.0.1 station (the same REST
    calls and records): AuthorizationKey rotation (the simulator reconnects with the new
    key, the old one is refused), SignChargePointCertificate → SignCertificate →
    CertificateSigned, SecurityProfile 3 → it reconnects with mutual TLS, signed firmware
    with its statuses and a FirmwareUpdated security event, GetLog, and its key and
    certificate kept across a restart of the simulator."""
    from libv4e import Charger, ChargerConfig

    ctx = server_context(server_ca, charger_ca)
    trust = client_context(server_ca, tmp_path)
    state = str(tmp_path / "evse001.json")
    async with backend_with(
        tmp_path, ssl_context=ctx, ca=charger_ca, authorization_key_grace=0.0
    ) as (backend, client):
        url = f"wss://127.0.0.1:{backend.ws_port}"
        await client.put("/chargers/EVSE001/password", json={"password": "first-password-1234"})
        config = ChargerConfig(
            cp_id="EVSE001",
            basic_auth_password="first-password-1234",
            ssl_context=trust,
            state_path=state,
            reconnect_min=0.05,
            reconnect_max=0.2,
            reboot_delay=0.05,
            ocpp_version=version,
        )
        charger = Charger(config)

        async def online():
            status = (await client.get("/status")).json()["charge_points"].get("EVSE001", {})
            return status.get("connection") == "online"

        async def boots(n):
            async def check():
                return charger.boot_count >= n and charger.online

            return await wait_for(check, timeout=20)

        async with trio.open_nursery() as nursery:
            await nursery.start(charger.run, url)
            await boots(1)
            r = await client.post("/chargers/EVSE001/authorization_key", json={})
            assert r.status_code == 200 and r.json()["status"] == "Accepted", r.text
            await boots(2)  # back in with the new key only (grace 0)
            assert charger.security.authorization_key not in (None, "first-password-1234")
            old = ("EVSE001", "first-password-1234")
            assert await connects(url, "EVSE001", trust, old) == 401
            r = await client.post(
                "/commands/get_configuration/EVSE001", json={"keys": ["AuthorizationKey"]}
            )
            assert r.json().get("configurationKey") == [
                {"key": "AuthorizationKey", "readonly": False}
            ], r.text
            r = await client.post(
                "/commands/extended_trigger_message/EVSE001",
                json={"requested_message": "SignChargePointCertificate"},
            )
            assert r.json()["status"] == "Accepted"

            async def signed():
                certs = (await client.get("/chargers/EVSE001/security")).json()["certificates"]
                return certs and certs[-1]["status"] == "Accepted"

            await wait_for(signed, timeout=20)
            assert charger.security.certificate_chain is not None
            r = await client.post(
                "/commands/change_configuration/EVSE001",
                json={"key": "SecurityProfile", "value": "3"},
            )
            assert r.json()["status"] == "Accepted", r.text
            await boots(3)  # reconnected with its certificate
            assert (await client.get("/chargers/EVSE001/security")).json()["profile"] == 3
            assert await online()
            r = await client.post(
                "/commands/signed_update_firmware/EVSE001",
                json={
                    "location": "https://fw.example/v2.bin",
                    "retrieve_date_time": "2026-12-03T12:00:00Z",
                    "signing_certificate": charger_ca.certificate_pem,
                    "signature": base64.b64encode(b"sig").decode(),
                },
            )
            assert r.status_code == 200, r.text

            async def installed():
                sec = (await client.get("/chargers/EVSE001/security")).json()
                return sec["signed_update"]["status"] == "Installed"

            await wait_for(installed, timeout=20)
            await boots(4)  # it rebooted into the new firmware, with mTLS again

            async def updated_event():
                events = (await client.get("/chargers/EVSE001/security_events")).json()
                return [e for e in events["events"] if e["type"] == "FirmwareUpdated"]

            (event,) = await wait_for(updated_event, timeout=20)
            assert event["critical"] is True
            r = await client.post(
                "/commands/get_log/EVSE001",
                json={"log_type": "SecurityLog", "remote_location": "https://logs.example/u"},
            )
            assert r.status_code == 200, r.text
            assert r.json()["filename"].startswith("securitylog-EVSE001")

            async def uploaded():
                sec = (await client.get("/chargers/EVSE001/security")).json()
                return sec["log_request"]["status"] == "Uploaded"

            await wait_for(uploaded, timeout=20)
            log = (await client.get("/chargers/EVSE001/messages?limit=500")).json()["messages"]
            actions = {m["action"] for m in log}
            if version == "2.0.1":  # the wire spoke 2.0.1; the records above are the same
                assert {"SignCertificate", "CertificateSigned", "SetVariables"} <= actions
                assert {"UpdateFirmware", "FirmwareStatusNotification", "GetLog"} <= actions
                assert not actions & {"SignedUpdateFirmware", "ChangeConfiguration"}
                firmware = [
                    m["payload"]
                    for m in log
                    if m["action"] == "FirmwareStatusNotification" and m["direction"] == "in"
                ]
                assert {f.get("requestId") for f in firmware} == {
                    (await client.get("/chargers/EVSE001/security")).json()["signed_update"][
                        "request_id"
                    ]
                }
            assert charger.security.authorization_key not in str(log)
            nursery.cancel_scope.cancel()

        # a restarted simulator still holds its key and certificate: profile 3 again
        again = Charger(config)
        async with trio.open_nursery() as nursery:
            await nursery.start(again.run, url)

            async def back():
                return again.online

            await wait_for(back, timeout=20)
            assert again.security.profile == 3
            nursery.cancel_scope.cancel()


WHITEPAPER_CHARGER_CALLS = (
    "SecurityEventNotification",
    "SignCertificate",
    "SignedFirmwareStatusNotification",
    "LogStatusNotification",
)
WHITEPAPER_CSMS_CALLS = (
    "CertificateSigned",
    "DeleteCertificate",
    "ExtendedTriggerMessage",
    "GetInstalledCertificateIds",
    "GetLog",
    "InstallCertificate",
    "SignedUpdateFirmware",
)


@pytest.mark.parametrize("minimal", [True, False], ids=["required-only", "all-fields"])
async def test_every_whitepaper_message_both_directions(tmp_path, charger_ca, minimal):
    """Every whitepaper message, optional fields omitted and present: the charger's calls
    are answered with a valid result by our CSMS; the CSMS's calls reach our simulator and
    its answers are valid (the sessions validate every frame both ways, strictly)."""
    from libv4e import Charger, ChargerConfig
    from libv4e.protocol import from_json_payload
    from libv4e.protocol._convert import CALLS, RESULTS
    from tests.conftest import sample_payload

    async with backend_with(tmp_path, ca=charger_ca) as (backend, _client):
        url = f"ws://127.0.0.1:{backend.ws_port}"
        async with open_ocpp(url, "RAW001") as conn:
            await boot(conn)
            for action in WHITEPAPER_CHARGER_CALLS:
                payload = sample_payload("call", action, minimal=minimal)
                result = await conn.call(from_json_payload(CALLS[action], payload), timeout=5)
                assert isinstance(result, RESULTS[action])
        charger = Charger(ChargerConfig(cp_id="SIM001", reconnect_min=0.05))
        async with trio.open_nursery() as nursery:
            await nursery.start(charger.run, url)

            async def online():
                return charger.online

            await wait_for(online, timeout=20)
            csms = backend.csms
            for action in WHITEPAPER_CSMS_CALLS:
                payload = sample_payload("call", action, minimal=minimal)
                result = await csms.send(
                    "SIM001", from_json_payload(CALLS[action], payload), timeout=5
                )
                assert isinstance(result, RESULTS[action])
            nursery.cancel_scope.cancel()


async def test_set_variables_of_the_password_or_profile_is_the_rotation_not_a_lockout(tmp_path):
    """A 2.0.1-native SetVariables of SecurityCtrlr.BasicAuthPassword goes the way of the
    AuthorizationKey rotation (the CSMS takes the new password, the old one lapses after
    the grace), and SecurityProfile follows the profile's rules; mixed with other
    variables, or on an EVSE, it is refused before anything is sent."""

    async with backend_with(tmp_path, authorization_key_grace=60.0) as (backend, client):
        url = f"ws://127.0.0.1:{backend.ws_port}"
        await client.put("/chargers/EVSE001/password", json={"password": "old-password-123456"})
        received = []

        set_variables = accepting_set_variables(received)

        password = {"component": "SecurityCtrlr", "variable": "BasicAuthPassword", "value": KEY}
        async with open_ocpp(
            url,
            "EVSE001",
            version="2.0.1",
            basic_auth=("EVSE001", "old-password-123456"),
            handlers={"SetVariables": set_variables},
        ) as conn:
            await _boot_201(conn)
            for refused in (
                [
                    password,
                    {"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval", "value": "60"},
                ],
                [{**password, "evse_id": 1}],
                # the station's id, or which network profile it uses: it would not come back
                [{"component": "SecurityCtrlr", "variable": "Identity", "value": "OTHER"}],
                [
                    {
                        "component": "OCPPCommCtrlr",
                        "variable": "NetworkConfigurationPriority",
                        "value": "2",
                    }
                ],
            ):
                r = await client.post(
                    "/commands/set_variables/EVSE001", json={"variables": refused}
                )
                assert r.status_code == 422 and r.json()["error"] == "security_policy", r.text
                assert KEY not in r.text
            assert received == []  # nothing went out
            r = await client.post("/commands/set_variables/EVSE001", json={"variables": [password]})
            assert r.status_code == 200, r.text
            assert r.json()["setVariableResult"][0]["attributeStatus"] == "Accepted"
            assert r.json()["authorization_key"]["rotated"] is True and KEY not in r.text
            (sent,) = received
            assert sent.attribute_value == KEY
            lower = {"component": "SecurityCtrlr", "variable": "SecurityProfile", "value": "0"}
            r = await client.post("/commands/set_variables/EVSE001", json={"variables": [lower]})
            assert r.status_code == 422 and r.json()["error"] == "security_policy", r.text
            assert len(received) == 1
        assert await connects(url, "EVSE001", None, ("EVSE001", KEY)) == "Accepted"
        messages = (await client.get("/chargers/EVSE001/messages?limit=200")).text
        assert KEY not in messages


@pytest.mark.parametrize("minimal", [True, False], ids=["required-only", "all-fields"])
async def test_every_whitepaper_message_both_directions_on_201(tmp_path, charger_ca, minimal):
    """The same on 2.0.1: a station's security calls (2.0.1's forms, optional fields
    omitted and present) are answered with a valid 2.0.1 result by our CSMS; each of the
    CSMS's whitepaper commands (1.6, as the REST API sends them) reaches our simulator as
    a 2.0.1 station and comes back as a valid 1.6 answer (the sessions validate every
    frame both ways, strictly)."""
    from libv4e import Charger, ChargerConfig
    from libv4e.protocol import CATALOGUES, OcppVersion, from_json_payload
    from libv4e.protocol._convert import CALLS, RESULTS
    from libv4e.protocol._validation import schema_for
    from tests.conftest import sample_from_schema, sample_payload

    v201 = CATALOGUES[OcppVersion.V201]
    async with backend_with(tmp_path, ca=charger_ca) as (backend, _client):
        url = f"ws://127.0.0.1:{backend.ws_port}"
        async with open_ocpp(url, "RAW201", version="2.0.1") as conn:
            await _boot_201(conn)
            for action in (
                "SecurityEventNotification",
                "SignCertificate",
                "FirmwareStatusNotification",
                "LogStatusNotification",
            ):
                schema = schema_for("call", action, OcppVersion.V201)
                payload = sample_from_schema(schema, minimal=minimal)
                result = await conn.call(from_json_payload(v201.calls[action], payload), timeout=5)
                assert isinstance(result, v201.results[action])
        charger = Charger(ChargerConfig(cp_id="SIM201", reconnect_min=0.05, ocpp_version="2.0.1"))
        async with trio.open_nursery() as nursery:
            await nursery.start(charger.run, url)

            async def online():
                return charger.online

            await wait_for(online, timeout=20)
            for action in WHITEPAPER_CSMS_CALLS:
                payload = sample_payload("call", action, minimal=minimal)
                result = await backend.csms.send(
                    "SIM201", from_json_payload(CALLS[action], payload), timeout=5
                )
                assert isinstance(result, RESULTS[action]), action
            nursery.cancel_scope.cancel()


async def test_security_events_are_bounded_per_charger(tmp_path):
    """A charger flooding security events keeps its newest ones only; another charger's
    events are untouched."""
    import datetime as dt

    from libv4e.csms import SecurityBook, SqliteStore

    store = SqliteStore(str(tmp_path / "e.db"))
    await store.open()
    try:
        now = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)
        await store.add_security_event(
            "VICTIM", SecurityBook.event("StartupOfTheDevice", "t0", None, now), keep=3
        )
        for i in range(10):
            event = SecurityBook.event("InvalidMessages", f"t{i}", str(i), now)
            await store.add_security_event("FLOOD", event, keep=3)
        events, count = await store.security_events("FLOOD", limit=10)
        assert count == 3 and [e.tech_info for e in events] == ["9", "8", "7"]
        events, count = await store.security_events("VICTIM", limit=10)
        assert count == 1 and events[0].critical
    finally:
        await store.close()


async def _boot_201(conn):
    from ocpp.v201 import call as call201
    from ocpp.v201 import datatypes as data201

    result = await conn.call(
        call201.BootNotification(
            charging_station=data201.ChargingStationType(model="M", vendor_name="V"),
            reason="PowerUp",
        ),
        timeout=5,
    )
    assert str(result.status) == "Accepted"


async def test_sign_certificate_on_a_201_station(tmp_path, charger_ca):
    """A 2.0.1 SignCertificate goes through the same signing as 1.6's: Accepted, then
    CertificateSigned (a ChargingStationCertificate whose chain the CA signed) answered
    Accepted and recorded; a CSR for another id, a V2G certificate, or no CA: Rejected."""
    from cryptography import x509
    from ocpp.v201 import call as call201
    from ocpp.v201 import call_result as result201

    received = trio.Event()
    delivered = []

    async def certificate_signed(msg):
        delivered.append(msg)
        received.set()
        return result201.CertificateSigned(status="Accepted")

    url_of = "ws://127.0.0.1:{}".format
    key = new_private_key()
    csr = certificate_signing_request(key, "EVSE001")
    async with backend_with(tmp_path, ca=charger_ca) as (backend, client):
        async with open_ocpp(
            url_of(backend.ws_port),
            "EVSE001",
            version="2.0.1",
            handlers={"CertificateSigned": certificate_signed},
        ) as conn:
            await _boot_201(conn)
            for refused in (
                call201.SignCertificate(csr=certificate_signing_request(new_private_key(), "EVIL")),
                call201.SignCertificate(csr="not a csr"),
                call201.SignCertificate(csr=csr, certificate_type="V2GCertificate"),
            ):
                assert str((await conn.call(refused, timeout=5)).status) == "Rejected"
            assert (await client.get("/chargers/EVSE001/security")).json()["certificates"] == []
            result = await conn.call(
                call201.SignCertificate(csr=csr, certificate_type="ChargingStationCertificate"),
                timeout=5,
            )
            assert str(result.status) == "Accepted"
            with trio.fail_after(10):
                await received.wait()

            async def recorded():
                certs = (await client.get("/chargers/EVSE001/security")).json()["certificates"]
                return certs if certs and certs[-1]["status"] == "Accepted" else None

            (cert,) = await wait_for(recorded, timeout=10)
        (msg,) = delivered
        assert str(msg.certificate_type) == "ChargingStationCertificate"
        leaf, _ = x509.load_pem_x509_certificates(msg.certificate_chain.encode())
        ca_cert = x509.load_pem_x509_certificate(charger_ca.certificate_pem.encode())
        leaf.verify_directly_issued_by(ca_cert)
        assert leaf.public_key().public_numbers() == key.public_key().public_numbers()
        assert cert["certificate_type"] == "ChargePointCertificate"  # the same record as 1.6
        log = (await client.get("/chargers/EVSE001/messages")).json()["messages"]
        assert {"SignCertificate", "CertificateSigned"} <= {m["action"] for m in log}
    async with backend_with(tmp_path) as (backend, client):  # without a CA: Rejected
        async with open_ocpp(url_of(backend.ws_port), "EVSE002", version="2.0.1") as conn:
            await _boot_201(conn)
            csr = certificate_signing_request(new_private_key(), "EVSE002")
            result = await conn.call(call201.SignCertificate(csr=csr), timeout=5)
            assert str(result.status) == "Rejected"


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_certificates_on_the_simulator_are_installed_listed_and_deleted(
    tmp_path, charger_ca, version
):
    """InstallCertificate, GetInstalledCertificateIds and DeleteCertificate through the
    REST API on our simulator (a 1.6 charger or a 2.0.1 station): the same answers and
    the same records."""
    from libv4e import Charger, ChargerConfig
    from libv4e.protocol import hash_data, load_pem_chain

    root = CertificateAuthority.create("a CSMS root").certificate_pem
    root_hash = hash_data(*load_pem_chain(root) * 2)
    async with backend_with(tmp_path, ca=charger_ca) as (backend, client):
        charger = Charger(ChargerConfig(cp_id="EVSE001", reconnect_min=0.05, ocpp_version=version))
        async with trio.open_nursery() as nursery:
            await nursery.start(charger.run, f"ws://127.0.0.1:{backend.ws_port}")

            async def online():
                return charger.online

            await wait_for(online, timeout=20)
            r = await client.post(
                "/commands/install_certificate/EVSE001",
                json={"certificate_type": "CentralSystemRootCertificate", "certificate": root},
            )
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "Accepted"
            assert r.json()["certificate"]["status"] == "Installed"
            assert [x.use for x in charger.security.roots] == ["CentralSystemRootCertificate"]
            r = await client.post(
                "/commands/get_installed_certificate_ids/EVSE001",
                json={"certificate_type": "CentralSystemRootCertificate"},
            )
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "Accepted"
            assert r.json()["certificateHashData"] == [root_hash]
            r = await client.post(
                "/commands/get_installed_certificate_ids/EVSE001",
                json={"certificate_type": "ManufacturerRootCertificate"},
            )
            assert r.json()["status"] == "NotFound" and not r.json().get("certificateHashData")
            body = {
                "certificate_hash_data": {
                    "hash_algorithm": "SHA256",
                    "issuer_name_hash": root_hash["issuerNameHash"],
                    "issuer_key_hash": root_hash["issuerKeyHash"],
                    "serial_number": root_hash["serialNumber"],
                }
            }
            r = await client.post("/commands/delete_certificate/EVSE001", json=body)
            assert r.status_code == 200 and r.json()["status"] == "Accepted", r.text
            assert charger.security.roots == []
            r = await client.post("/commands/delete_certificate/EVSE001", json=body)
            assert r.json()["status"] == "NotFound"
            sec = (await client.get("/chargers/EVSE001/security")).json()
            assert [c["status"] for c in sec["certificates"]] == ["Deleted"]
            nursery.cancel_scope.cancel()


async def test_201_log_and_firmware_statuses_move_only_the_request_they_name(tmp_path):
    """On 2.0.1 a diagnostics upload (GetDiagnostics as GetLog) and a security log both
    report with LogStatusNotification, an unsigned and a signed firmware update both with
    FirmwareStatusNotification: each status moves only the record of the request its
    requestId names (in 1.6 they are different messages), never the other book's."""
    from ocpp.v201 import call as call201
    from ocpp.v201 import call_result as result201

    async with backend_with(tmp_path) as (backend, client):
        url = f"ws://127.0.0.1:{backend.ws_port}"
        asked = []

        async def get_log(msg):
            asked.append(msg)
            return result201.GetLog(status="Accepted", filename="log.txt")

        async def update_firmware(msg):
            asked.append(msg)
            return result201.UpdateFirmware(status="Accepted")

        handlers = {"GetLog": get_log, "UpdateFirmware": update_firmware}
        async with open_ocpp(url, "EVSE001", version="2.0.1", handlers=handlers) as conn:
            await _boot_201(conn)
            for route, body in (
                ("get_diagnostics", {"location": "ftp://example.com/diag"}),
                ("get_log", {"log_type": "SecurityLog", "remote_location": "ftp://example.com/s"}),
                (
                    "update_firmware",
                    {"location": "ftp://example.com/fw", "retrieve_date": "2030-01-01T00:00:00Z"},
                ),
                (
                    "signed_update_firmware",
                    {
                        "location": "ftp://example.com/sfw",
                        "retrieve_date_time": "2030-01-01T00:00:00Z",
                        "signing_certificate": "PEM",
                        "signature": "c2ln",
                    },
                ),
            ):
                r = await client.post(f"/commands/{route}/EVSE001", json=body)
                assert r.status_code == 200, r.text
            diagnostics, security_log, unsigned, signed = (m.request_id for m in asked)
            assert len({diagnostics, security_log, unsigned, signed}) == 4

            async def report(message):
                await conn.call(message, timeout=5)
                firmware = (await client.get("/chargers/EVSE001/firmware")).json()
                security = (await client.get("/chargers/EVSE001/security")).json()
                return firmware, security

            firmware, security = await report(
                call201.LogStatusNotification(status="Uploaded", request_id=security_log)
            )
            assert security["log_request"]["status"] == "Uploaded"
            assert firmware["get_diagnostics"]["done"] is False, firmware
            assert firmware["diagnostics_status"] is None
            firmware, security = await report(
                call201.LogStatusNotification(status="UploadFailure", request_id=diagnostics)
            )
            assert firmware["get_diagnostics"]["status"] == "UploadFailed"
            assert security["log_request"]["status"] == "Uploaded"
            assert security["log_status"] == "Uploaded", security

            firmware, security = await report(
                call201.FirmwareStatusNotification(status="Installed", request_id=signed)
            )
            assert security["signed_update"]["status"] == "Installed"
            assert firmware["update_firmware"]["done"] is False, firmware
            assert firmware["firmware_status"] is None
            firmware, security = await report(
                call201.FirmwareStatusNotification(status="DownloadFailed", request_id=unsigned)
            )
            assert firmware["update_firmware"]["status"] == "DownloadFailed"
            assert security["signed_update"]["status"] == "Installed"
            assert security["firmware_status"] == "Installed", security
