"""The simulated charger end to end against the project's CSMS (real sockets)."""

from __future__ import annotations

import pytest
import trio
from ocpp.v16 import enums

from libv4e import Charger, ChargerConfig
from libv4e.charger import ConnectorEvent
from tests.support import (
    api,
    charger_running,
    charger_setup,
    running_backend,
    wait_for,
    ws_url,
)


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "v4e.db")


async def charger_status(client, cp_id="EVSE001"):
    return (await client.get(f"/chargers/{cp_id}")).json()


async def test_boot_status_heartbeat(db):
    async with (
        running_backend(db, heartbeat_interval=1) as backend,
        charger_running(backend) as charger,
        api(backend) as client,
    ):
        state = await charger_status(client)
        assert state["connection"] == "online"
        assert state["boot"]["vendor"] == "Voice4EVs"
        assert [c["status"] for c in state["connectors"]] == ["Available", "Available"]
        assert charger.configuration["HeartbeatInterval"] == "1"

        async def beat():
            s = await charger_status(client)
            return s["last_heartbeat"]

        await wait_for(beat, timeout=5)


async def test_remote_start_meter_values_remote_stop(db):
    async with charger_setup(db) as (charger, client):
        r = await client.post(
            "/commands/change_configuration/EVSE001",
            json={"key": "MeterValueSampleInterval", "value": "1"},
        )
        assert r.json()["status"] == "Accepted"
        r = await client.post(
            "/commands/remote_start/EVSE001", json={"id_tag": "USER123", "connector_id": 1}
        )
        assert r.json()["status"] == "Accepted"

        async def charging():
            s = await charger_status(client)
            c = s["connectors"][1]
            return (
                s
                if c["status"] == "Charging"
                and c["transaction_id"]
                and (c["meter"]["energy_wh"] or 0) > 0
                else None
            )

        state = await wait_for(charging)
        tx_id = state["connectors"][1]["transaction_id"]
        assert state["connectors"][1]["meter"]["power_w"] == pytest.approx(22000, rel=0.01)
        assert state["connectors"][1]["meter"]["power_offered_w"] == pytest.approx(22000, rel=0.01)
        r = await client.post("/commands/remote_stop/EVSE001", json={"transaction_id": tx_id})
        assert r.json()["status"] == "Accepted"

        async def stopped():
            tx = (await client.get(f"/transactions/{tx_id}")).json()
            return tx if not tx["active"] else None

        tx = await wait_for(stopped)
        assert tx["stop_reason"] == "Remote"
        assert tx["energy_wh"] > 0
        assert len(tx["meter_values"]) >= 2

        async def available():
            return (await charger_status(client))["connectors"][1]["status"] == "Available"

        await wait_for(available)
        assert not charger.sessions


async def test_remote_stop_of_unknown_transaction_is_rejected(db):
    async with running_backend(db) as backend, charger_running(backend), api(backend) as client:
        r = await client.post("/commands/remote_stop/EVSE001", json={"transaction_id": 999})
        assert r.json()["status"] == "Rejected"


async def test_reset_reconnects_and_boots_again(db):
    async with charger_setup(db) as (charger, client):
        boots = charger.boot_count
        r = await client.post("/commands/reset/EVSE001", json={"type": "Hard"})
        assert r.json()["status"] == "Accepted"
        await wait_for(lambda: _async(charger.boot_count > boots and charger.online))
        state = await charger_status(client)
        assert state["connection"] == "online"


async def test_soft_reset_stops_the_transaction_with_soft_reset_reason(db):
    async with charger_setup(db) as (charger, client):
        await client.post("/commands/remote_start/EVSE001", json={"id_tag": "USER123"})
        await wait_for(
            lambda: _async(
                charger.sessions and next(iter(charger.sessions.values())).transaction_id
            )
        )
        await client.post("/commands/reset/EVSE001", json={"type": "Soft"})

        async def stopped():
            txs = (await client.get("/transactions")).json()["transactions"]
            return txs if txs and not txs[0]["active"] else None

        txs = await wait_for(stopped)
        assert txs[0]["stop_reason"] == "SoftReset"


