"""Issue 12: nothing a peer sends may end, starve or steer anything beyond its own
connection or request. Every test runs the real backend on 127.0.0.1 over real sockets."""

from __future__ import annotations

import json

import pytest
import trio
from ocpp.v16 import call
from trio_websocket import open_websocket_url

from .helpers import api, boot, running_backend, ws_url


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "v4e.db")


# -- 1. one frame must not stop the CSMS -------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        '[2, "\\ud800", "Heartbeat", {}]',  # lone surrogate in the unique id
        '[2, "s1", "Heart\\udcffbeat", {}]',  # ... in the action name
        '[2, "s2", "\\ud800", {}]',
    ],
)
async def test_surrogate_in_unique_id_or_action_does_not_stop_the_csms(db, frame):
    from libv4e import open_ocpp

    async with running_backend(db, log_flush_interval=0.05) as backend:
        async with open_ocpp(ws_url(backend), "GOOD01") as good:
            await boot(good)
            async with open_websocket_url(
                ws_url(backend) + "/EVIL01", subprotocols=["ocpp1.6"]
            ) as ws:
                await ws.send_message(frame)
                with trio.fail_after(5):
                    answer = json.loads(await ws.get_message())
                assert answer[0] in (3, 4)
                assert answer[1] == json.loads(frame)[1]
                await trio.sleep(0.3)  # several log flushes
                await ws.send_message('[2,"ok","Heartbeat",{}]')
                with trio.fail_after(5):
                    assert json.loads(await ws.get_message())[:2] == [3, "ok"]
            assert await good.call(call.Heartbeat(), timeout=5)
            async with api(backend) as client:
                assert (await client.get("/status")).status_code == 200
                logged = (await client.get("/chargers/GOOD01/messages")).json()["messages"]
                assert any(m["action"] == "Heartbeat" for m in logged)
            await backend.csms.flush_log()
            rows = await backend.csms.store.messages("EVIL01", limit=10, offset=0)
            assert rows, "the offending message is logged (sanitized), not lost"
