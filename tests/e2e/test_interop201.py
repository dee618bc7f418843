"""Interoperability with an OCPP 2.0.1 implementation written elsewhere: the `ocpp`
package's asyncio 2.0.1 ChargePoint on `websockets`, in a separate process, against our
CSMS on the port that also serves 1.6. The package validates every answer it gets
against its 2.0.1 schemas (a bad one would fail its call and stop the peer)."""

from __future__ import annotations

import pytest
import trio

from libv4e import Charger, ChargerConfig, open_ocpp
from tests.support import INTEROP, api, running_backend, start_peer, wait_for, ws_url

pytest.importorskip("websockets")


async def test_the_ocpp_package_2_0_1_charger_against_our_csms(tmp_path):
    async with (
        running_backend(str(tmp_path / "v4e.db")) as backend,
        api(backend) as client,
        trio.open_nursery() as nursery,
    ):
        await client.post("/id_tags", json={"id_tag": "GOOD1", "status": "Accepted"})
        await client.post("/id_tags", json={"id_tag": "BLOCK1", "status": "Blocked"})
        peer = await start_peer(
            nursery, str(INTEROP / "ocpp201_reference_charger.py"), ws_url(backend), "REF201"
        )
        assert (await peer.wait_for("connected"))["subprotocol"] == "ocpp2.0.1"
        boot = await peer.wait_for("BootNotification.conf")
        assert (boot["status"], boot["interval"]) == ("Accepted", 30)
        assert (await peer.wait_for("Authorize.conf", id_token="GOOD1"))["status"] == "Accepted"
        assert (await peer.wait_for("Authorize.conf", id_token="BLOCK1"))["status"] == "Blocked"
        await peer.wait_for("NotifyEvent.conf")
        assert (await peer.wait_for("DataTransfer.conf"))["status"] == "UnknownVendorId"
        started = await peer.wait_for("TransactionEvent.conf", kind="Started")
        assert started["status"] == "Accepted"
        await peer.wait_for("ready")
        (tx,) = (await client.get("/transactions", params={"cp_id": "REF201"})).json()[
            "transactions"
        ]
        assert (tx["charger_transaction_id"], tx["connector_id"], tx["id_tag"]) == (
            "TX-1",
            1,
            "GOOD1",
        )
        assert (tx["active"], tx["meter_start"], tx["last_meter_wh"]) == (True, 10000, 10500)

        # the seed's commands, unchanged, on a 2.0.1 charger
        async def command(name: str, body: dict) -> dict:
            answer = await client.post(f"/commands/{name}/REF201", json=body)
            assert answer.status_code == 200, answer.text
            return answer.json()

        assert (await command("remote_start", {"id_tag": "USER123", "connector_id": 2}))[
            "status"
        ] == "Accepted"
        asked = await peer.wait_for("RequestStartTransaction")
        assert (asked["id_token"], asked["evse_id"]) == (
            {"id_token": "USER123", "type": "Central"},
            2,
        )
        assert (await command("reset", {"type": "Soft"}))["status"] == "Accepted"
        assert (await peer.wait_for("Reset"))["type"] == "Immediate"
        assert (await command("unlock_connector", {"connector_id": 2}))["status"] == "Unlocked"
        unlocked = await peer.wait_for("UnlockConnector")
        assert (unlocked["evse_id"], unlocked["connector_id"]) == (2, 1)
        body = {"type": "Inoperative", "connector_id": 2}
        assert (await command("change_availability", body))["status"] == "Accepted"
        availability = await peer.wait_for("ChangeAvailability")
        assert (availability["operational_status"], availability["evse"]) == (
            "Inoperative",
            {"id": 2},
        )
        body = {"key": "HeartbeatInterval", "value": "60"}
        assert (await command("change_configuration", body))["status"] == "Accepted"
        assert (await peer.wait_for("SetVariables"))["value"] == "60"
        got = await command("get_configuration", {"keys": ["HeartbeatInterval"]})
        assert got["configurationKey"] == [
            {"key": "HeartbeatInterval", "readonly": False, "value": "60"}
        ], got
        got = await command(
            "get_variables",
            {"variables": [{"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"}]},
        )
        assert got["getVariableResult"][0]["attributeValue"] == "60", got
        body = {"variables": [{"component": "AuthCtrlr", "variable": "Enabled", "value": "true"}]}
        assert (await command("set_variables", body))["setVariableResult"][0][
            "attributeStatus"
        ] == "Accepted"
        schedule = await command("get_composite_schedule", {"connector_id": 1, "duration": 60})
        assert (await peer.wait_for("GetCompositeSchedule"))["evse_id"] == 1
        assert {
            k: schedule.get(k)
            for k in ("status", "connectorId", "scheduleStart", "chargingSchedule")
        } == {
            "status": "Accepted",
            "connectorId": 1,
            "scheduleStart": "2030-01-01T00:00:00Z",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 32.0},
                    {"startPeriod": 30, "limit": 16.0, "numberPhases": 3},
                ],
                "duration": 60,
                "startSchedule": "2030-01-01T00:00:00Z",
            },
        }, schedule
        # any 2.0.1 call as it goes on the wire: answered as the station answers it
        raw = await client.post(
            "/ocpp201/GetTransactionStatus/REF201", json={"transactionId": "TX-1"}
        )
        assert raw.status_code == 200, raw.text
        assert (raw.json()["ongoingIndicator"], raw.json()["messagesInQueue"]) == (True, False)
        assert (await peer.wait_for("GetTransactionStatus"))["transaction_id"] == "TX-1"
        bad = await client.post("/ocpp201/GetTransactionStatus/REF201", json={"transactionId": 5})
        assert bad.status_code == 422 and bad.json()["error"] == "invalid_body", bad.text
        booked = await client.post(
            "/ocpp201/ReserveNow/REF201",
            json={
                "id": 1,
                "expiryDateTime": "2099-01-01T00:00:00Z",
                "idToken": {"idToken": "A", "type": "Central"},
            },
        )
        assert booked.status_code == 409 and "/commands/reserve_now" in booked.json()["message"]
        unknown = await client.post("/ocpp201/BootNotification/REF201", json={})
        assert unknown.status_code == 404 and "GetReport" in unknown.json()["actions"]
        refused = await client.post(
            "/commands/change_configuration/REF201", json={"key": "NoSuchKey", "value": "1"}
        )
        assert refused.status_code == 409 and refused.json()["error"] == "unsupported_for_version"
        assert "NoSuchKey" in refused.json()["message"], refused.json()

        stop = await command("remote_stop", {"transaction_id": tx["transaction_id"]})
        assert stop["status"] == "Accepted"
        assert (await peer.wait_for("RequestStopTransaction"))["transaction_id"] == "TX-1"
        await peer.wait_for("TransactionEvent.conf", kind="Ended")
        ended = (await client.get(f"/transactions/{tx['transaction_id']}")).json()
        assert (ended["active"], ended["meter_stop"], ended["energy_wh"]) == (False, 11250, 1250)
        assert ended["stop_reason"] == "Remote"

        state = (await client.get("/chargers/REF201")).json()
        assert state["ocpp_version"] == "2.0.1"
        assert state["boot"] == {
            **state["boot"],
            "status": "Accepted",
            "vendor": "RefVendor201",
            "model": "Ref201",
            "serial_number": "SN-201",
            "firmware_version": "2.0.1-fw",
            "reason": "PowerUp",
        }
        assert state["last_heartbeat"] is not None
        statuses = {c["connector_id"]: c["status"] for c in state["connectors"]}
        # one connector per EVSE; Occupied without a session reads Preparing (1.6 words)
        assert statuses == {1: "Available", 2: "Preparing"}
        listed = (await client.get("/status")).json()["charge_points"]["REF201"]
        assert listed["ocpp_version"] == "2.0.1"
        # the rest of the API takes a 2.0.1 charger's records without failing
        for path in ("/chargers/REF201/messages", "/chargers/REF201/diagnosis", "/dashboard"):
            assert (await client.get(path)).status_code == 200, path

        model = backend.csms.registry.device_model("REF201")
        # reported 30, then set to 60 by the change_configuration the station Accepted
        assert model.value("OCPPCommCtrlr", "HeartbeatInterval") == "60"
        assert model.value("EVSE", "AvailabilityState", evse_id=1) == "Available"
        assert model.value("Connector", "AvailabilityState", evse_id=2) == "Faulted"
        assert [e["tech_code"] for e in model.events] == ["E42"]
        reported = (await client.get("/chargers/REF201/device_model")).json()
        assert reported["ocpp_version"] == "2.0.1" and reported["dropped"] == 0
        assert {
            "component": "OCPPCommCtrlr",
            "variable": "HeartbeatInterval",
            "attribute": "Actual",
            "value": "60",
            "mutability": "ReadWrite",  # as reported: the set value keeps it
            "source": "SetVariables",
        }.items() <= reported["variables"][0].items()
        assert reported["events"][0]["trigger"] == "Delta"
        assert (await client.get("/chargers/NOPE/device_model")).status_code == 404

        async with open_ocpp(ws_url(backend), "OLD16") as old:  # 1.6 on the same port
            assert old.version == "ocpp1.6"
        assert (await client.get("/chargers/OLD16")).status_code == 404  # never booted
        nursery.cancel_scope.cancel()


