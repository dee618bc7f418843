"""Charger authentication (Security Profile 1 and 2: HTTP Basic, TLS) and API access."""

from __future__ import annotations

import contextlib
import ssl

import httpx
import pytest
import trio
import trustme
from ocpp.v16 import call

from libv4e import Charger, ChargerConfig, ConnectError, CsmsConfig, open_ocpp
from libv4e_apps.csms.api import ApiAccess
from libv4e_apps.csms.backend import BackendConfig, serve_backend
from tests.support import api, boot, running_backend, ws_url

pytestmark = pytest.mark.usefixtures("both_transports")


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "v4e.db")


@contextlib.asynccontextmanager
async def backend_with(db, **options):
    csms = options.pop("csms", CsmsConfig())
    config = BackendConfig(
        host="127.0.0.1", ws_port=0, api_port=0, db_path=db, csms=csms, **options
    )
    async with trio.open_nursery() as nursery:
        backend = await nursery.start(
            lambda task_status: serve_backend(config, task_status=task_status)
        )
        yield backend
        nursery.cancel_scope.cancel()


async def test_charger_password_is_required_once_set(db):
    async with running_backend(db) as backend, api(backend) as client:
        r = await client.put("/chargers/EVSE001/password", json={"password": "short"})
        assert r.status_code == 422
        r = await client.put(
            "/chargers/EVSE001/password", json={"password": "correct-horse-battery"}
        )
        assert r.json() == {"cp_id": "EVSE001", "password_set": True}
        for creds in (
            None,
            ("EVSE001", "wrong-password-123456"),
            ("OTHER", "correct-horse-battery"),
        ):
            with pytest.raises(ConnectError) as info:
                async with open_ocpp(ws_url(backend), "EVSE001", basic_auth=creds):
                    pass
            assert info.value.status == 401
        async with open_ocpp(
            ws_url(backend), "EVSE001", basic_auth=("EVSE001", "correct-horse-battery")
        ) as conn:
            await boot(conn)
        # other chargers without a password still connect (require_password is off)
        async with open_ocpp(ws_url(backend), "EVSE002") as conn:
            await boot(conn)


async def test_password_is_stored_hashed_and_survives_restart(db):
    import sqlite3

    async with running_backend(db) as backend, api(backend) as client:
        await client.put("/chargers/EVSE001/password", json={"password": "correct-horse-battery"})
    stored = sqlite3.connect(db).execute("SELECT password_hash FROM secrets").fetchone()[0]
    assert "correct-horse-battery" not in stored
    assert stored.startswith("pbkdf2_sha256$")
    async with running_backend(db) as backend:
        with pytest.raises(ConnectError):
            async with open_ocpp(ws_url(backend), "EVSE001"):
                pass


async def test_require_password_refuses_chargers_without_one(db):
    async with running_backend(db, require_password=True) as backend:
        with pytest.raises(ConnectError) as info:
            async with open_ocpp(ws_url(backend), "NOPASS1"):
                pass
        assert info.value.status == 401


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


