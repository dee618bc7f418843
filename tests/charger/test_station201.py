"""The simulated charger as an OCPP 2.0.1 charging station (``charger/_station201``):
every message it produces is valid against the ``ocpp`` package's 2.0.1 schemas, a
session is TransactionEvent Started / Updated / Ended with its own id and a seqNo from 0
without holes, events queued while offline say so, and the seed's REST commands drive it
through our central system like a 1.6 charger."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json

import pytest
import trio
from ocpp.charge_point import remove_nones, snake_to_camel_case
from ocpp.messages import Call, CallResult, _validate_payload
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16 import datatypes as data16
from ocpp.v16 import enums as enums16

from libv4e.charger._station201 import CONNECTOR_STATUS, STOPPED_REASON, Station201
from libv4e.protocol._time import iso
from tests.support import charger_running, simulated_backend, wait_for

T0 = dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.UTC)


def at(seconds: float) -> str:
    return (T0 + dt.timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def valid_201(obj) -> dict:
    payload = snake_to_camel_case(remove_nones(dataclasses.asdict(obj)))
    _validate_payload(Call("1", type(obj).__name__, payload), "2.0.1")
    return payload


def station() -> Station201:
    return Station201("CS1", lambda: T0 + dt.timedelta(minutes=10))


def meter(value: str, seconds: float) -> data16.MeterValue:
    return data16.MeterValue(
        timestamp=at(seconds),
        sampled_value=[
            data16.SampledValue(value=value, measurand="Energy.Active.Import.Register", unit="Wh"),
            data16.SampledValue(value="7200", measurand="Power.Active.Import", unit="W"),
            data16.SampledValue(value="not a number", measurand="Current.Import", unit="A"),
        ],
    )


def test_every_message_of_a_session_is_valid_201_with_seq_numbers_from_0():
    s = station()
    connected = T0 + dt.timedelta(minutes=10)
    online = T0 + dt.timedelta(seconds=0)
    started, read = s.outbound(
        call16.StartTransaction(
            connector_id=2, id_tag="CARD1", meter_start=1000, timestamp=at(700)
        ),
        online,
    )
    body = valid_201(started)
    assert (body["eventType"], body["seqNo"], body["evse"], body["idToken"]["idToken"]) == (
        "Started",
        0,
        {"id": 2, "connectorId": 1},
        "CARD1",
    )
    local = read({"id_token_info": {"status": "Accepted"}}).transaction_id
    tid = body["transactionInfo"]["transactionId"]
    assert tid == str(local)
    again, _ = s.outbound(
        call16.StartTransaction(
            connector_id=2, id_tag="CARD1", meter_start=1000, timestamp=at(700)
        ),
        online,
    )
    assert valid_201(again) == body, "a resent start is the same message"
    seqs = [0]
    for i in range(3):
        updated, _ = s.outbound(
            call16.MeterValues(
                connector_id=2, transaction_id=local, meter_value=[meter(str(1100 + i), 710 + i)]
            ),
            online,
        )
        body = valid_201(updated)
        seqs.append(body["seqNo"])
        assert body["meterValue"][0]["sampledValue"][0]["value"] == 1100 + i
        assert len(body["meterValue"][0]["sampledValue"]) == 2, "not a number: left out"
    for reason, (stopped, _trigger) in STOPPED_REASON.items():
        s2 = station()
        s2._seq[str(local)] = 5
        ended, _ = s2.outbound(
            call16.StopTransaction(
                meter_stop=2000, timestamp=at(800), transaction_id=local, reason=reason
            ),
            online,
        )
        assert valid_201(ended)["transactionInfo"]["stoppedReason"] == stopped
    ended, read = s.outbound(
        call16.StopTransaction(meter_stop=2000, timestamp=at(800), transaction_id=local),
        online,
    )
    body = valid_201(ended)
    seqs.append(body["seqNo"])
    assert seqs == [0, 1, 2, 3, 4], "seqNo from 0 without holes"
    assert body["meterValue"][0]["sampledValue"][0]["value"] == 2000
    assert read({}) == result16.StopTransaction()
    # queued while offline: the events say so
    late, _ = s.outbound(
        call16.StartTransaction(connector_id=1, id_tag="C", meter_start=0, timestamp=at(30)),
        connected,
    )
    assert valid_201(late)["offline"] is True


@pytest.mark.parametrize("status", list(CONNECTOR_STATUS))
def test_each_connector_status_is_a_valid_201_one(status):
    request, _ = station().outbound(
        call16.StatusNotification(
            connector_id=1, error_code="NoError", status=status, timestamp=at(0)
        ),
        T0,
    )
    assert valid_201(request)["connectorStatus"] == CONNECTOR_STATUS[status]


def test_the_other_messages_are_valid_201():
    s = station()
    messages = [
        call16.BootNotification(
            charge_point_model="M", charge_point_vendor="V", firmware_version="1"
        ),
        call16.Heartbeat(),
        call16.Authorize(id_tag="CARD1"),
        call16.MeterValues(connector_id=1, meter_value=[meter("5", 1)]),
        call16.DataTransfer(vendor_id="v", message_id="m", data="x"),
        call16.FirmwareStatusNotification(status=enums16.FirmwareStatus.installed),
        call16.DiagnosticsStatusNotification(status=enums16.DiagnosticsStatus.uploaded),
    ]
    for message in messages:
        request, _ = s.outbound(message, T0)
        valid_201(request)
    skipped, read = s.outbound(
        call16.StatusNotification(connector_id=0, error_code="NoError", status="Available"), T0
    )
    assert skipped is None and read(None) == result16.StatusNotification()


IDS = itertools.count(1)


async def test_the_seeds_commands_drive_a_201_station_through_our_csms(autojump_clock):
    """On trio's clock: our 2.0.1 station against our CSMS — boot, remote start, meter
    values, remote stop, reset, configuration — with the seed's REST commands."""
    async with (
        simulated_backend() as (backend, client),
        charger_running(backend, ocpp_version="2.0.1", clock=backend.csms.clock) as charger,
    ):
        state = (await client.get("/chargers/EVSE001")).json()
        assert state["ocpp_version"] == "2.0.1"
        assert state["connectors"][0]["status"] == "Available"
        r = await client.post(
            "/commands/change_configuration/EVSE001",
            json={"key": "MeterValueSampleInterval", "value": "10"},
        )
        assert r.json()["status"] == "Accepted"
        got = (
            await client.post(
                "/commands/get_configuration/EVSE001", json={"keys": ["MeterValueSampleInterval"]}
            )
        ).json()
        assert got["configurationKey"][0]["value"] == "10"
        r = await client.post(
            "/commands/remote_start/EVSE001", json={"id_tag": "USER123", "connector_id": 1}
        )
        assert r.json()["status"] == "Accepted"

        async def running():
            txs = (await client.get("/transactions", params={"active": "true"})).json()
            return txs["transactions"]

        (tx,) = await wait_for(running)
        assert tx["charger_transaction_id"] == str(charger.sessions[1].transaction_id)
        await wait_for(lambda: _later(client, tx["transaction_id"], tx["meter_start"]), timeout=60)
        # a TxProfile for the running session: the station installs it, and its composite
        # schedule (asked as 1.6's GetCompositeSchedule) is the limit the profile sets
        profile = {
            "chargingProfileId": 31,
            "stackLevel": 2,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative",
            "transactionId": tx["transaction_id"],
            "chargingSchedule": {
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 3700.0}],
            },
        }
        body = {"connector_id": 1, "cs_charging_profiles": profile}
        r = await client.post("/commands/set_charging_profile/EVSE001", json=body)
        assert r.status_code == 200 and r.json()["status"] == "Accepted", r.text
        (installed_profile,) = charger.profiles[1]
        assert (installed_profile.charging_profile_id, installed_profile.transaction_id) == (
            31,
            charger.sessions[1].transaction_id,
        )
        r = await client.post(
            "/commands/get_composite_schedule/EVSE001",
            json={"connector_id": 1, "duration": 300, "charging_rate_unit": "W"},
        )
        assert r.status_code == 200, r.text
        composite = r.json()
        assert (composite["status"], composite["connectorId"]) == ("Accepted", 1)
        assert composite["chargingSchedule"]["chargingRateUnit"] == "W"
        (period,) = composite["chargingSchedule"]["chargingSchedulePeriod"]
        assert period["startPeriod"] == 0 and period["limit"] <= 3700.0
        r = await client.post(
            "/commands/remote_stop/EVSE001", json={"transaction_id": tx["transaction_id"]}
        )
        assert r.json()["status"] == "Accepted"

        async def stopped():
            done = (await client.get(f"/transactions/{tx['transaction_id']}")).json()
            return done if not done["active"] else None

        done = await wait_for(stopped, timeout=30)
        assert done["stop_reason"] == "Remote" and done["flags"] == []
        # the dashboard's power history has the session's curve, closed by its end
        history = (await client.get("/chargers/EVSE001/meter_history")).json()
        (curve,) = history["connectors"]
        samples = curve["samples"]
        assert samples and all(x["transaction_id"] == tx["transaction_id"] for x in samples)
        assert any((x["power_w"] or 0) > 0 for x in samples)
        assert samples[-1]["power_w"] == 0 and samples[-1]["energy_wh"] == done["meter_stop"]
        assert done["meter_stop"] == round(charger.meters[1].energy_wh)  # the station's own
        boots = charger.boot_count
        assert (await client.post("/commands/reset/EVSE001", json={"type": "Soft"})).json()[
            "status"
        ] == "Accepted"
        await wait_for(lambda: _val(charger.boot_count > boots and charger.online), timeout=60)
        r = await client.post("/commands/unlock_connector/EVSE001", json={"connector_id": 1})
        assert r.status_code == 200 and r.json()["status"] in ("Unlocked", "UnlockFailed")
        # the rest of the seed's curls, and the operator books, on a 2.0.1 station
        body = {"type": "Inoperative", "connector_id": 1}
        r = await client.post("/commands/change_availability/EVSE001", json=body)
        assert r.json()["status"] == "Accepted"
        await wait_for(lambda: _connector_is(client, "Unavailable"))
        body = {"type": "Operative", "connector_id": 1}
        assert (await client.post("/commands/change_availability/EVSE001", json=body)).json()[
            "status"
        ] == "Accepted"
        await wait_for(lambda: _connector_is(client, "Available"))
        r = await client.post(
            "/commands/send_local_list/EVSE001",
            json={"id_tag": "NEWCARD123", "status": "Accepted", "parent_id_tag": "FLEET7"},
        )
        assert r.json()["status"] == "Accepted"
        entry = charger.auth.entries["NEWCARD123"]  # the parent tag went as the groupIdToken
        assert (entry.status, entry.parent_id_tag) == ("Accepted", "FLEET7")
        r = await client.post(
            "/commands/reserve_now/EVSE001",
            json={"connector_id": 1, "id_tag": "USER123", "expiry_date": "2099-01-01T00:00:00Z"},
        )
        assert r.json()["status"] == "Accepted"
        await wait_for(lambda: _connector_is(client, "Reserved"))
        reservation = r.json()["reservation"]["reservation_id"]
        r = await client.post(
            "/commands/cancel_reservation/EVSE001", json={"reservation_id": reservation}
        )
        assert r.json()["status"] == "Accepted"
        r = await client.post(
            "/commands/get_diagnostics/EVSE001", json={"location": "ftp://example.invalid/"}
        )
        assert r.json()["fileName"].startswith("diagnostics-EVSE001")
        r = await client.post(
            "/commands/update_firmware/EVSE001",
            json={
                "location": "ftp://example.invalid/fw.bin",
                "retrieve_date": "2024-01-01T00:00:00Z",
            },
        )
        assert r.status_code == 200, r.text

        async def installed():
            fw = (await client.get("/chargers/EVSE001/firmware")).json()
            return fw["firmware_status"] == "Installed" and fw["diagnostics_status"] == "Uploaded"

        await wait_for(installed, timeout=300)