async def test_our_2_0_1_station_against_the_ocpp_package_central_system():
    """Our simulator as a 2.0.1 station against a central system built on the `ocpp`
    package's 2.0.1 classes (which validate every message): boot, status, the device
    model (Get/SetVariables, GetBaseReport), TriggerMessage, a whole remotely started
    and stopped session, unlock, availability, reset."""
    async with trio.open_nursery() as nursery:
        peer = await start_peer(nursery, str(INTEROP / "ocpp201_reference_csms.py"))
        port = (await peer.wait_for("listening"))["port"]
        charger = Charger(
            ChargerConfig(cp_id="SIM201", ocpp_version="2.0.1", reconnect_min=0.1, reboot_delay=0.2)
        )
        await nursery.start(charger.run, f"ws://127.0.0.1:{port}")
        connected = await peer.wait_for("connected")
        assert (connected["cp_id"], connected["subprotocol"]) == ("SIM201", "ocpp2.0.1")
        assert (await peer.wait_for("BootNotification"))["reason"] == "PowerUp"
        await peer.wait_for("StatusNotification", evse_id=1, status="Available")
        got = (await peer.wait_for("GetVariables.conf"))["results"]
        assert got == [["Accepted", "10"], ["UnknownVariable", None]]  # the boot's interval
        assert (await peer.wait_for("SetVariables.conf"))["status"] == "Accepted"
        assert charger.configuration["MeterValueSampleInterval"] == "5"
        assert (await peer.wait_for("GetBaseReport.conf"))["status"] == "Accepted"
        report = await peer.wait_for("NotifyReport")
        assert report["request_id"] == 7
        assert "OCPPCommCtrlr.HeartbeatInterval" in report["variables"]
        assert (await peer.wait_for("TriggerMessage.conf"))["status"] == "Accepted"
        assert (await peer.wait_for("RequestStartTransaction.conf"))["status"] == "Accepted"
        started = await peer.wait_for("TransactionEvent", type="Started")
        assert (started["seq_no"], started["id_token"]) == (0, "INTEROP1")
        updated = await peer.wait_for("TransactionEvent", type="Updated")
        assert updated["seq_no"] == 1 and updated["transaction_id"] == started["transaction_id"]
        assert (await peer.wait_for("SetChargingProfile.conf"))["status"] == "Accepted"
        composite = await peer.wait_for("GetCompositeSchedule.conf")
        assert composite["status"] == "Accepted", composite
        schedule = composite["schedule"]
        assert (schedule["evse_id"], schedule["duration"], schedule["charging_rate_unit"]) == (
            1,
            600,
            "A",
        )
        (period,) = schedule["charging_schedule_period"]
        assert period["start_period"] == 0 and period["limit"] <= 10.0
        assert (await peer.wait_for("RequestStopTransaction.conf"))["status"] == "Accepted"
        ended = await peer.wait_for("TransactionEvent", type="Ended")
        assert ended["stopped_reason"] == "Remote"
        assert ended["transaction_id"] == started["transaction_id"]
        assert ended["values"][-1] >= started["values"][0]
        assert (await peer.wait_for("UnlockConnector.conf"))["status"] in (
            "Unlocked",
            "UnlockFailed",
        )
        assert (await peer.wait_for("ChangeAvailability.conf"))["status"] in (
            "Accepted",
            "Scheduled",
        )
        assert (await peer.wait_for("Reset.conf"))["status"] == "Accepted"
        assert (await peer.wait_for("BootNotification"))["reason"] == "PowerUp"  # rebooted
        nursery.cancel_scope.cancel()