async def test_security_profile_2_tls_and_basic_auth_with_the_simulator(db, ca):
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with backend_with(db, ssl_context=server_ctx) as backend, api(backend) as client:
        await client.put("/chargers/EVSE001/password", json={"password": "correct-horse-battery"})
        url = f"wss://127.0.0.1:{backend.ws_port}"
        assert backend.ws_url.startswith("wss://")
        charger = Charger(
            ChargerConfig(
                cp_id="EVSE001", basic_auth_password="correct-horse-battery", ssl_context=client_ctx
            )
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(charger.run, url)
            with trio.fail_after(10):
                await charger.connected_event.wait()
            assert (await client.get("/status")).json()["charge_points"]["EVSE001"][
                "connection"
            ] == "online"
            nursery.cancel_scope.cancel()
        # a client that does not trust the CA, or speaks plain ws, does not get in
        with pytest.raises(ConnectError):
            async with open_ocpp(
                url, "EVSE001", basic_auth=("EVSE001", "correct-horse-battery"), connect_timeout=1
            ):
                pass
        with pytest.raises(ConnectError):
            async with open_ocpp(f"ws://127.0.0.1:{backend.ws_port}", "EVSE001", connect_timeout=1):
                pass


def test_api_access_policy_by_binding():
    assert ApiAccess.for_binding("127.0.0.1").token is None
    assert ApiAccess.for_binding("localhost").token is None
    assert ApiAccess.for_binding("0.0.0.0").token  # generated
    assert ApiAccess.for_binding("0.0.0.0", token="t0k").token == "t0k"
    assert ApiAccess.for_binding("0.0.0.0", mode="off").token is None
    assert ApiAccess.for_binding("::1", mode="on", token="x").token == "x"
    assert ApiAccess.for_binding("::1", mode="on", token="x").protect_reads
    # behind a same-host proxy (--allowed-hosts) loopback callers may be anyone
    proxied = ApiAccess.for_binding("127.0.0.1", token="p", allowed_hosts=["ev.example.test"])
    assert proxied.token == "p" and proxied.protect_reads
    assert not proxied.allows("POST", "127.0.0.1", None)
    assert not proxied.allows("GET", "127.0.0.1", None)
    assert ApiAccess.for_binding("127.0.0.1", allowed_hosts=["ev.example.test"]).token
    access = ApiAccess("secret")
    assert access.allows("GET", "127.0.0.1", None)
    assert not access.allows("GET", "10.1.2.3", None)
    assert not access.allows("POST", "127.0.0.1", None)
    assert not access.allows("POST", "127.0.0.1", "Bearer wrong")
    assert access.allows("POST", "10.1.2.3", "Bearer secret")


async def test_api_token_protects_writes(db):
    async with backend_with(db, api_auth="on", api_token="s3cret-token") as backend:
        base = f"http://127.0.0.1:{backend.api_port}"
        async with httpx.AsyncClient(base_url=base) as client:
            # "on" means every request, reads included, also on loopback
            assert (await client.get("/status")).status_code == 401
            assert (await client.get("/id_tags")).status_code == 401
            auth = {"Authorization": "Bearer s3cret-token"}
            assert (await client.get("/id_tags", headers=auth)).status_code == 200
            r = await client.post("/id_tags", json={"id_tag": "A"})
            assert (r.status_code, r.json()["error"]) == (401, "unauthorized")
            assert r.headers["www-authenticate"].startswith("Bearer")
            r = await client.post(
                "/id_tags", json={"id_tag": "A"}, headers={"Authorization": "Bearer s3cret-token"}
            )
            assert r.status_code == 201


async def test_seed_curls_need_no_token_on_loopback(db):
    async with running_backend(db) as backend, api(backend) as client:
        async with open_ocpp(ws_url(backend), "EVSE001", handlers={"Reset": _reset_ok}) as conn:
            await boot(conn)
            r = await client.post("/commands/reset/EVSE001", json={"type": "Hard"})
            assert r.status_code == 200
            await conn.call(call.Heartbeat(), timeout=5)


async def _reset_ok(req):
    from ocpp.v16 import call_result

    return call_result.Reset("Accepted")


async def test_an_older_weaker_password_hash_is_upgraded_on_the_next_good_connect(db):
    """Hashes from releases that used 60,000 PBKDF2 iterations keep working; the first
    good connect stores one made with today's parameters (a wrong password changes
    nothing)."""
    import sqlite3

    from libv4e.csms._passwords import ITERATIONS, hash_password

    assert ITERATIONS >= 600_000
    async with running_backend(db):
        pass  # creates the schema
    old = hash_password("correct-horse-battery", iterations=60_000)
    with contextlib.closing(sqlite3.connect(db)) as con, con:
        con.execute("INSERT INTO secrets VALUES ('EVSE001', ?)", (old,))

    def stored() -> str:
        with contextlib.closing(sqlite3.connect(db)) as con:
            return con.execute("SELECT password_hash FROM secrets").fetchone()[0]

    async with running_backend(db) as backend:
        with pytest.raises(ConnectError):
            async with open_ocpp(ws_url(backend), "EVSE001", basic_auth=("EVSE001", "x" * 20)):
                pass
        assert stored() == old
        creds = ("EVSE001", "correct-horse-battery")
        async with open_ocpp(ws_url(backend), "EVSE001", basic_auth=creds) as conn:
            await boot(conn)
        assert stored().startswith(f"pbkdf2_sha256${ITERATIONS}$")
    async with running_backend(db) as backend:
        async with open_ocpp(ws_url(backend), "EVSE001", basic_auth=creds) as conn:
            await boot(conn)
        with pytest.raises(ConnectError):
            async with open_ocpp(ws_url(backend), "EVSE001", basic_auth=("EVSE001", "y" * 20)):
                pass