async def _connector_is(client, status):
    state = (await client.get("/chargers/EVSE001")).json()
    return state["connectors"][0]["status"] == status


async def _later(client, tx_id, start):
    tx = (await client.get(f"/transactions/{tx_id}")).json()
    return (tx["last_meter_wh"] or 0) > start


async def _val(value):
    return value


async def test_201_native_commands_reach_a_201_station_and_a_16_charger_says_409(
    autojump_clock,
):
    async with (
        simulated_backend() as (backend, client),
        charger_running(backend, ocpp_version="2.0.1", clock=backend.csms.clock),
        charger_running(backend, cp_id="OLD16", clock=backend.csms.clock),
    ):
        r = await client.post("/commands/get_base_report/EVSE001", json={"request_id": 3})
        assert r.json()["status"] == "Accepted"

        async def reported():
            model = (await client.get("/chargers/EVSE001/device_model")).json()
            return model if model.get("variables") else None

        model = await wait_for(reported)
        assert "OCPPCommCtrlr" in str(model["variables"])
        body = {"variables": [{"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"}]}
        got = (await client.post("/commands/get_variables/EVSE001", json=body)).json()
        assert got["getVariableResult"][0]["attributeStatus"] == "Accepted"
        refused = await client.post("/commands/get_variables/OLD16", json=body)
        assert refused.status_code == 409
        assert refused.json()["error"] == "unsupported_for_version"
        assert "1.6" in refused.json()["message"]
        wire = {
            "getVariableData": [
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
            ]
        }
        raw = await client.post("/ocpp201/GetVariables/EVSE001", json=wire)
        assert raw.json()["getVariableResult"][0]["attributeStatus"] == "Accepted", raw.text
        refused = await client.post("/ocpp201/GetVariables/OLD16", json=wire)
        assert refused.status_code == 409
        assert refused.json()["error"] == "unsupported_for_version"
        # a 2.0.1 password change is not a 1.6 one either: nothing is sent, nothing rotated
        password = {
            "component": "SecurityCtrlr",
            "variable": "BasicAuthPassword",
            "value": "a-new-password-0123456789",
        }
        refused = await client.post("/commands/set_variables/OLD16", json={"variables": [password]})
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"] == "unsupported_for_version"
        log = (await client.get("/chargers/OLD16/messages", params={"limit": 100})).json()
        assert not [m for m in log["messages"] if m["action"] == "ChangeConfiguration"]