async def test_the_ocpp_package_2_0_1_charger_and_our_csms_speak_the_security_messages(tmp_path):
    """The package's 2.0.1 ChargePoint sends SignCertificate with a real CSR to our CSMS
    (configured with a charger CA) and gets a CertificateSigned whose chain verifies (it
    checks it itself, and so do we against the CA); a V2G certificate is refused. It
    answers our InstallCertificate / GetInstalledCertificateIds / DeleteCertificate —
    with the hashes it computes itself — through the seed's REST routes."""
    from cryptography import x509

    from libv4e.csms import CertificateAuthority, CsmsConfig
    from libv4e.protocol import hash_data, load_pem_chain
    from libv4e_apps.csms.backend import BackendConfig, serve_backend

    ca = CertificateAuthority.create("interop charger CA")
    config = BackendConfig(
        host="127.0.0.1",
        ws_port=0,
        api_port=0,
        db_path=str(tmp_path / "v4e.db"),
        csms=CsmsConfig(),
        charger_ca=ca,
    )
    async with trio.open_nursery() as nursery:
        backend = await nursery.start(
            lambda task_status: serve_backend(config, task_status=task_status)
        )
        async with api(backend) as client:
            peer = await start_peer(
                nursery, str(INTEROP / "ocpp201_security_charger.py"), ws_url(backend), "SEC201"
            )
            assert (await peer.wait_for("connected"))["subprotocol"] == "ocpp2.0.1"
            assert (await peer.wait_for("BootNotification.conf"))["status"] == "Accepted"
            refused = await peer.wait_for("SignCertificate.conf", kind="V2GCertificate")
            assert refused["status"] == "Rejected"
            asked = await peer.wait_for("SignCertificate.conf", kind="ChargingStationCertificate")
            assert asked["status"] == "Accepted"
            signed = await peer.wait_for("CertificateSigned")
            assert signed["certificate_type"] == "ChargingStationCertificate"
            assert (signed["verified"], signed["mine"], signed["subject"]) == (True, True, "SEC201")
            leaf = x509.load_pem_x509_certificates(signed["chain"].encode())[0]
            leaf.verify_directly_issued_by(
                x509.load_pem_x509_certificate(ca.certificate_pem.encode())
            )

            async def accepted():
                certs = (await client.get("/chargers/SEC201/security")).json()["certificates"]
                return certs if certs and certs[-1]["status"] == "Accepted" else None

            (cert,) = await wait_for(accepted)
            assert cert["subject"] == "SEC201"
            assert cert["hash_data"]["serialNumber"] == format(leaf.serial_number, "x")

            async def command(name: str, body: dict) -> dict:
                answer = await client.post(f"/commands/{name}/SEC201", json=body)
                assert answer.status_code == 200, answer.text
                return answer.json()

            root = CertificateAuthority.create("interop CSMS root").certificate_pem
            expected = hash_data(*load_pem_chain(root) * 2)
            kind = {"certificate_type": "CentralSystemRootCertificate"}
            installed = await command("install_certificate", {**kind, "certificate": root})
            assert installed["status"] == "Accepted"
            assert installed["certificate"]["status"] == "Installed"
            sent = await peer.wait_for("InstallCertificate")
            assert sent["certificate_type"] == "CSMSRootCertificate"
            listed = await command("get_installed_certificate_ids", kind)
            assert listed["status"] == "Accepted"
            assert listed["certificateHashData"] == [expected]  # its hashes are ours
            asked_ids = await peer.wait_for("GetInstalledCertificateIds")
            assert asked_ids["certificate_type"] == ["CSMSRootCertificate"]
            body = {
                "certificate_hash_data": {
                    "hash_algorithm": "SHA256",
                    "issuer_name_hash": expected["issuerNameHash"],
                    "issuer_key_hash": expected["issuerKeyHash"],
                    "serial_number": expected["serialNumber"],
                }
            }
            assert (await command("delete_certificate", body))["status"] == "Accepted"
            deleted = await peer.wait_for("DeleteCertificate")
            assert deleted["serial_number"] == expected["serialNumber"]
            assert (await command("get_installed_certificate_ids", kind))["status"] == "NotFound"
            assert (await command("delete_certificate", body))["status"] == "NotFound"
            sec = (await client.get("/chargers/SEC201/security")).json()
            statuses = {c["certificate_type"]: c["status"] for c in sec["certificates"]}
            assert statuses == {
                "ChargePointCertificate": "Accepted",
                "CentralSystemRootCertificate": "Deleted",
            }
        nursery.cancel_scope.cancel()
