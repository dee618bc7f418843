"""A charger written without libv4e's simulator (plain OCPP calls, no fault injection)
that shows the same symptoms gets the same diagnosis."""

from __future__ import annotations

import pytest
import trio
from ocpp.v16 import call, call_result, datatypes, enums

from libv4e import Reply, open_ocpp
from libv4e.sandbox import trio_clock
from tests.support import EPOCH, NOW, api, boot, running_backend, ws_url


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "v4e.db")


def sample(power_w, offered_w, energy_wh, at=NOW):
    return [
        datatypes.MeterValue(
            at,
            [
                datatypes.SampledValue(
                    str(energy_wh), measurand="Energy.Active.Import.Register", unit="Wh"
                ),
                datatypes.SampledValue(str(power_w), measurand="Power.Active.Import", unit="W"),
                datatypes.SampledValue(str(offered_w), measurand="Power.Offered", unit="W"),
            ],
        )
    ]


async def codes(client, **params):
    method = "POST" if params.get("probe") == "true" else "GET"  # probing is a POST
    r = await client.request(method, "/chargers/PLAIN1/diagnosis", params=params)
    assert r.status_code == 200, r.text
    return [f["code"] for f in r.json()["findings"]], r.json()


async def test_accepting_starts_that_never_happen_is_session_start_failure(db, autojump_clock):
    autojump_clock.autojump_threshold = 0.01  # no jump while loopback I/O is in flight
    # and time moves at wall speed too: the start and the charger's answer to it are not
    # stamped at one instant
    autojump_clock.rate = 1.0

    async def on_remote_start(req):
        return call_result.RemoteStartTransaction("Accepted")  # ...and then nothing

    async with running_backend(db, clock=trio_clock(EPOCH)) as backend, api(backend) as client:
        async with open_ocpp(
            ws_url(backend), "PLAIN1", handlers={"RemoteStartTransaction": on_remote_start}
        ) as conn:
            await boot(conn)
            await client.post("/commands/remote_start/PLAIN1", json={"id_tag": "USER123"})
            found, body = await codes(client, start_timeout=5)
            assert (found, body["verdict"]) == ([], "inconclusive")  # not blocking: wait
            assert body["retry_after_s"] > 0
            assert body["next_action"]["tool"] == "diagnose_charger"
            await trio.sleep(0.6)
            found, body = await codes(client, start_timeout=0.5)
            # nothing came from the charger since the start: the probe first
            assert (found, body["next_action"]["arguments"].get("probe")) == ([], True)
            found, _ = await codes(client, start_timeout=0.5, probe="true")
    assert found == ["session_start_failure"]


async def test_lock_failure_after_a_session_is_stuck_connector(db):
    async with running_backend(db) as backend, api(backend) as client:
        async with open_ocpp(ws_url(backend), "PLAIN1") as conn:
            await boot(conn)
            tx = await conn.call(call.StartTransaction(1, "USER123", 0, NOW), timeout=5)
            await conn.call(call.StopTransaction(500, NOW, tx.transaction_id), timeout=5)
            await conn.call(
                call.StatusNotification(1, "ConnectorLockFailure", "Faulted"), timeout=5
            )
            found, body = await codes(client, evidence="true")
    assert found == ["stuck_connector"]
    (cited,) = body["findings"][0]["evidence"]
    assert (cited["action"], cited["payload"]["errorCode"]) == (
        "StatusNotification",
        "ConnectorLockFailure",
    )


async def test_charger_that_accepts_trigger_but_stays_silent_is_offline(db):
    async def on_trigger(req):
        return call_result.TriggerMessage("Accepted")  # but never sends the heartbeat

    async with running_backend(db) as backend, api(backend) as client:
        async with open_ocpp(
            ws_url(backend), "PLAIN1", handlers={"TriggerMessage": on_trigger}
        ) as conn:
            await boot(conn)
            found, _ = await codes(client, probe="true")
            status = (await client.get("/chargers/PLAIN1")).json()
            assert status["connection"] == "offline"
            await conn.call(call.Heartbeat(), timeout=5)  # it talks again: online again
            assert (await client.get("/chargers/PLAIN1")).json()["connection"] == "online"
    assert found == ["offline_charger"]


