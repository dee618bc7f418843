"""The power history behind the dashboard's charts (sans-IO ring and REST route) and the
server-pushed state of ``/events`` (by messages and by time), without a browser."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from ocpp.v16 import call, datatypes, enums

from libv4e import open_ocpp
from libv4e.csms._history import MAX_CONNECTORS, MeterHistory
from libv4e.sandbox import trio_clock
from libv4e.transport._connection import MessageRecord
from tests.support import EPOCH, api, boot, plain_charger, running_backend, ws_url

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def meter_record(
    cp_id: str,
    connector_id: Any,
    *values: tuple[str, str, str],
    tx: int | None = 1,
    at: dt.datetime = T0,
    timestamp: str | None = None,
    phase: str | None = None,
) -> MessageRecord:
    sampled = [
        {"value": v, "measurand": m, "unit": u, **({"phase": phase} if phase else {})}
        for m, v, u in values
    ]
    payload: dict[str, Any] = {
        "connectorId": connector_id,
        "meterValue": [{"timestamp": timestamp or at.isoformat(), "sampledValue": sampled}],
    }
    if tx is not None:
        payload["transactionId"] = tx
    return MessageRecord(cp_id, "in", 2, "u1", "MeterValues", payload, at)


def sample(power_w: float, offered_w: float = 22000, energy_wh: float = 100, **kw: Any) -> Any:
    return meter_record(
        "CP",
        kw.pop("connector_id", 1),
        ("Power.Active.Import", str(power_w), "W"),
        ("Power.Offered", str(offered_w), "W"),
        ("Energy.Active.Import.Register", str(energy_wh), "Wh"),
        **kw,
    )


def test_meter_values_become_samples_in_watts():
    history = MeterHistory()
    history.observe(
        meter_record(
            "CP",
            2,
            ("Power.Active.Import", "1.4", "kW"),
            ("Current.Offered", "32", "A"),
            ("Voltage", "230", "V"),
            ("Energy.Active.Import.Register", "1.5", "kWh"),
            tx=7,
        )
    )
    (s,) = history.samples("CP", 2)
    assert (s.power_w, s.energy_wh, s.transaction_id) == (1400.0, 1500.0, 7)
    assert s.offered_w == 32 * 230 * 3
    assert history.connectors("CP") == [2] and history.samples("CP", 1) == []


def test_phases_are_summed_per_sample():
    history = MeterHistory()
    for phase in ("L1", "L2", "L3"):
        history.observe(meter_record("CP", 1, ("Power.Active.Import", "1000", "W"), phase=phase))
    assert [s.power_w for s in history.samples("CP", 1)] == [1000.0, 1000.0, 1000.0]
    record = meter_record("CP", 1, tx=None)
    record.payload["meterValue"][0]["sampledValue"] = [
        {"value": "1000", "measurand": "Power.Active.Import", "phase": p} for p in ("L1", "L2")
    ]
    history.observe(record)
    assert history.samples("CP", 1)[-1].power_w == 2000.0


def test_the_ring_keeps_the_last_samples_in_order():
    history = MeterHistory(capacity=10)
    for i in range(50):
        history.observe(sample(i, at=T0 + dt.timedelta(seconds=i)))
    assert [s.power_w for s in history.samples("CP", 1)] == [float(i) for i in range(40, 50)]
    since = T0 + dt.timedelta(seconds=45)
    assert [s.power_w for s in history.samples("CP", 1, since=since)] == [45.0, 46, 47, 48, 49]


def test_stop_transaction_ends_the_curve_at_zero_power():
    history = MeterHistory()
    history.observe(sample(7000, tx=3, connector_id=2))
    stop = {
        "transactionId": 3,
        "meterStop": 900,
        "timestamp": (T0 + dt.timedelta(seconds=5)).isoformat(),
    }
    history.observe(MessageRecord("CP", "in", 2, "u2", "StopTransaction", stop, T0))
    history.observe(
        MessageRecord(
            "CP", "in", 2, "u3", "StopTransaction", {"transactionId": 99, "meterStop": 1}, T0
        )
    )
    last = history.samples("CP", 2)[-1]
    assert (last.power_w, last.energy_wh, last.transaction_id, last.offered_w) == (
        0.0,
        900.0,
        3,
        22000.0,
    )
    assert len(history.samples("CP", 2)) == 2


def test_what_is_not_a_charger_meter_value_is_ignored():
    history = MeterHistory()
    good = sample(1000)
    for record in [
        MessageRecord("CP", "out", 2, "u", "MeterValues", good.payload, T0),  # sent, not received
        MessageRecord("CP", "in", 3, "u", "MeterValues", good.payload, T0),  # a result
        MessageRecord("CP", "in", 2, "u", "Heartbeat", {}, T0),
        MessageRecord("CP", "in", 2, "u", "MeterValues", {"connectorId": "x"}, T0),
        MessageRecord(
            "CP", "in", 2, "u", "MeterValues", {"connectorId": 1, "meterValue": "no"}, T0
        ),
        meter_record("CP", 1, ("Power.Active.Import", "lots", "W")),
        meter_record("CP", 1, ("Power.Active.Import", "5", "furlongs")),
        MessageRecord("CP", "in", 2, "u", "StopTransaction", {"transactionId": "1"}, T0),
    ]:
        history.observe(record)
    assert "CP" not in history or history.samples("CP", 1) == []


def test_a_charger_clock_far_off_is_replaced_by_the_arrival_time():
    history = MeterHistory()
    history.observe(sample(1, timestamp="1999-01-01T00:00:00Z"))
    history.observe(sample(2, timestamp=(T0 - dt.timedelta(seconds=3)).isoformat()))
    first, second = history.samples("CP", 1)
    assert first.at == T0 and second.at == T0 - dt.timedelta(seconds=3)


def test_connectors_per_charger_are_bounded():
    history = MeterHistory(capacity=2)
    for connector in range(MAX_CONNECTORS + 20):
        history.observe(sample(1, connector_id=connector))
    assert len(history.connectors("CP")) == MAX_CONNECTORS


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 8),
    st.lists(st.tuples(st.sampled_from(["A", "B"]), st.integers(1, 3), st.integers(0, 22000))),
)
def test_every_ring_holds_the_last_capacity_samples_of_its_own_connector(capacity, feed):
    history = MeterHistory(capacity=capacity)
    for i, (cp_id, connector, power) in enumerate(feed):
        record = sample(power, connector_id=connector, at=T0 + dt.timedelta(seconds=i))
        history.observe(
            MessageRecord(cp_id, "in", 2, str(i), "MeterValues", record.payload, record.at)
        )
    for cp_id in ("A", "B"):
        for connector in (1, 2, 3):
            expected = [p for c, n, p in feed if (c, n) == (cp_id, connector)][-capacity:]
            got = history.samples(cp_id, connector)
            assert [s.power_w for s in got] == [float(p) for p in expected]
            assert [s.received for s in got] == sorted(s.received for s in got)


# -- REST ---------------------------------------------------------------------------------------


def meter_values(connector: int, power_w: float, offered_w: float, energy_wh: float) -> Any:
    sampled = [
        datatypes.SampledValue(
            str(power_w), measurand=enums.Measurand.power_active_import, unit=enums.UnitOfMeasure.w
        ),
        datatypes.SampledValue(
            str(offered_w), measurand=enums.Measurand.power_offered, unit=enums.UnitOfMeasure.w
        ),
        datatypes.SampledValue(
            str(energy_wh),
            measurand=enums.Measurand.energy_active_import_register,
            unit=enums.UnitOfMeasure.wh,
        ),
    ]
    now = dt.datetime.now(dt.UTC).isoformat()
    return call.MeterValues(connector, [datatypes.MeterValue(now, sampled)])


async def test_meter_history_route_serves_each_connectors_samples(tmp_path):
    async with running_backend(str(tmp_path / "v4e.db")) as backend, api(backend) as client:
        async with plain_charger(backend) as (conn, _):
            for i in range(3):
                await conn.call(meter_values(1, 1400, 22000, 10 + i), timeout=5)
            await conn.call(meter_values(2, 7000, 7400, 5), timeout=5)
            body = (await client.get("/chargers/EVSE001/meter_history")).json()
            assert body["minutes"] == 30 and body["capacity"] >= 100
            by_connector = {c["connector_id"]: c["samples"] for c in body["connectors"]}
            assert [s["energy_wh"] for s in by_connector[1]] == [10.0, 11.0, 12.0]
            assert {(s["power_w"], s["offered_w"]) for s in by_connector[1]} == {(1400.0, 22000.0)}
            assert by_connector[2][0]["power_w"] == 7000.0
            only = (await client.get("/chargers/EVSE001/meter_history?connector_id=2")).json()
            assert [c["connector_id"] for c in only["connectors"]] == [2]
            for bad in ("minutes=0", "minutes=x", "minutes=99999", "connector_id=-1"):
                answer = await client.get(f"/chargers/EVSE001/meter_history?{bad}")
                assert answer.status_code == 400 and answer.json()["error"] == "bad_query"
            missing = await client.get("/chargers/NOPE/meter_history")
            assert missing.status_code == 404 and missing.json()["error"] == "unknown_charger"
            doc = (await client.get("/openapi.json")).json()
            assert "get" in doc["paths"]["/chargers/{cp_id}/meter_history"]
            assert "GET /chargers/{cp_id}/meter_history" in (await client.get("/")).json()["routes"]


async def test_hundreds_of_chargers_each_get_their_own_curve(tmp_path):
    count = 120
    async with running_backend(str(tmp_path / "v4e.db")) as backend, api(backend) as client:
        go = trio.Event()
        booted: list[int] = []

        async def one(i: int) -> None:
            async with open_ocpp(ws_url(backend), f"CP{i:03d}") as conn:
                await boot(conn)  # a charger the CSMS keeps a record of (it booted)
                booted.append(i)
                if len(booted) == count:  # all booted: all send at once
                    go.set()
                await go.wait()
                for k in range(3):
                    await conn.call(meter_values(1, 1000 + i, 22000, 100 * k), timeout=20)

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for i in range(count):
                    nursery.start_soon(one, i)
        for i in range(0, count, 7):
            body = (await client.get(f"/chargers/CP{i:03d}/meter_history")).json()
            (connector,) = body["connectors"]
            assert [s["power_w"] for s in connector["samples"]] == [1000.0 + i] * 3
            assert [s["energy_wh"] for s in connector["samples"]] == [0.0, 100.0, 200.0]


# -- server-pushed state --------------------------------------------------------------------


class Events:
    """The server-sent events of ``/events`` as they arrive: (time, kind, data)."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, str, Any]] = []
        self._arrived = trio.Event()

    async def read(self, client: httpx.AsyncClient) -> None:
        async with client.stream("GET", "/events") as response:
            kind = None
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind:
                    self.seen.append((trio.current_time(), kind, json.loads(line[6:])))
                    kind = None
                    self._arrived.set()
                    self._arrived = trio.Event()

    async def until_link(self, link: str) -> None:
        """Wait for a state event in which EVSE001 has ``link``."""
        while not links(self.seen) or links(self.seen)[-1][1] != link:
            await self._arrived.wait()


