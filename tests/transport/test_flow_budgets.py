"""Call budgets survive reconnects. Flow control was per connection, so a
charger that reconnected got a full budget again (one id sustained 4,706 calls/s against
a documented 100/s). The budget is now kept per charger id (and per remote address,
loopback exempt) across connections. Trio's clock: the paced calls take virtual time."""

from __future__ import annotations

import json

import trio
from trio_websocket import open_websocket_url

from libv4e.transport import FlowControl
from tests.support import running_backend, ws_url

RATE, BURST = 5.0, 10


async def _calls(url: str, cp_id: str, count: int, boot: bool) -> float:
    """Open a connection, make ``count`` Heartbeat calls (after a boot), close; returns
    how long the calls took in trio time."""
    async with open_websocket_url(f"{url}/{cp_id}", subprotocols=["ocpp1.6"]) as ws:
        if boot:
            boot = {"chargePointVendor": "V", "chargePointModel": "M"}
            await ws.send_message(json.dumps([2, "b", "BootNotification", boot]))
            assert json.loads(await ws.get_message())[0] == 3
        started = trio.current_time()
        for i in range(count):
            await ws.send_message(json.dumps([2, f"h{i}", "Heartbeat", {}]))
            assert json.loads(await ws.get_message())[0] == 3
        return trio.current_time() - started


async def test_reconnecting_does_not_refill_the_budget(tmp_path, autojump_clock):
    flow = FlowControl(rate=RATE, burst=BURST)
    async with running_backend(str(tmp_path / "v4e.db"), flow=flow) as backend:
        url = ws_url(backend)
        await _calls(url, "EVSE001", BURST - 1, boot=True)  # the burst is spent
        for _ in range(3):  # reconnecting, again and again
            took = await _calls(url, "EVSE001", 10, boot=False)
            assert took >= (10 - 1) / RATE  # paced at the documented rate
        # another charger has its own budget
        assert await _calls(url, "EVSE002", BURST - 2, boot=True) < 1.0


async def test_one_address_shares_one_budget(tmp_path, autojump_clock):
    """Many ids from one address (junk ids, each with a fresh id budget) share the
    address's budget; the loopback exemption is switched off here to test it."""
    address_flow = FlowControl(rate=RATE, burst=BURST)
    async with running_backend(
        str(tmp_path / "v4e.db"),
        flow=FlowControl(rate=1000, burst=1000),
        address_flow=address_flow,
        address_flow_loopback=True,
    ) as backend:
        url = ws_url(backend)
        await _calls(url, "A1", BURST - 1, boot=True)  # the address's burst is spent
        took = await _calls(url, "A2", 10, boot=True)  # a new id, same address
        assert took >= (10 - 1) / RATE


def test_budgets_of_passing_ids_are_forgotten_once_refilled():
    """Distinct charger ids are a quantity a peer controls: the budgets kept for ids that
    connected and left stay bounded (refilled ones are the same as new and are dropped)."""
    from libv4e import CsmsConfig
    from libv4e.csms._peers import Peers

    peers, config = Peers(), CsmsConfig(flow=FlowControl(rate=RATE, burst=BURST))
    now = 0.0
    for i in range(20_000):
        (budget,) = peers.budgets(f"JUNK{i}", "127.0.0.1", config, now)
        budget.take(now)
        peers.open("127.0.0.1", f"JUNK{i}")
        peers.closed("127.0.0.1", f"JUNK{i}")
        now += 1.0  # each refills (BURST / RATE = 2 s) long before the bound is reached
    assert len(peers._buckets) <= 4 * 1000 + 1
    assert peers.load("127.0.0.1", lambda cp_id: False) == (0, 0)
    # the budget of a charger that comes back within its refill time is the same one
    kept = peers.budgets("BACK", "127.0.0.1", config, now)
    kept[0].take(now)
    assert peers.budgets("BACK", "127.0.0.1", config, now + 0.1) == kept