async def test_disconnected_charger_is_offline_with_a_ticket_action(db):
    async with running_backend(db) as backend, api(backend) as client:
        async with open_ocpp(ws_url(backend), "PLAIN1") as conn:
            await boot(conn)
        found, body = await codes(client)
    assert found == ["offline_charger"]
    assert body["findings"][0]["actions"][-1]["tool"] == "create_ticket"


async def test_local_list_conflict_and_old_list_is_auth_failure(db):
    async def on_version(req):
        return call_result.GetLocalListVersion(0)

    async with running_backend(db) as backend, api(backend) as client:
        await client.post("/id_tags", json={"id_tag": "CARD9", "status": "Accepted"})
        async with open_ocpp(
            ws_url(backend), "PLAIN1", handlers={"GetLocalListVersion": on_version}
        ) as conn:
            await boot(conn)
            answer = await conn.call(call.Authorize("CARD9"), timeout=5)
            assert answer.id_tag_info.status == "Accepted"
            await conn.call(
                call.StatusNotification(
                    1, "LocalListConflict", "Available", info="CARD9 invalid locally"
                ),
                timeout=5,
            )
            found, body = await codes(client, id_tag="CARD9")
    assert found == ["auth_failure"]
    action = body["findings"][0]["actions"][0]
    assert {k: action[k] for k in ("tool", "arguments")} == {
        "tool": "send_local_list",
        "arguments": {"cp_id": "PLAIN1", "id_tag": "CARD9", "status": "Accepted"},
    }


async def test_card_answered_invalid_is_auth_failure(db):
    async with running_backend(db, unknown_tags="reject") as backend, api(backend) as client:
        async with open_ocpp(ws_url(backend), "PLAIN1") as conn:
            await boot(conn)
            answer = await conn.call(call.Authorize("LOST1"), timeout=5)
            assert answer.id_tag_info.status == "Invalid"
            found, _ = await codes(client, probe="false")
    assert found == ["auth_failure"]


async def test_low_power_against_offered_is_slow_charging(db):
    async def on_trigger(req):
        async def send():
            await conn.call(
                call.MeterValues(
                    1, sample(1400, 22000, 120, "2024-05-01T12:00:10Z"), tx.transaction_id
                ),
                timeout=5,
            )

        return Reply(call_result.TriggerMessage("Accepted"), after=send)

    async with running_backend(db) as backend, api(backend) as client:
        async with open_ocpp(
            ws_url(backend), "PLAIN1", handlers={"TriggerMessage": on_trigger}
        ) as conn:
            await boot(conn)
            tx = await conn.call(call.StartTransaction(1, "USER123", 100, NOW), timeout=5)
            await conn.call(call.StatusNotification(1, "NoError", "Charging"), timeout=5)
            await conn.call(
                call.MeterValues(1, sample(1400, 22000, 100), tx.transaction_id), timeout=5
            )
            found, body = await codes(client)
    assert found == ["slow_charging"]
    assert "1.4 kW" in body["findings"][0]["agent_note"]
    assert "22 kW" in body["findings"][0]["agent_note"]


async def test_normal_power_is_healthy(db):
    async with running_backend(db) as backend, api(backend) as client:
        async with open_ocpp(
            ws_url(backend), "PLAIN1", handlers={"TriggerMessage": _trigger_heartbeat_ok}
        ) as conn:
            _CONNS["PLAIN1"] = conn
            await boot(conn)
            tx = await conn.call(call.StartTransaction(1, "USER123", 100, NOW), timeout=5)
            await conn.call(call.StatusNotification(1, "NoError", "Charging"), timeout=5)
            await conn.call(
                call.MeterValues(1, sample(21000, 22000, 100), tx.transaction_id), timeout=5
            )
            found, body = await codes(client)
            # normal power but no energy yet: not healthy (the shared notion of resolved)
            assert (found, body["healthy"]) == ([], False)
            await conn.call(
                call.MeterValues(1, sample(21000, 22000, 150), tx.transaction_id), timeout=5
            )
            found, body = await codes(client)
    assert found == []
    assert body["healthy"] is True


_CONNS: dict = {}


async def _trigger_heartbeat_ok(req):
    conn = _CONNS["PLAIN1"]

    async def send():
        if req.requested_message == enums.MessageTrigger.heartbeat:
            await conn.call(call.Heartbeat(), timeout=5)

    return Reply(
        call_result.TriggerMessage(
            "Accepted" if req.requested_message == "Heartbeat" else "Rejected"
        ),
        after=send,
    )
