"""Connectors per charger are bounded: StatusNotification for connectorId 1..50,000 made
50,000 connector records (memory, /status size, restart time)."""

from __future__ import annotations

import json

import pytest
from trio_websocket import open_websocket_url

from tests.support import api, running_backend, ws_url

NOW = "2024-05-01T12:00:00Z"


@pytest.mark.parametrize("transport", ["wsproto", "trio-websocket"])
async def test_connector_ids_above_the_bound_are_refused_and_create_nothing(tmp_path, transport):
    db = str(tmp_path / "v4e.db")
    async with running_backend(db, transport=transport, max_connectors=4) as backend:
        async with open_websocket_url(f"{ws_url(backend)}/MANY", subprotocols=["ocpp1.6"]) as ws:
            boot = {"chargePointVendor": "V", "chargePointModel": "M"}
            await ws.send_message(json.dumps([2, "b", "BootNotification", boot]))
            assert json.loads(await ws.get_message())[0] == 3
            answers = {}
            for n in range(301):
                note = {"connectorId": n, "errorCode": "NoError", "status": "Available"}
                await ws.send_message(json.dumps([2, f"s{n}", "StatusNotification", note]))
                answers[n] = json.loads(await ws.get_message())
            meter = {
                "connectorId": 99,
                "meterValue": [{"timestamp": NOW, "sampledValue": [{"value": "1"}]}],
            }
            await ws.send_message(json.dumps([2, "m", "MeterValues", meter]))
            refused_meter = json.loads(await ws.get_message())
            start = {"connectorId": 5, "idTag": "T", "meterStart": 0, "timestamp": NOW}
            await ws.send_message(json.dumps([2, "t", "StartTransaction", start]))
            refused_start = json.loads(await ws.get_message())
        async with api(backend) as client:
            charger = (await client.get("/chargers/MANY")).json()
    assert all(answers[n] == [3, f"s{n}", {}] for n in range(5))
    assert all(
        answers[n][0] == 4 and answers[n][2] == "PropertyConstraintViolation" for n in range(5, 301)
    )
    assert refused_meter[2] == refused_start[2] == "PropertyConstraintViolation"
    ids = sorted(int(c["connector_id"]) for c in charger["connectors"])
    assert max(ids) <= 4, ids
    assert backend.csms.transactions.active() == []