async def test_change_availability_inoperative_then_operative(db):
    async with running_backend(db) as backend, charger_running(backend), api(backend) as client:
        r = await client.post(
            "/commands/change_availability/EVSE001", json={"type": "Inoperative", "connector_id": 1}
        )
        assert r.json()["status"] == "Accepted"
        await wait_for(lambda: _status_is(client, 1, "Unavailable"))
        r = await client.post(
            "/commands/remote_start/EVSE001", json={"id_tag": "USER123", "connector_id": 1}
        )
        assert r.json()["status"] == "Rejected"
        r = await client.post(
            "/commands/change_availability/EVSE001", json={"type": "Operative", "connector_id": 1}
        )
        await wait_for(lambda: _status_is(client, 1, "Available"))


async def test_change_availability_is_scheduled_during_a_session(db):
    async with charger_setup(db) as (charger, client):
        await client.post("/commands/remote_start/EVSE001", json={"id_tag": "USER123"})
        await wait_for(lambda: _status_is(client, 1, "Charging"))
        r = await client.post("/commands/change_availability/EVSE001", json={"type": "Inoperative"})
        assert r.json()["status"] == "Scheduled"
        tx = charger.sessions[1].transaction_id
        await client.post("/commands/remote_stop/EVSE001", json={"transaction_id": tx})
        await wait_for(lambda: _status_is(client, 1, "Unavailable"))


async def test_unlock_connector_answers_unlocked(db):
    async with running_backend(db) as backend, charger_running(backend), api(backend) as client:
        r = await client.post("/commands/unlock_connector/EVSE001", json={"connector_id": 1})
        assert r.json()["status"] == "Unlocked"


async def test_configuration_answers(db):
    async with charger_setup(db) as (charger, client):
        r = (
            await client.post(
                "/commands/get_configuration/EVSE001", json={"keys": ["HeartbeatInterval", "Nope"]}
            )
        ).json()
        assert r["configurationKey"][0]["key"] == "HeartbeatInterval"
        assert r["unknownKey"] == ["Nope"]
        everything = (await client.post("/commands/get_configuration/EVSE001")).json()
        keys = {k["key"] for k in everything["configurationKey"]}
        assert {
            "MeterValueSampleInterval",
            "NumberOfConnectors",
            "LocalAuthListEnabled",
            "TransactionMessageAttempts",
            "SupportedFeatureProfiles",
        } <= keys
        answers = {}
        for key, value in [
            ("NumberOfConnectors", "4"),
            ("HeartbeatInterval", "abc"),
            ("NoSuchKey", "1"),
            ("HeartbeatInterval", "60"),
            ("WebSocketPingInterval", "30"),
        ]:
            answers[(key, value)] = (
                await client.post(
                    "/commands/change_configuration/EVSE001", json={"key": key, "value": value}
                )
            ).json()["status"]
        assert answers == {
            ("NumberOfConnectors", "4"): "Rejected",
            ("HeartbeatInterval", "abc"): "Rejected",
            ("NoSuchKey", "1"): "NotSupported",
            ("HeartbeatInterval", "60"): "Accepted",
            ("WebSocketPingInterval", "30"): "RebootRequired",
        }
        assert charger.configuration["HeartbeatInterval"] == "60"


async def test_send_local_list_and_version(db):
    async with charger_setup(db) as (charger, client):
        r = (
            await client.post(
                "/commands/send_local_list/EVSE001",
                json={"id_tag": "NEWCARD123", "status": "Accepted"},
            )
        ).json()
        assert r["status"] == "Accepted"
        v = (await client.post("/commands/get_local_list_version/EVSE001")).json()
        assert v["listVersion"] == r["list_version"]
        assert charger.auth.entries["NEWCARD123"].status == "Accepted"


async def test_trigger_message_status_notification(db):
    async with running_backend(db) as backend, charger_running(backend), api(backend) as client:
        r = (
            await client.post(
                "/commands/trigger_message/EVSE001",
                json={"requested_message": "StatusNotification", "connector_id": 1},
            )
        ).json()
        assert r["status"] == "Accepted"

        async def triggered():
            log = (
                await client.get(
                    "/chargers/EVSE001/messages",
                    params={"action": "StatusNotification", "limit": 20},
                )
            ).json()
            return (
                sum(1 for m in log["messages"] if m["direction"] == "in" and m["message_type"] == 2)
                >= 3
            )

        await wait_for(triggered)


