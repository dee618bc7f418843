"""One record that cannot be saved or rendered costs only itself.

The bounds layer now refuses the date-times that broke ``iso()`` (tests/protocol/test_datetime_bounds.py);
this is the defence behind it, for whatever value the next bug lets through. A charger
state holding a time no renderer can print (a local time whose UTC is before year 1,
put into the registry directly: no OCPP message can carry it any more) used to fail the
whole flush batch — every honest charger changed with it was lost on a kill -9 — and
answer 500 to ``/status`` and ``/chargers`` for the whole fleet. Now the flush writes the
batch again charger by charger and the listings show that one charger as
``unrenderable_state``; on SQLite and PostgreSQL, 20 honest chargers over real
websockets."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.support import api, booted_ws, raw_call, running_backend, ws_url

UNRENDERABLE = dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_one_unrenderable_charger_costs_only_itself(tmp_path, request, database):
    db = str(tmp_path / "v4e.db") if database == "sqlite" else request.getfixturevalue("pg_url")
    async with running_backend(db) as backend, api(backend) as client:
        url = ws_url(backend)

        async def faulted(name):
            async with booted_ws(f"{url}/{name}") as ws:
                note = {"connectorId": 1, "errorCode": "GroundFailure", "status": "Faulted"}
                assert await raw_call(ws, "s", "StatusNotification", note) == [3, "s", {}]

        await faulted("POISON")
        await backend.csms.flush_log()
        backend.csms.registry.get("POISON").booted_at = UNRENDERABLE
        backend.csms.charger_changed("POISON")
        for i in range(20):
            await faulted(f"HONEST{i:02}")
        await backend.csms.flush_log()  # one batch: POISON and the 20 honest ones

        stored = {s.cp_id: s for s in await backend.csms.store.load_chargers()}
        for i in range(20):
            assert stored[f"HONEST{i:02}"].connectors[1].status == "Faulted"
        status = await client.get("/status")
        listing = await client.get("/chargers")
        assert status.status_code == listing.status_code == 200
        chargers = {c["cp_id"]: c for c in listing.json()["chargers"]}
        assert chargers["POISON"] == {"cp_id": "POISON", "error": "unrenderable_state"}
        for i in range(20):
            (connector,) = [
                c for c in chargers[f"HONEST{i:02}"]["connectors"] if c["connector_id"] == 1
            ]
            assert connector["status"] == "Faulted"
        assert status.json()["charge_points"]["HONEST07"]["connectors"]
        one = await client.get("/chargers/HONEST07")
        assert one.status_code == 200
