"""A call received right before the peer closes its socket is handled, not
dropped. A charger on a Hard reset sends StopTransaction and closes at once; the close
used to cancel the handling of what was already received (5–8 of 10 stops lost, and the
CSMS later ended the session itself with reason Other). Now the reader stops at the close
and the dispatcher finishes every call received before it (bounded by
``FlowControl.drain``); only the answers cannot be delivered."""

from __future__ import annotations

import json

import pytest
from trio_websocket import open_websocket_url

from tests.support import api, booted_ws, raw_call, running_backend, ws_url

NOW = "2024-05-01T12:00:00Z"


async def _session(url: str, cp_id: str, meter_stop: int) -> int:
    """Boot, start a session, then MeterValues + StopTransaction and close at once."""
    async with booted_ws(f"{url}/{cp_id}") as ws:
        started = await raw_call(
            ws,
            "s",
            "StartTransaction",
            {"connectorId": 1, "idTag": "TAG1", "meterStart": 1000, "timestamp": NOW},
        )
        assert started[0] == 3, started
        tx_id = started[2]["transactionId"]
        sample = {
            "timestamp": NOW,
            "sampledValue": [
                {"value": str(meter_stop), "measurand": "Energy.Active.Import.Register"}
            ],
        }
        meter = {"connectorId": 1, "transactionId": tx_id, "meterValue": [sample]}
        stop = {
            "transactionId": tx_id,
            "meterStop": meter_stop,
            "timestamp": NOW,
            "reason": "HardReset",
            "idTag": "TAG1",
        }
        # what a charger does on a Hard reset: report, stop, close, without waiting
        await ws.send_message(json.dumps([2, "m", "MeterValues", meter]))
        await ws.send_message(json.dumps([2, "t", "StopTransaction", stop]))
    return tx_id


@pytest.mark.parametrize("transport", ["wsproto", "trio-websocket"])
async def test_a_stop_sent_right_before_the_close_is_recorded(tmp_path, transport):
    async with (
        running_backend(str(tmp_path / "v4e.db"), transport=transport) as backend,
        api(backend) as client,
    ):
        url = ws_url(backend)
        ids = {}
        for i in range(10):
            ids[i] = await _session(url, f"RESET{i}", 2000 + i)
        await backend.csms.flush_log()
        for i, tx_id in ids.items():
            tx = (await client.get(f"/transactions/{tx_id}")).json()
            assert tx["stopped_at"] is not None, (i, tx)
            assert tx["stop_reason"] == "HardReset", (i, tx)
            assert tx["meter_stop"] == 2000 + i, (i, tx)
        assert len(set(ids.values())) == 10


@pytest.mark.parametrize("transport", ["wsproto", "trio-websocket"])
async def test_the_drain_is_bounded_and_in_order(nursery, transport, autojump_clock):
    """Calls received before the close are handled in order; one that never ends holds
    the connection for ``flow.drain`` seconds (trio's clock) and no longer."""
    import trio

    from libv4e import serve_ocpp
    from libv4e.transport import FlowControl

    handled: list[str] = []
    served: list[float] = []
    closed_at: list[float] = []
    ended = trio.Event()

    async def on_connect(conn):
        async def record(payload):
            handled.append(payload.data)
            if payload.data == "hang":
                await trio.sleep_forever()
            await trio.sleep(1)  # a slow store
            return call_result.DataTransfer("Accepted")

        await conn.serve({"DataTransfer": record})
        served.append(trio.current_time())
        ended.set()

    flow = FlowControl(drain=30.0)
    port = await nursery.start(
        lambda task_status: serve_ocpp(
            on_connect, "127.0.0.1", 0, transport=transport, flow=flow, task_status=task_status
        )
    )
    from ocpp.v16 import call_result

    for names in (["a", "b", "c"], ["d", "hang", "e"]):
        url = f"ws://127.0.0.1:{port}/CP{names[0]}"
        async with open_websocket_url(url, subprotocols=["ocpp1.6"]) as ws:
            for name in names:  # sent back to back, the close follows at once
                frame = [2, name, "DataTransfer", {"vendorId": "v", "data": name}]
                await ws.send_message(json.dumps(frame))
        closed_at.append(trio.current_time())
        with trio.fail_after(100):
            await ended.wait()
        ended = trio.Event()
    assert handled == ["a", "b", "c", "d", "hang"]
    assert served[0] - closed_at[0] < 5  # three 1 s calls, then done
    assert 30 - 1 <= served[1] - closed_at[1] <= 30 + 1  # the drain bound, not forever