async def test_charging_profile_lowers_power(db):
    profile = {
        "chargingProfileId": 7,
        "stackLevel": 1,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7000.0}],
        },
    }
    async with charger_setup(db) as (charger, client):
        r = (
            await client.post(
                "/commands/set_charging_profile/EVSE001",
                json={"connector_id": 1, "cs_charging_profiles": profile},
            )
        ).json()
        assert r["status"] == "Accepted"
        await client.post("/commands/remote_start/EVSE001", json={"id_tag": "USER123"})
        await wait_for(lambda: _status_is(client, 1, "Charging"))
        assert charger.meters[1].power_w == pytest.approx(7000)
        sched = (
            await client.post(
                "/commands/get_composite_schedule/EVSE001", json={"connector_id": 1, "duration": 60}
            )
        ).json()
        assert sched["status"] == "Accepted"
        assert sched["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == pytest.approx(
            7000
        )
        r = (await client.post("/commands/clear_charging_profile/EVSE001", json={"id": 7})).json()
        assert r["status"] == "Accepted"
        assert charger.meters[1].power_w == pytest.approx(22000)


async def test_reservation_and_cancel(db):
    async with running_backend(db) as backend, charger_running(backend), api(backend) as client:
        r = (
            await client.post(
                "/commands/reserve_now/EVSE001",
                json={
                    "connector_id": 1,
                    "expiry_date": "2099-01-01T00:00:00Z",
                    "id_tag": "USER123",
                    "reservation_id": 5,
                },
            )
        ).json()
        assert r["status"] == "Accepted"
        await wait_for(lambda: _status_is(client, 1, "Reserved"))
        r = (
            await client.post("/commands/cancel_reservation/EVSE001", json={"reservation_id": 5})
        ).json()
        assert r["status"] == "Accepted"
        await wait_for(lambda: _status_is(client, 1, "Available"))


async def test_diagnostics_and_firmware_report_progress(db):
    async with charger_setup(db) as (charger, client):
        r = (
            await client.post(
                "/commands/get_diagnostics/EVSE001", json={"location": "ftp://example.invalid/"}
            )
        ).json()
        assert r["fileName"].startswith("diagnostics-EVSE001")
        r = (
            await client.post(
                "/commands/update_firmware/EVSE001",
                json={
                    "location": "ftp://example.invalid/fw.bin",
                    "retrieve_date": "2024-01-01T00:00:00Z",
                },
            )
        ).json()
        assert (r["cp_id"], r["action"]) == ("EVSE001", "UpdateFirmware")
        assert r["firmware"]["update_firmware"]["location"] == "ftp://example.invalid/fw.bin"

        async def installed():
            log = (await client.get("/chargers/EVSE001/messages", params={"limit": 200})).json()[
                "messages"
            ]
            fw = [
                m["payload"].get("status")
                for m in log
                if m["action"] == "FirmwareStatusNotification" and m["direction"] == "in"
            ]
            diag = [
                m["payload"].get("status")
                for m in log
                if m["action"] == "DiagnosticsStatusNotification" and m["direction"] == "in"
            ]
            return "Installed" in fw and "Uploaded" in diag

        await wait_for(installed)
        await wait_for(lambda: _async(charger.boot_count >= 2 and charger.online))
        assert charger.firmware_version.endswith("+update")
        firmware = (await client.get("/chargers/EVSE001/firmware")).json()
        assert (firmware["firmware_status"], firmware["diagnostics_status"]) == (
            "Installed",
            "Uploaded",
        )
        assert firmware["update_firmware"]["done"] is True


