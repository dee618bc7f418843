"""The simulator against small hand-written central systems: boot retries while Pending,
transaction message retries per TransactionMessageAttempts."""

from __future__ import annotations

import datetime as dt

import trio
from ocpp.v16 import call_result, datatypes

from libv4e import Charger, ChargerConfig, OcppError, serve_ocpp
from tests.support import wait_for


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


class ScriptedCsms:
    """Answers BootNotification Pending until told otherwise; fails StartTransaction the
    first ``fail_starts`` times."""

    def __init__(self, pending_boots: int = 0, fail_starts: int = 0) -> None:
        self.pending_boots, self.fail_starts = pending_boots, fail_starts
        self.boots: list[float] = []
        self.starts = 0
        self.accepted_starts = 0
        self.other: list[str] = []

    async def on_connect(self, conn):
        async def boot(msg):
            self.boots.append(trio.current_time())
            if len(self.boots) <= self.pending_boots:
                return call_result.BootNotification(now(), 1, "Pending")
            return call_result.BootNotification(now(), 30, "Accepted")

        async def start(msg):
            self.starts += 1
            if self.starts <= self.fail_starts:
                raise OcppError("InternalError", "database hiccup")
            self.accepted_starts += 1
            return call_result.StartTransaction(77, datatypes.IdTagInfo("Accepted"))

        async def anything(msg):
            self.other.append(type(msg).__name__)
            results = {
                "StatusNotification": call_result.StatusNotification(),
                "Heartbeat": call_result.Heartbeat(now()),
                "MeterValues": call_result.MeterValues(),
                "Authorize": call_result.Authorize(datatypes.IdTagInfo("Accepted")),
            }
            return results[type(msg).__name__]

        await conn.serve(
            {
                "BootNotification": boot,
                "StartTransaction": start,
                "StatusNotification": anything,
                "Heartbeat": anything,
                "MeterValues": anything,
                "Authorize": anything,
            }
        )


async def test_boot_is_retried_while_pending_at_the_given_interval(nursery):
    csms = ScriptedCsms(pending_boots=2)
    port = await nursery.start(serve_ocpp, csms.on_connect, "127.0.0.1", 0)
    charger = Charger(ChargerConfig(cp_id="PEND1"))
    await nursery.start(charger.run, f"ws://127.0.0.1:{port}")
    with trio.fail_after(10):
        await charger.connected_event.wait()
    assert len(csms.boots) == 3
    gaps = [b - a for a, b in zip(csms.boots, csms.boots[1:], strict=False)]
    assert all(0.9 <= g <= 2.0 for g in gaps), gaps  # the interval given: 1 s
    assert csms.other == []  # nothing else was sent while Pending
    await wait_for(lambda: _val("StatusNotification" in csms.other))


async def test_failed_transaction_messages_are_retried_then_delivered(nursery):
    csms = ScriptedCsms(fail_starts=2)
    port = await nursery.start(serve_ocpp, csms.on_connect, "127.0.0.1", 0)
    charger = Charger(ChargerConfig(cp_id="RETRY1"))
    charger.configuration.keys["TransactionMessageRetryInterval"].value = "0"
    await nursery.start(charger.run, f"ws://127.0.0.1:{port}")
    with trio.fail_after(10):
        await charger.connected_event.wait()
    assert await charger.swipe(1, "USER123")
    await wait_for(lambda: _val(charger.sessions[1].transaction_id == 77))
    assert csms.starts == 3  # two failures, then delivered (TransactionMessageAttempts = 3)
    assert charger.stats["tx_messages_dropped"] == 0


async def test_transaction_message_dropped_after_the_attempts(nursery):
    csms = ScriptedCsms(fail_starts=10)
    port = await nursery.start(serve_ocpp, csms.on_connect, "127.0.0.1", 0)
    charger = Charger(ChargerConfig(cp_id="RETRY2"))
    charger.configuration.keys["TransactionMessageRetryInterval"].value = "0"
    charger.configuration.keys["TransactionMessageAttempts"].value = "2"
    await nursery.start(charger.run, f"ws://127.0.0.1:{port}")
    with trio.fail_after(10):
        await charger.connected_event.wait()
    await charger.swipe(1, "USER123")
    await wait_for(lambda: _val(charger.stats["tx_messages_dropped"] == 1))
    assert csms.starts == 2


async def _val(v):
    return v
