"""The operator books under concurrency and across a restart of the CSMS:
reservation ids stay unique with many independent chargers reserving at once, one record
per reservation, and every book comes back from the store."""

from __future__ import annotations

import pytest
import trio
from ocpp.v16 import call_result

from libv4e import open_ocpp
from tests.support import api, boot, running_backend, ws_url

LATER = "2099-01-01T00:00:00Z"


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "v4e.db")


def answering() -> dict:
    async def reserve(payload):
        return call_result.ReserveNow("Accepted")

    async def profile(payload):
        return call_result.SetChargingProfile("Accepted")

    async def local_list(payload):
        return call_result.SendLocalList("Accepted")

    return {"ReserveNow": reserve, "SetChargingProfile": profile, "SendLocalList": local_list}


async def test_concurrent_reservations_on_many_chargers_get_unique_ids(db):
    chargers, per_charger = 40, 3
    async with running_backend(db) as backend, api(backend) as client:
        go = trio.Event()
        answers: list[dict] = []

        async def charger(i: int, task_status=trio.TASK_STATUS_IGNORED) -> None:
            cp_id = f"RACE{i:03d}"
            async with open_ocpp(ws_url(backend), cp_id, handlers=answering()) as conn:
                await boot(conn)
                task_status.started()
                await go.wait()
                async with trio.open_nursery() as nursery:
                    for _ in range(per_charger):
                        nursery.start_soon(reserve, cp_id)
                await done.wait()

        async def reserve(cp_id: str) -> None:
            r = await client.post(
                f"/commands/reserve_now/{cp_id}",
                json={"connector_id": 1, "expiry_date": LATER, "id_tag": "T"},
            )
            assert r.status_code == 200, r.text
            answers.append(r.json()["reservation"])
            if len(answers) == chargers * per_charger:
                all_in.set()

        done, all_in = trio.Event(), trio.Event()
        async with trio.open_nursery() as nursery:
            for i in range(chargers):
                await nursery.start(charger, i)
            go.set()
            with trio.fail_after(60):
                await all_in.wait()
            done.set()

        ids = [a["reservation_id"] for a in answers]
        assert len(set(ids)) == chargers * per_charger
        assert all(a["status"] == "Reserved" for a in answers)
        listed = (await client.get("/reservations", params={"limit": 1000})).json()
        assert sorted(r["reservation_id"] for r in listed["reservations"]) == sorted(ids)
        for i in (0, chargers - 1):
            mine = (await client.get("/reservations", params={"cp_id": f"RACE{i:03d}"})).json()
            assert len(mine["reservations"]) == per_charger


async def test_books_survive_a_restart_of_the_central_system(db):
    profile = {
        "chargingProfileId": 9,
        "stackLevel": 0,
        "chargingProfilePurpose": "ChargePointMaxProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0, "numberPhases": 1}],
        },
    }
    async with running_backend(db) as backend, api(backend) as client:
        async with open_ocpp(ws_url(backend), "KEEP1", handlers=answering()) as conn:
            await boot(conn)
            r = await client.post(
                "/commands/reserve_now/KEEP1",
                json={"connector_id": 1, "expiry_date": LATER, "id_tag": "T"},
            )
            first_id = r.json()["reservation"]["reservation_id"]
            r = await client.post(
                "/commands/set_charging_profile/KEEP1",
                json={"connector_id": 0, "cs_charging_profiles": profile},
            )
            assert r.json()["charging_profile"]["status"] == "Installed"
            r = await client.post(
                "/commands/send_local_list/KEEP1",
                json={
                    "update_type": "Full",
                    "list_version": 12,
                    "local_authorization_list": [
                        {"id_tag": "K1", "id_tag_info": {"status": "Accepted"}}
                    ],
                },
            )
            assert r.json()["status"] == "Accepted"

    async with running_backend(db) as backend, api(backend) as client:
        record = (await client.get(f"/reservations/{first_id}")).json()
        assert (record["status"], record["cp_id"]) == ("Reserved", "KEEP1")
        profiles = (await client.get("/chargers/KEEP1/charging_profiles")).json()
        assert [p["charging_profile"] for p in profiles["charging_profiles"]] == [profile]
        assert (profiles["limits"][0]["limit"], profiles["limits"][0]["charging_rate_unit"]) == (
            16.0,
            "A",
        )
        state = (await client.get("/chargers/KEEP1/local_list")).json()
        assert state["list_version"] == 12
        assert [e["id_tag"] for e in state["local_authorization_list"]] == ["K1"]
        async with open_ocpp(ws_url(backend), "KEEP1", handlers=answering()) as conn:
            await boot(conn)
            r = await client.post(
                "/commands/reserve_now/KEEP1",
                json={"connector_id": 1, "expiry_date": LATER, "id_tag": "T"},
            )
            assert r.json()["reservation"]["reservation_id"] == first_id + 1
            # ids are unique per CSMS: an active id cannot move to another charger
            async with open_ocpp(ws_url(backend), "KEEP2", handlers=answering()) as other:
                await boot(other)
                r = await client.post(
                    "/commands/reserve_now/KEEP2",
                    json={
                        "connector_id": 1,
                        "expiry_date": LATER,
                        "id_tag": "T",
                        "reservation_id": first_id,
                    },
                )
                assert r.status_code == 409
                assert r.json()["error"] == "reservation_conflict"


async def test_unanswered_commands_are_recorded_as_such(db):
    async def never(payload):
        await trio.sleep_forever()

    async with running_backend(db, call_timeout=0.3) as backend, api(backend) as client:
        handlers = {"ReserveNow": never, "SetChargingProfile": never, "SendLocalList": never}
        async with open_ocpp(ws_url(backend), "MUTE1", handlers=handlers) as conn:
            await boot(conn)
            r = await client.post(
                "/commands/reserve_now/MUTE1",
                json={"connector_id": 1, "expiry_date": LATER, "id_tag": "T"},
            )
            assert r.status_code == 504
            assert r.json()["reservation"]["status"] == "Unanswered"
            r = await client.post(
                "/commands/send_local_list/MUTE1",
                json={"update_type": "Full", "local_authorization_list": []},
            )
            assert r.status_code == 504
            state = (await client.get("/chargers/MUTE1/local_list")).json()
            assert state["last_update"]["status"] == "Unanswered"
            assert state["list_version"] is None
        # not connected: nothing is recorded, the charger is named
        r = await client.post(
            "/commands/reserve_now/MUTE1",
            json={"connector_id": 1, "expiry_date": LATER, "id_tag": "T"},
        )
        assert (r.status_code, r.json()["error"]) == (404, "charger_not_connected")
        listed = (await client.get("/reservations", params={"cp_id": "MUTE1"})).json()
        assert [x["status"] for x in listed["reservations"]] == ["Unanswered"]