async def test_fleet_of_100_connects_and_heartbeats(db, autojump_clock):
    """On trio's clock: every charger has sent a heartbeat one interval (60 s) after all
    are online."""
    from libv4e import FleetConfig, serve_fleet

    autojump_clock.autojump_threshold = 0.01  # no jump while loopback I/O is in flight
    async with running_backend(db, heartbeat_interval=60) as backend, api(backend) as client:
        config = FleetConfig.from_first_id(url=ws_url(backend), first_id="EVSE001", count=100)
        async with trio.open_nursery() as nursery:
            chargers = await nursery.start(serve_fleet, config)

            async def all_online():
                s = (await client.get("/status")).json()
                return s if s["total_online"] == 100 else None

            await wait_for(all_online, timeout=60, interval=1)
            await trio.sleep(65)
            s = (await client.get("/status")).json()
            beats = sum(1 for cp in s["charge_points"].values() if cp["last_heartbeat"])
            assert beats == 100
            assert sorted(s["charge_points"]) == [f"EVSE{i:03d}" for i in range(1, 101)]
            assert all(c.summary() == "idle" for c in chargers)
            nursery.cancel_scope.cancel()


async def _async(value):
    return value


async def _status_is(client, connector, status):
    return (await charger_status(client))["connectors"][connector]["status"] == status


async def test_csms_restart_mid_transaction_loses_and_duplicates_nothing(db):
    """The CSMS dies while a charger charges; the charger queues its transaction messages,
    reconnects when the CSMS is back, and the CSMS closes the transaction correctly."""
    charger = Charger(
        ChargerConfig(
            cp_id="EVSE001",
            reboot_delay=0.2,
            unplug_delay=0.3,
            reconnect_min=0.1,
            reconnect_max=0.3,
        )
    )
    async with trio.open_nursery() as outer:
        async with running_backend(db) as backend, api(backend) as client:
            port = backend.ws_port
            await outer.start(charger.run, ws_url(backend))
            with trio.fail_after(10):
                await charger.connected_event.wait()
            await client.post(
                "/commands/change_configuration/EVSE001",
                json={"key": "MeterValueSampleInterval", "value": "1"},
            )
            await client.post("/commands/remote_start/EVSE001", json={"id_tag": "USER123"})
            await wait_for(lambda: _async(charger.sessions and charger.sessions[1].transaction_id))
            tx_id = charger.sessions[1].transaction_id
        # the CSMS is gone: the charger keeps charging and queues meter values
        await wait_for(lambda: _async(not charger.online))
        await wait_for(lambda: _async(charger.queued >= 2))  # meter values kept while offline
        charger.end_session(1, enums.Reason.local)  # the driver stops while offline
        queued = charger.queued
        assert queued >= 3  # meter values and the StopTransaction
        energy = round(charger.meters[1].energy_wh)
        async with running_backend(db, ws_port=port) as backend, api(backend) as client:

            async def closed():
                tx = (await client.get(f"/transactions/{tx_id}")).json()
                return tx if not tx["active"] else None

            tx = await wait_for(closed, timeout=15)
            assert tx["meter_stop"] == energy
            assert tx["stop_reason"] == "Local"
            stamps = [mv["timestamp"] for mv in tx["meter_values"]]
            assert len(stamps) == len(set(stamps))  # nothing counted twice
            assert stamps == sorted(stamps)  # delivered in order
            # the boot's StatusNotifications queue behind the transaction messages: the
            # queue drains just after the StopTransaction is in
            await wait_for(lambda: _async(charger.queued == 0), timeout=5)
            outer.cancel_scope.cancel()


def test_inoperative_connectors_come_back_unavailable_after_a_restart(tmp_path):
    """ChangeAvailability Inoperative is kept in flash: a restarted charger's connectors
    (the whole charge point too) start Unavailable, through the status machine."""
    config = ChargerConfig(cp_id="INOP", connectors=2, state_path=str(tmp_path / "s.json"))
    before = Charger(config)
    before.connectors[0].inoperative = before.connectors[2].inoperative = True
    before.persist()
    after = Charger(config)
    after.runtime.restore()
    statuses = {i: c.status for i, c in after.connectors.items()}
    assert statuses == {0: "Unavailable", 1: "Available", 2: "Unavailable"}
    assert [c.inoperative for c in after.connectors.values()] == [True, False, True]
    # and the machine lets them back: Operative makes them Available
    assert after.connectors[2].apply(ConnectorEvent.OPERATIVE) == "Available"