def links(events: list[tuple[float, str, Any]]) -> list[tuple[float, str]]:
    return [
        (t, next(cp["link"] for cp in data["charge_points"] if cp["cp_id"] == "EVSE001"))
        for t, kind, data in events
        if kind == "state" and any(cp["cp_id"] == "EVSE001" for cp in data["charge_points"])
    ]


async def test_events_push_state_when_a_charger_falls_silent_and_when_it_talks(
    tmp_path, autojump_clock
):
    """On trio's clock (the backend's datetime clock follows it)."""
    autojump_clock.autojump_threshold = 0.005  # no jump while loopback I/O is in flight
    interval, tolerance = 30, 2.0
    db = str(tmp_path / "v4e.db")
    events, other = Events(), Events()  # two dashboards share one computed state
    async with (
        running_backend(
            db, clock=trio_clock(EPOCH), heartbeat_interval=interval, offline_tolerance=tolerance
        ) as backend,
        api(backend) as client,
        # the stream is silent for longer than api()'s read timeout (simulated seconds)
        httpx.AsyncClient(base_url=str(client.base_url), timeout=None) as stream,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(events.read, stream)
        nursery.start_soon(other.read, stream)
        async with open_ocpp(ws_url(backend), "EVSE001") as conn:
            await boot(conn)  # then silence: no heartbeat, the socket stays open
            last_message = trio.current_time()
            with trio.fail_after(interval * tolerance + 30):
                await events.until_link("unresponsive")
                await other.until_link("unresponsive")
            flipped = links(events.seen)[-1][0]
            assert abs(links(other.seen)[-1][0] - flipped) < 0.5
            assert [link for _, link in links(events.seen)][-2] == "online"
            # shown once the tolerance has passed, and no later than a push after it
            assert (
                interval * tolerance - 0.2 <= flipped - last_message <= interval * tolerance + 1.0
            )
            later = [e for e in events.seen if e[1] == "message" and e[0] > last_message + 0.01]
            assert later == []  # time alone moved it
            await trio.sleep(interval)  # nothing changes: nothing is pushed again
            assert links(events.seen)[-1][0] == flipped
            await conn.call(call.Heartbeat(), timeout=5)
            with trio.fail_after(3):
                await events.until_link("online")
        with trio.fail_after(5):  # the socket closed: offline
            await events.until_link("offline")
        nursery.cancel_scope.cancel()