def test_a_started_answered_without_id_token_info_reads_as_accepted():
    s = station()
    _, read = s.outbound(
        call16.StartTransaction(connector_id=1, id_tag="C", meter_start=0, timestamp=at(0)), T0
    )
    answer = read({})
    assert answer.id_tag_info.status == "Accepted" and isinstance(answer.transaction_id, int)


async def test_a_201_station_offline_mid_session_delivers_its_queued_events_in_order(tmp_path):
    """The CSMS dies while the 2.0.1 station charges; the station queues its
    TransactionEvents (``offline: true``, seqNo continuing), reconnects when the CSMS is
    back, and the session is closed with nothing lost, counted twice or out of order."""
    from ocpp.v16 import enums

    from libv4e import Charger, ChargerConfig
    from tests.support import api, running_backend, ws_url

    db = str(tmp_path / "v4e.db")
    charger = Charger(
        ChargerConfig(
            cp_id="EVSE001",
            ocpp_version="2.0.1",
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
            await wait_for(lambda: _val(charger.sessions and charger.sessions[1].transaction_id))
            (tx,) = await wait_for(lambda: _active(client), timeout=10)  # booked from Started
        await wait_for(lambda: _val(not charger.online))
        await wait_for(lambda: _val(charger.queued >= 2))  # Updated events, queued
        charger.end_session(1, enums.Reason.local)  # the driver stops while offline
        energy = round(charger.meters[1].energy_wh)
        async with running_backend(db, ws_port=port) as backend, api(backend) as client:

            async def closed():
                done = (await client.get(f"/transactions/{tx['transaction_id']}")).json()
                return done if not done["active"] else None

            done = await wait_for(closed, timeout=15)
            assert done["meter_stop"] == energy and done["stop_reason"] == "Local"
            # no sequence gap, no decreasing meter: only that some events came late
            assert done["flags"] == ["reported_offline"], done["flags"]
            assert (done["started_by"], done["ended_by"]) == ("Authorized", "StopAuthorized")
            values = [json.dumps(mv, sort_keys=True) for mv in done["meter_values"]]
            assert len(values) == len(set(values)), "a value stored twice"
            stamps = [mv["timestamp"] for mv in done["meter_values"]]
            assert stamps == sorted(stamps), "delivered in order"
            log = (await client.get("/chargers/EVSE001/messages", params={"limit": 500})).json()
            events = [
                m["payload"]
                for m in log["messages"]
                if m["action"] == "TransactionEvent" and m["direction"] == "in"
            ]
            assert any(e.get("offline") for e in events), "queued events say so"
            seqs = [e["seqNo"] for e in reversed(events)]  # the log lists newest first
            assert seqs == list(range(len(seqs))), seqs  # from 0, no hole, in order
            outer.cancel_scope.cancel()


async def _active(client):
    txs = (await client.get("/transactions", params={"active": "true"})).json()["transactions"]
    return txs or None


async def test_the_diagnosis_of_a_201_station_cites_its_own_messages(autojump_clock):
    """Diagnosed in the same words as a 1.6 charger, but the evidence cited is what the
    2.0.1 station and the central system actually exchanged."""
    async with (
        simulated_backend() as (backend, client),
        charger_running(backend, ocpp_version="2.0.1", clock=backend.csms.clock),
    ):
        assert (await client.post("/demo/trigger/session_start_failure")).status_code == 201
        r = await client.post(
            "/commands/remote_start/EVSE001", json={"id_tag": "USER123", "connector_id": 1}
        )
        assert r.json()["status"] == "Accepted"
        await trio.sleep(6)
        d = (
            await client.post(
                "/chargers/EVSE001/diagnosis", params={"evidence": "true", "probe": "true"}
            )
        ).json()
        (finding,) = d["findings"]
        assert finding["code"] == "session_start_failure"
        actions = {e.get("action") for e in finding["evidence"]}
        assert "RequestStartTransaction" in actions and "RemoteStartTransaction" not in actions
        log = (await client.get("/chargers/EVSE001/messages")).json()["messages"]
        ids = {m["unique_id"] for m in log}
        assert all(c["id"] in ids for c in finding["cites"]), "every citation is in the log"
        assert (await client.post("/demo/clear")).status_code == 200

        assert (await client.post("/demo/trigger/stuck_connector")).status_code == 201
        r = await client.post(
            "/commands/remote_start/EVSE001", json={"id_tag": "USER123", "connector_id": 1}
        )

        async def stuck():
            d = (
                await client.get("/chargers/EVSE001/diagnosis", params={"evidence": "true"})
            ).json()
            codes = [f["code"] for f in d["findings"]]
            return d if "stuck_connector" in codes else None

        d = await wait_for(stuck, timeout=120)
        finding = next(f for f in d["findings"] if f["code"] == "stuck_connector")
        actions = {e.get("action") for e in finding["evidence"]}
        assert "NotifyEvent" in actions, finding["evidence"]


def test_a_sandbox_world_says_which_version_each_charger_speaks():
    from libv4e.sandbox import InitialState, InvalidInitialState

    state = InitialState.from_dict(
        {"chargers": [{"id": "A", "ocpp_version": "2.0.1"}, {"id": "B"}]}
    )
    assert [c.ocpp_version for c in state.chargers] == ["2.0.1", "1.6"]
    with pytest.raises(InvalidInitialState, match=r"chargers\[0\]\.ocpp_version"):
        InitialState.from_dict({"chargers": [{"id": "A", "ocpp_version": "2.1"}]})


def test_a_long_session_keeps_one_remembered_event_per_transaction():
    """The station remembers only what a resend needs: the last event of each session
    (the outbox sends one message at a time), however many samples a session has."""
    s = station()
    _, read = s.outbound(
        call16.StartTransaction(connector_id=1, id_tag="C", meter_start=0, timestamp=at(0)), T0
    )
    local = read({}).transaction_id
    for i in range(500):
        meter_values = call16.MeterValues(
            connector_id=1, transaction_id=local, meter_value=[meter(str(i), i + 1)]
        )
        first, _ = s.outbound(meter_values, T0)
        again, _ = s.outbound(meter_values, T0)  # its answer was lost: resent
        assert first.seq_no == again.seq_no == i + 1
    assert len(s._sent) == 1 and len(s._seq) == 1


async def test_a_reservation_expiring_on_a_201_station_is_reported_and_recorded(autojump_clock):
    async with (
        simulated_backend() as (backend, client),
        charger_running(backend, ocpp_version="2.0.1", clock=backend.csms.clock),
    ):
        until = backend.csms.clock() + dt.timedelta(minutes=2)
        r = await client.post(
            "/commands/reserve_now/EVSE001",
            json={"connector_id": 1, "id_tag": "USER123", "expiry_date": iso(until)},
        )
        assert r.json()["status"] == "Accepted", r.text
        reservation = r.json()["reservation"]["reservation_id"]
        await wait_for(lambda: _connector_is(client, "Reserved"))

        async def reported():
            log = (await client.get("/chargers/EVSE001/messages", params={"limit": 50})).json()
            return [
                m
                for m in log["messages"]
                if m["action"] == "ReservationStatusUpdate" and m["message_type"] == 2
            ]

        (update,) = await wait_for(reported, timeout=600)
        assert update["payload"] == {
            "reservationId": reservation,
            "reservationUpdateStatus": "Expired",
        }
        await wait_for(lambda: _connector_is(client, "Available"))
        (held,) = (await client.get("/reservations", params={"cp_id": "EVSE001"})).json()[
            "reservations"
        ]
        assert (held["reservation_id"], held["status"]) == (reservation, "Expired")


def valid_201_result(action: str, obj) -> dict:
    payload = snake_to_camel_case(remove_nones(dataclasses.asdict(obj)))
    _validate_payload(CallResult("1", payload, action), "2.0.1")
    return payload


def test_the_security_messages_are_valid_201():
    """The model's security-extension calls go out as 2.0.1 calls; a log upload's
    statuses carry the requestId of the GetLog that asked for it."""
    from libv4e import Charger, ChargerConfig

    s = station()
    csr = Charger(ChargerConfig(cp_id="CS1", ocpp_version="2.0.1")).security.new_csr()
    sign, read = s.outbound(csr, T0)
    body = valid_201(sign)
    assert type(sign).__name__ == "SignCertificate"
    assert (body["csr"], body["certificateType"]) == (csr.csr, "ChargingStationCertificate")
    assert read({"status": "Accepted"}) == result16.SignCertificate("Accepted")
    for status in enums16.FirmwareStatus:
        firmware, _ = s.outbound(
            call16.SignedFirmwareStatusNotification(status=status, request_id=7), T0
        )
        assert type(firmware).__name__ == "FirmwareStatusNotification"
        assert valid_201(firmware) == {"status": status.value, "requestId": 7}
    for status in enums16.UploadLogStatus:
        log, _ = s.outbound(call16.LogStatusNotification(status=status, request_id=8), T0)
        assert valid_201(log) == {"status": status.value, "requestId": 8}
    event, read = s.outbound(
        call16.SecurityEventNotification(
            type="FirmwareUpdated", timestamp=at(5), tech_info="v2 installed"
        ),
        T0,
    )
    assert valid_201(event) == {
        "type": "FirmwareUpdated",
        "timestamp": at(5),
        "techInfo": "v2 installed",
    }
    assert read({}) == result16.SecurityEventNotification()
    s.log_request_id = 9  # a GetLog (DiagnosticsLog) answered by the model's GetDiagnostics
    uploading, _ = s.outbound(call16.DiagnosticsStatusNotification(status="Uploading"), T0)
    assert valid_201(uploading) == {"status": "Uploading", "requestId": 9}
    idle, _ = s.outbound(call16.DiagnosticsStatusNotification(status="Idle"), T0)
    assert valid_201(idle) == {"status": "Idle"}


async def test_the_security_commands_are_answered_by_the_model_as_valid_201():
    """Each security command a 2.0.1 central system sends reaches the model's 1.6
    whitepaper handler; every answer is valid 2.0.1."""
    from ocpp.v201 import call as call201

    from libv4e import Charger, ChargerConfig
    from libv4e.csms import CertificateAuthority
    from libv4e.transport._connection import Reply
    from libv4e.transport._handlers import BoundHandlers

    charger = Charger(ChargerConfig(cp_id="CS1", ocpp_version="2.0.1"))
    table = station().handlers(BoundHandlers(charger.handlers), lambda: None)
    root = CertificateAuthority.create("a CSMS root").certificate_pem

    async def ask(message):
        answer = await table[type(message).__name__](message)
        result = answer.result if isinstance(answer, Reply) else answer
        return valid_201_result(type(message).__name__, result), answer

    installed, _ = await ask(
        call201.InstallCertificate(certificate_type="CSMSRootCertificate", certificate=root)
    )
    assert installed == {"status": "Accepted"}
    assert [r.use for r in charger.security.roots] == ["CentralSystemRootCertificate"]
    v2g, _ = await ask(
        call201.InstallCertificate(certificate_type="V2GRootCertificate", certificate=root)
    )
    assert v2g == {"status": "Rejected"}
    ids, _ = await ask(call201.GetInstalledCertificateIds(certificate_type=["CSMSRootCertificate"]))
    (chain,) = ids["certificateHashDataChain"]
    assert chain["certificateType"] == "CSMSRootCertificate"
    everything, _ = await ask(call201.GetInstalledCertificateIds())
    assert everything["certificateHashDataChain"] == [chain]
    none, _ = await ask(
        call201.GetInstalledCertificateIds(certificate_type=["ManufacturerRootCertificate"])
    )
    assert none == {"status": "NotFound"}
    hashed = {
        "hash_algorithm": "SHA256",
        "issuer_name_hash": chain["certificateHashData"]["issuerNameHash"],
        "issuer_key_hash": chain["certificateHashData"]["issuerKeyHash"],
        "serial_number": chain["certificateHashData"]["serialNumber"],
    }
    deleted, _ = await ask(call201.DeleteCertificate(certificate_hash_data=hashed))
    assert deleted == {"status": "Accepted"} and charger.security.roots == []
    again, _ = await ask(call201.DeleteCertificate(certificate_hash_data=hashed))
    assert again == {"status": "NotFound"}
    trigger, answer = await ask(
        call201.TriggerMessage(requested_message="SignChargingStationCertificate")
    )
    assert trigger == {"status": "Accepted"} and answer.after is not None  # then SignCertificate
    refused, _ = await ask(call201.CertificateSigned(certificate_chain=root))
    assert refused == {"status": "Rejected"}  # not this charger's certificate
    v2g, _ = await ask(
        call201.CertificateSigned(certificate_chain=root, certificate_type="V2GCertificate")
    )
    assert v2g == {"status": "Rejected"}
    firmware = {
        "location": "https://fw.example/v2.bin",
        "retrieve_date_time": at(0),
        "signing_certificate": root,
        "signature": "c2ln",
    }
    signed, answer = await ask(call201.UpdateFirmware(request_id=31, firmware=firmware))
    assert signed == {"status": "Accepted"} and answer.after is not None
    for log_type, name in (
        ("SecurityLog", "securitylog-CS1"),
        ("DiagnosticsLog", "diagnostics-CS1"),
    ):
        got, _ = await ask(
            call201.GetLog(
                log={"remote_location": "https://logs.example/up"}, log_type=log_type, request_id=32
            )
        )
        assert got["status"] == "Accepted" and got["filename"].startswith(name), got
    key = "new-authorization-key-0123"
    where = {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}}
    changed, answer = await ask(call201.SetVariables([{**where, "attribute_value": key}]))
    assert changed["setVariableResult"][0]["attributeStatus"] == "Accepted"
    assert charger.security.authorization_key == key
    assert isinstance(answer, Reply) and answer.after is not None  # it reconnects with it
    read_back, _ = await ask(call201.GetVariables([where]))
    (result,) = read_back["getVariableResult"]
    assert result["attributeStatus"] == "Rejected" and "attributeValue" not in result


async def test_reset_on_idle_waits_for_the_session_and_a_16_reset_does_not(autojump_clock):
    """OnIdle on a 2.0.1 station with a session running is Scheduled: the station restarts
    only once the session has ended. The seed's reset (1.6 Soft) is Immediate: the session
    stops now (ImmediateReset) and the station restarts, as a 1.6 Soft reset does."""
    async with (
        simulated_backend() as (backend, client),
        charger_running(backend, ocpp_version="2.0.1", clock=backend.csms.clock) as charger,
    ):

        async def start():
            r = await client.post(
                "/commands/remote_start/EVSE001", json={"id_tag": "USER123", "connector_id": 1}
            )
            assert r.json()["status"] == "Accepted"

            async def running():
                txs = (await client.get("/transactions", params={"active": "true"})).json()
                return txs["transactions"]

            (tx,) = await wait_for(running)
            return tx

        tx = await start()
        boots = charger.boot_count
        for _ in range(10):  # asked again and again: the one reset, not ten waiting tasks
            r = await client.post("/ocpp201/Reset/EVSE001", json={"type": "OnIdle"})
            assert r.status_code == 200 and r.json()["status"] == "Scheduled", r.text
        r = await client.post("/commands/get_local_list_version/EVSE001", json={})
        assert r.status_code == 200, r.text  # the station still answers (and works after)
        await trio.sleep(120)  # (trio's clock) charging goes on: no restart
        assert charger.boot_count == boots and 1 in charger.sessions
        r = await client.post(
            "/commands/remote_stop/EVSE001", json={"transaction_id": tx["transaction_id"]}
        )
        assert r.json()["status"] == "Accepted"
        await wait_for(lambda: _val(charger.boot_count > boots and charger.online), timeout=120)
        assert charger.boot_count == boots + 1  # restarted once, for the ten requests
        done = (await client.get(f"/transactions/{tx['transaction_id']}")).json()
        assert done["stop_reason"] == "Remote"  # the driver's stop, not the reset's

        tx = await start()
        boots = charger.boot_count
        r = await client.post("/commands/reset/EVSE001", json={"type": "Soft"})
        assert r.json()["status"] == "Accepted"
        await wait_for(lambda: _val(charger.boot_count > boots and charger.online), timeout=120)
        done = (await client.get(f"/transactions/{tx['transaction_id']}")).json()
        assert not done["active"] and done["stop_reason"] == "ImmediateReset", done


@pytest.mark.parametrize(
    ("version", "route", "body"),
    [
        ("1.6", "change_configuration", {"key": "HeartbeatInterval", "value": "300"}),
        ("2.0.1", "change_configuration", {"key": "HeartbeatInterval", "value": "300"}),
        (
            "2.0.1",
            "set_variables",
            {
                "variables": [
                    {"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval", "value": "300"}
                ]
            },
        ),
    ],
)
async def test_a_longer_heartbeat_interval_it_accepted_does_not_make_it_offline(
    autojump_clock, version, route, body
):
    """A charger told to heartbeat every 300 s (and accepting) is judged by 300 s: not
    shown offline (and so not diagnosed offline) between two heartbeats."""
    async with (
        simulated_backend() as (backend, client),
        charger_running(backend, ocpp_version=version, clock=backend.csms.clock),
    ):
        r = await client.post(f"/commands/{route}/EVSE001", json=body)
        assert r.status_code == 200, r.text
        state = (await client.get("/chargers/EVSE001")).json()
        assert state["heartbeat_interval"] == 300
        await trio.sleep(30)  # (trio's clock) its last heartbeat on the old interval
        for _ in range(10):  # a whole interval: silence up to 300 s is normal
            await trio.sleep(29)
            state = (await client.get("/chargers/EVSE001")).json()
            assert state["online"] is True, state["last_seen"]


async def test_each_log_request_to_a_201_station_has_its_own_request_id(autojump_clock):
    """A security GetLog and a GetDiagnostics (a GetLog DiagnosticsLog on 2.0.1) take their
    requestIds from one series: the station's LogStatusNotifications of one never move the
    other's record."""
    async with (
        simulated_backend() as (backend, client),
        charger_running(backend, ocpp_version="2.0.1", clock=backend.csms.clock),
    ):
        body = {"log_type": "SecurityLog", "remote_location": "ftp://example.invalid/sec"}
        r = await client.post("/commands/get_log/EVSE001", json=body)
        assert r.status_code == 200, r.text
        r = await client.post(
            "/commands/get_diagnostics/EVSE001", json={"location": "ftp://example.invalid/"}
        )
        assert r.status_code == 200, r.text
        r = await client.post(
            "/commands/update_firmware/EVSE001",
            json={
                "location": "ftp://example.invalid/fw.bin",
                "retrieve_date": "2024-01-01T00:00:00Z",
            },
        )
        assert r.status_code == 200, r.text
        log = (await client.get("/chargers/EVSE001/messages", params={"limit": 200})).json()
        asked = [
            m["payload"]["requestId"]
            for m in log["messages"]
            if m["action"] in ("GetLog", "UpdateFirmware") and m["message_type"] == 2
        ]
        assert len(asked) == 3 and len(set(asked)) == 3, asked
