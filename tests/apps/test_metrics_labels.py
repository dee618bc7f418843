"""Prometheus label values come from closed sets: a charger's made-up action names and
error codes cannot grow /metrics (each distinct label value is a series kept forever)."""

from __future__ import annotations

import json
import re

import trio
from trio_websocket import open_websocket_url

from libv4e import ErrorCode
from libv4e_apps.csms.metrics import ACTIONS
from tests.support import api, running_backend, ws_url


def label_values(text: str, metric: str, label: str) -> set[str]:
    pattern = re.compile(rf'^{metric}\{{[^}}]*{label}="([^"]*)"', re.M)
    return set(pattern.findall(text))


async def test_junk_action_names_and_error_codes_do_not_become_label_values(tmp_path):
    async with running_backend(str(tmp_path / "v4e.db")) as backend:
        async with open_websocket_url(f"{ws_url(backend)}/JUNK", subprotocols=["ocpp1.6"]) as ws:
            boot = {"chargePointVendor": "V", "chargePointModel": "M"}
            await ws.send_message(json.dumps([2, "boot", "BootNotification", boot]))
            assert json.loads(await ws.get_message())[0] == 3
            for i in range(300):
                await ws.send_message(json.dumps([2, f"u{i}", f"Made\nUp{i}", {}]))
                answer = json.loads(await ws.get_message())
                assert answer[0] == 4 and answer[1] == f"u{i}"
            # CALLERRORs with invented codes (to calls never made: still counted as messages)
            for i in range(50):
                await ws.send_message(json.dumps([4, f"e{i}", f"Code{i}", "x", {}]))
            await ws.send_message(json.dumps([2, "hb", "Heartbeat", {}]))
            with trio.fail_after(10):
                assert json.loads(await ws.get_message())[1] == "hb"
        async with api(backend) as client:
            text = (await client.get("/metrics")).text
    actions = label_values(text, "v4e_ocpp_messages_total", "action")
    assert "other" in actions, "the junk was counted, under one label value"
    assert actions <= ACTIONS | {"other", "unknown"}
    assert {"BootNotification", "Heartbeat"} <= actions
    codes = label_values(text, "v4e_ocpp_call_errors_total", "code")
    assert codes <= {str(c.value) for c in ErrorCode} | {"other"}
    assert "Made" not in text and "Code1" not in text
