"""Events for agents: semantic events from the CSMS's state, the ``/events``
filters, ``/events/recent`` and signed webhooks with retries and dead letters.

- The feed, sans-IO, under Hypothesis: random interleavings of connects, disconnects,
  silences, faults, recoveries, starts and stops on several chargers; replaying the events
  reproduces every charger's state and the kinds alternate (no change lost or doubled).
- The webhook book, sans-IO, under Hypothesis: every delivery ends exactly once
  (delivered or dead), one in flight per subscription, in event order.
- End to end: a simulated charger's session and a scenario seen through
  ``/events/recent``; a raw charger's disconnect and return; ``/events?cp_id=&kind=``
  over a real HTTP stream; webhooks received by a real HTTP server (h11 on 127.0.0.1)
  that answers 500 first: signature verified, retried, delivered once; an endpoint that
  always fails becomes a dead letter and ``retry`` sends it again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import time
import types

import h11
import httpx
import trio
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from trio_websocket import connect_websocket_url

from libv4e.csms import (
    EVENT_KINDS,
    AgentEvent,
    AgentEventFeed,
    ChargePointState,
    Registry,
    TransactionBook,
    WebhookBook,
    WebhookPolicy,
    WebhookSubscription,
    sign_webhook,
    verify_webhook,
)
from libv4e_apps.csms.backend import BackendConfig, serve_backend
from libv4e_apps.csms.tools import call_tool
from tests.support import api, charger_setup, running_backend, tool, wait_for, ws_url

T0 = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)
CHARGERS = ("A", "B", "C")

# -- the feed, sans-IO ------------------------------------------------------------------------


class FeedMachine(RuleBasedStateMachine):
    """A registry and a transaction book changed at random; the feed looked at now and
    then. Replaying its events must give the present state."""

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.registry = Registry(offline_tolerance=2.0)
        self.book = TransactionBook()
        self.book.add_ids(1, 100_000)
        csms = types.SimpleNamespace(
            registry=self.registry, transactions=self.book, clock=self.clock
        )
        self.feed = AgentEventFeed(csms)  # type: ignore[arg-type]
        self.events: list[AgentEvent] = []
        self.replayed: dict[str, dict] = {}
        for cp in CHARGERS:
            state = ChargePointState(cp)
            state.heartbeat_interval = 10
            self.registry.add(state)
            self.registry.connected(cp, self.now)
            for c in (1, 2):
                state.connector(c).status = "Available"
                state.connector(c).error_code = "NoError"
        self.feed.baseline()
        for cp in CHARGERS:
            self.replayed[cp] = {"online": True, "faults": set(), "sessions": set()}

    def clock(self) -> dt.datetime:
        return self.now

    @rule(cp=st.sampled_from(CHARGERS))
    def disconnect(self, cp):
        self.registry.disconnected(cp, self.now)

    @rule(cp=st.sampled_from(CHARGERS))
    def connect(self, cp):
        self.registry.connected(cp, self.now)

    @rule(cp=st.sampled_from(CHARGERS))
    def heard_from(self, cp):
        state = self.registry.get(cp)
        if state.connected:
            state.last_seen = self.now

    @rule(seconds=st.sampled_from([1, 5, 19, 21, 40]))
    def time_passes(self, seconds):
        self.now += dt.timedelta(seconds=seconds)

    @rule(
        cp=st.sampled_from(CHARGERS),
        c=st.sampled_from([1, 2]),
        code=st.sampled_from(["GroundFailure", "ConnectorLockFailure", "NoError"]),
        status=st.sampled_from(["Faulted", "Available", "Charging"]),
    )
    def status(self, cp, c, code, status):
        connector = self.registry.get(cp).connector(c)
        connector.status, connector.error_code = status, code

    @rule(
        cp=st.sampled_from(CHARGERS), c=st.sampled_from([1, 2]), tag=st.sampled_from(["T1", "T2"])
    )
    def start(self, cp, c, tag):
        self.now += dt.timedelta(seconds=1)
        self.book.apply(self.book.start(cp, c, tag, 0, self.now))

    @rule(cp=st.sampled_from(CHARGERS), c=st.sampled_from([1, 2]))
    def stop(self, cp, c):
        tx = self.book.active_on(cp, c)
        if tx is not None:
            change = self.book.stop(cp, tx.transaction_id, 500, self.now, received_at=self.now)
            self.book.apply(change)

    @rule(cp=st.sampled_from(CHARGERS))
    def look(self, cp):
        self._replay(self.feed.look(cp))

    @rule()
    def tick(self):
        self._replay(self.feed.tick())

    def _replay(self, events):
        for e in events:
            assert not self.events or e.id == self.events[-1].id + 1  # increasing, no gap
            self.events.append(e)
            r = self.replayed[e.cp_id]
            if e.kind == "charger_offline":
                assert r["online"], e
                r["online"] = False
            elif e.kind == "charger_back":
                assert not r["online"], e
                r["online"] = True
            elif e.kind == "connector_faulted":
                assert e.connector_id not in r["faults"], e
                r["faults"].add(e.connector_id)
            elif e.kind == "connector_recovered":
                assert e.connector_id in r["faults"], e
                r["faults"].discard(e.connector_id)
            elif e.kind == "session_started":
                assert e.data["transaction_id"] not in r["sessions"], e
                r["sessions"].add(e.data["transaction_id"])
            elif e.kind == "session_stopped":
                assert e.data["transaction_id"] in r["sessions"], e
                r["sessions"].discard(e.data["transaction_id"])
            assert e.kind in EVENT_KINDS

    @invariant()
    def after_a_tick_the_replay_is_the_state(self):
        self._replay(self.feed.tick())
        for cp in CHARGERS:
            state = self.registry.get(cp)
            r = self.replayed[cp]
            online = state.connected and state.is_online(self.now, 2.0)
            assert r["online"] == online
            faults = {
                c
                for c, s in state.connectors.items()
                if s.status == "Faulted" or s.error_code not in (None, "NoError")
            }
            assert r["faults"] == faults
            active = {
                t.transaction_id for c in (1, 2) if (t := self.book.active_on(cp, c)) is not None
            }
            assert r["sessions"] == active


TestFeed = FeedMachine.TestCase
TestFeed.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


# -- the webhook book, sans-IO ----------------------------------------------------------------


async def read_sse(response, into, connected=None):
    """Append ``(event, data)`` of each server-sent event of ``response`` to ``into``;
    set ``connected`` at the stream's opening comment."""
    kind = None
    async for line in response.aiter_lines():
        if line.startswith(": connected") and connected is not None:
            connected.set()
        elif line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            into.append((kind, json.loads(line.removeprefix("data: "))))


def _event(n: int, cp: str = "A", kind: str = "connector_faulted") -> AgentEvent:
    return AgentEvent(n, kind, cp, 1, T0, {"n": n})


class WebhookMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.book = WebhookBook(WebhookPolicy(max_attempts=3, backoff=1.0, concurrency=4))
        for name in ("s1", "s2", "s3"):
            self.book.subscribe(WebhookSubscription(name, "http://x", "k" * 16))
        self.next_event = 1
        self.in_flight: dict[int, object] = {}
        self.delivered: dict[int, list[int]] = {}  # delivery id → times
        self.order: dict[str, list[int]] = {}

    @rule(count=st.integers(1, 4))
    def events(self, count):
        events = [_event(self.next_event + i) for i in range(count)]
        self.next_event += count
        assert self.book.enqueue(events, self.now) == 3 * count

    @rule()
    def take_due(self):
        for d in self.book.due(self.now):
            assert d.id not in self.in_flight
            assert d.next_at <= self.now
            assert d.subscription not in {x.subscription for x in self.in_flight.values()}
            self.in_flight[d.id] = d

    @rule()
    def sender_wakes_at_next_due(self):
        """``next_due`` is when ``due`` has something, exactly (the sender sleeps until
        then: too early spins it, too late or None stalls deliveries)."""
        at = self.book.next_due()
        if at is None:
            assert self.book.due(self.now + 1e9) == []
            return
        self.now = max(self.now, at)
        taken = self.book.due(self.now)
        assert taken
        for d in taken:
            self.in_flight[d.id] = d

    @rule(ok=st.booleans(), data=st.data())
    def finish_one(self, ok, data):
        if not self.in_flight:
            return
        key = data.draw(st.sampled_from(sorted(self.in_flight)))
        d = self.in_flight.pop(key)
        self.book.outcome(d, None if ok else "HTTP 500", self.now)
        if ok:
            self.delivered.setdefault(d.id, []).append(d.event_id)
            self.order.setdefault(d.subscription, []).append(d.event_id)

    @rule(seconds=st.sampled_from([0.5, 1, 3, 10]))
    def time_passes(self, seconds):
        self.now += seconds

    @rule(data=st.data())
    def retry_dead(self, data):
        if self.book.dead:
            self.book.retry(data.draw(st.sampled_from(sorted(self.book.dead))), self.now)

    @invariant()
    def each_delivery_once_and_in_order(self):
        assert all(len(times) == 1 for times in self.delivered.values())
        for events in self.order.values():
            assert events == sorted(events)
        assert len(self.in_flight) <= 4
        assert self.book.pending + len(self.book.dead) + len(self.delivered) == 3 * (
            self.next_event - 1
        )
        assert all(d.attempts == 3 for d in self.book.dead.values())


TestWebhookBook = WebhookMachine.TestCase
TestWebhookBook.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


def test_signature_round_trip_and_tampering():
    body = b'{"kind":"session_started"}'
    header = sign_webhook("s" * 32, body, 1_800_000_000)
    assert verify_webhook("s" * 32, body, header, now=1_800_000_010)
    assert not verify_webhook("s" * 32, body + b" ", header, now=1_800_000_010)
    assert not verify_webhook("t" * 32, body, header, now=1_800_000_010)
    assert not verify_webhook("s" * 32, body, header, now=1_800_001_000)  # a replay
    assert not verify_webhook("s" * 32, body, "t=x,v1=00", now=1_800_000_000)


# -- end to end -------------------------------------------------------------------------------


async def _recent(client, **params):
    r = await client.get("/events/recent", params=params)
    assert r.status_code == 200, r.text
    return r.json()["events"]


async def _raw_charger(nursery, url, cp_id, *notes):
    ws = await connect_websocket_url(nursery, f"{url}/{cp_id}", subprotocols=["ocpp1.6"])
    boot = {"chargePointVendor": "V", "chargePointModel": "M"}
    await ws.send_message(json.dumps([2, "b", "BootNotification", boot]))
    assert json.loads(await ws.get_message())[0] == 3
    for i, note in enumerate(notes):
        await ws.send_message(json.dumps([2, f"s{i}", "StatusNotification", note]))
        assert json.loads(await ws.get_message())[0] == 3
    return ws


FAULTED = {"connectorId": 1, "errorCode": "GroundFailure", "status": "Faulted"}
AVAILABLE = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}


async def test_a_session_and_a_scenario_as_events(tmp_path):
    async with charger_setup(str(tmp_path / "v4e.db")) as (_charger, client):
        r = await tool(client, "remote_start", cp_id="EVSE001", connector_id=1, id_tag="DRIVER1")
        assert r["status"] == "Accepted"

        async def started():
            return await _recent(client, kind="session_started")

        (start,) = await wait_for(started)
        # the same through the agent tool (in the driver-support profile)
        outcome = await call_tool(
            client,
            "recent_events",
            {"cp_id": "EVSE001", "kind": "session_started"},
            profile="driver-support",
        )
        assert outcome["ok"] and outcome["result"]["events"] == [start]
        assert start["cp_id"] == "EVSE001" and start["connector_id"] == 1
        assert start["id_tag"] == "DRIVER1"
        await tool(client, "remote_stop", cp_id="EVSE001", transaction_id=start["transaction_id"])

        async def stopped():
            return await _recent(client, kind="session_stopped", cp_id="EVSE001")

        (stop,) = await wait_for(stopped)
        assert stop["transaction_id"] == start["transaction_id"]
        assert stop["reason"] == "Remote" and stop["energy_wh"] >= 0
        assert stop["id"] > start["id"]

        r = await client.post(
            "/demo/trigger/stuck_connector", json={"id_tag": "DRIVER1", "session_seconds": 0.3}
        )
        assert r.status_code == 201

        async def faulted():
            return await _recent(client, kind="connector_faulted")

        (fault,) = await wait_for(faulted)
        assert fault["error_code"] == "ConnectorLockFailure" and fault["connector_id"] == 1
        await tool(client, "unlock_connector", cp_id="EVSE001", connector_id=1)
        await wait_for(lambda: _recent(client, kind="connector_recovered"))
        phases = [
            e["phase"]
            for e in await _recent(client, kind="scenario_phase_changed")
            if e["scenario"] == "stuck_connector"
        ]
        assert phases[0] == "active" and "resolved" in phases
        every = await _recent(client, limit=1000)
        ids = [e["id"] for e in every]
        assert ids == sorted(set(ids))
        later = await _recent(client, after_id=ids[-2])
        assert [e["id"] for e in later] == ids[-1:]
        r = await client.get("/events/recent", params={"kind": "nonsense"})
        assert r.status_code == 400


async def test_offline_and_back_and_the_filtered_stream(tmp_path):
    async with (
        running_backend(str(tmp_path / "v4e.db")) as backend,
        api(backend) as client,
        trio.open_nursery() as sockets,
    ):
        url = ws_url(backend)
        ws = await _raw_charger(sockets, url, "RAW1", AVAILABLE)
        other = await _raw_charger(sockets, url, "RAW2", AVAILABLE)
        received: list[tuple[str, dict]] = []
        subscribed = trio.Event()

        async def listen(task_status=trio.TASK_STATUS_IGNORED):
            async with (
                httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{backend.api_port}", timeout=None
                ) as streaming,
                streaming.stream(
                    "GET", "/events", params={"cp_id": "RAW1", "kind": "semantic"}
                ) as response,
            ):
                assert response.status_code == 200
                await read_sse(response, received, subscribed)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(listen)
            with trio.fail_after(10):
                await subscribed.wait()
            for conn in (other, ws):  # the other charger first: the stream must skip it
                await conn.send_message(json.dumps([2, "f", "StatusNotification", FAULTED]))
                assert json.loads(await conn.get_message())[0] == 3
            await other.aclose()
            await ws.aclose()

            async def offline():
                return await _recent(client, kind="charger_offline", cp_id="RAW1")

            (gone,) = await wait_for(offline)  # the next tick sees the closed socket
            assert gone["reason"] == "disconnected"
            ws = await _raw_charger(sockets, url, "RAW1", AVAILABLE)
            await wait_for(lambda: _recent(client, kind="charger_back", cp_id="RAW1"))

            async def seen_all():
                return [k for k, _ in received] == [
                    "connector_faulted",
                    "charger_offline",
                    "charger_back",
                    "connector_recovered",
                ]

            await wait_for(seen_all)
            assert all(data["cp_id"] == "RAW1" for _, data in received)
            nursery.cancel_scope.cancel()
        await ws.aclose()
        recent = await _recent(client, cp_id="RAW2")
        assert [e["kind"] for e in recent] == ["connector_faulted", "charger_offline"]
        r = await client.get("/events", params={"kind": "message,bogus"})
        assert r.status_code == 400


class Receiver:
    """A real HTTP server (h11 over Trio) on 127.0.0.1 that records every request and
    answers 500 to the first ``fail_first`` of each path (always for ``/always-fails``
    until ``heal`` is called)."""

    def __init__(self, fail_first: int = 1) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.fail_first = fail_first
        self.healed = False
        self.changed = trio.Event()

    def heal(self) -> None:
        self.healed = True

    async def serve(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        request, body = None, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
        path = request.target.decode()
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        seen = sum(1 for p, _, _ in self.requests if p == path)
        self.requests.append((path, headers, body))
        failing = path == "/always-fails" and not self.healed
        status = 500 if failing or seen < self.fail_first else 200
        out = conn.send(h11.Response(status_code=status, headers=[("Content-Length", "0")]))
        out += conn.send(h11.EndOfMessage())
        await stream.send_all(out)
        await stream.aclose()
        self.changed.set()
        self.changed = trio.Event()


@contextlib.asynccontextmanager
async def webhook_site(tmp_path, receiver, policy, **backend_options):
    """A receiver's HTTP server and a backend with ``policy`` on 127.0.0.1: yields (nursery,
    the receiver's port, the backend, an API client)."""
    config = BackendConfig(
        host="127.0.0.1",
        ws_port=0,
        api_port=0,
        db_path=str(tmp_path / "v4e.db"),
        webhook_policy=policy,
    )
    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(
            functools.partial(trio.serve_tcp, receiver.serve, 0, host="127.0.0.1")
        )
        port = listener.socket.getsockname()[1]
        backend = await nursery.start(
            lambda task_status: serve_backend(config, task_status=task_status, **backend_options)
        )
        async with api(backend) as client:
            yield nursery, port, backend, client
        nursery.cancel_scope.cancel()


async def test_signed_webhooks_are_retried_and_dead_letters_can_be_sent_again(tmp_path):
    receiver = Receiver()
    policy = WebhookPolicy(max_attempts=3, backoff=0.05, timeout=5)
    async with webhook_site(tmp_path, receiver, policy) as site:
        nursery, port, backend, client = site
        r = await client.post(
            "/webhooks",
            json={
                "url": f"http://127.0.0.1:{port}/hook",
                "secret": "s3cret-s3cret-s3cret",
                "kinds": ["connector_faulted"],
                "cp_ids": ["HOOKED"],
            },
        )
        assert r.status_code == 201, r.text
        secret = r.json()["secret"]
        assert secret == "s3cret-s3cret-s3cret"
        r = await client.post("/webhooks", json={"url": f"http://127.0.0.1:{port}/always-fails"})
        assert r.status_code == 201
        dead_secret = r.json()["secret"]
        assert len(dead_secret) == 64  # generated, shown once
        listed = (await client.get("/webhooks")).json()
        assert len(listed["webhooks"]) == 2 and "secret" not in json.dumps(listed)

        ws = await _raw_charger(nursery, ws_url(backend), "HOOKED", AVAILABLE, FAULTED)
        hooked = [(p, h, b) for p, h, b in receiver.requests if p == "/hook"]

        async def delivered():
            hooked[:] = [(p, h, b) for p, h, b in receiver.requests if p == "/hook"]
            return len(hooked) == 2 and listed_delivered(await client.get("/webhooks"))

        def listed_delivered(r):
            return r.json()["delivered"] >= 1

        await wait_for(delivered)
        (_, h1, b1), (_, h2, b2) = hooked
        assert b1 == b2 and h1["v4e-delivery-id"] == h2["v4e-delivery-id"]
        assert (h1["v4e-delivery-attempt"], h2["v4e-delivery-attempt"]) == ("1", "2")
        assert h2["content-type"] == "application/json"
        assert h2["v4e-event-kind"] == "connector_faulted"
        assert verify_webhook(secret, b2, h2["v4e-signature"], now=time.time())
        assert not verify_webhook(dead_secret, b2, h2["v4e-signature"], now=time.time())
        event = json.loads(b2)
        assert event["kind"] == "connector_faulted" and event["cp_id"] == "HOOKED"
        assert event["error_code"] == "GroundFailure"
        assert str(event["id"]) == h2["v4e-event-id"]

        async def dead():
            return (await client.get("/webhooks/dead_letters")).json()["dead_letters"]

        letters = await wait_for(dead)
        assert all(d["attempts"] == 3 and d["last_error"] == "HTTP 500" for d in letters)
        kinds = {d["kind"] for d in letters}
        assert "connector_faulted" in kinds  # the catch-all subscription had it too
        fails = [h for p, h, _ in receiver.requests if p == "/always-fails"]
        assert len(fails) >= 3 * len(letters)
        receiver.heal()
        for d in letters:
            r = await client.post(f"/webhooks/dead_letters/{d['id']}/retry")
            assert r.status_code == 200
        await wait_for(lambda: _none(dead))
        r = await client.post("/webhooks/dead_letters/999999/retry")
        assert r.status_code == 404
        await ws.aclose()


async def _none(fetch):
    return not await fetch()


async def test_bad_webhooks_are_refused(tmp_path):
    async with running_backend(str(tmp_path / "v4e.db")) as backend, api(backend) as client:
        for body in (
            {"url": "ftp://example.test/x"},
            {"url": "http://example.test/x", "kinds": ["session_exploded"]},
            {"url": "http://example.test/x", "secret": "short"},
            {"url": "http://exa mple.test/"},
        ):
            r = await client.post("/webhooks", json=body)
            assert r.status_code == 422, (body, r.text)
        for i in range(100):
            r = await client.post("/webhooks", json={"url": f"http://example.test/{i}"})
            assert r.status_code == 201
        r = await client.post("/webhooks", json={"url": "http://example.test/101"})
        assert r.status_code == 409
        r = await client.delete("/webhooks/nope")
        assert r.status_code == 404
        first = (await client.get("/webhooks")).json()["webhooks"][0]["id"]
        assert (await client.delete(f"/webhooks/{first}")).json()["deleted"]


def test_a_webhook_without_a_secret_is_a_one_line_startup_error(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "V4E_WEBHOOK_SECRET"}
    for extra, expected in (
        ({}, "V4E_WEBHOOK_SECRET"),
        ({"V4E_WEBHOOK_SECRET": "x" * 32}, "not an http:// or https:// URL"),
    ):
        url = "http://127.0.0.1:9/hook" if not extra else "ftp://example.test/hook"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "libv4e_apps",
                "csms",
                "--ws-port",
                "0",
                "--api-port",
                "0",
                "--db",
                str(tmp_path / "v4e.db"),
                "--webhook",
                url,
            ],
            cwd=tmp_path,
            env={**env, **extra, "PYTHONUNBUFFERED": "1"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        (line,) = [x for x in result.stderr.splitlines() if x.startswith("v4e:")]
        assert "--webhook" in line and expected in line


async def test_a_webhook_url_httpx_cannot_parse_costs_only_its_deliveries(tmp_path):
    """``http://a:b:c/`` fits the URL pattern but httpx refuses it (InvalidURL, not an
    HTTPError): it must end as a dead letter, not crash the event hub and the backend
    with it; and POST /webhooks refuses it up front."""
    policy = WebhookPolicy(max_attempts=2, backoff=0.05, timeout=5)
    config = BackendConfig(
        host="127.0.0.1",
        ws_port=0,
        api_port=0,
        db_path=str(tmp_path / "v4e.db"),
        webhook_policy=policy,
        webhooks=(("http://a:b:c/", "s" * 32),),
    )
    async with trio.open_nursery() as nursery:
        backend = await nursery.start(
            lambda task_status: serve_backend(config, task_status=task_status)
        )
        async with api(backend) as client:
            ws = await _raw_charger(nursery, ws_url(backend), "BADURL", AVAILABLE, FAULTED)

            async def dead():
                return (await client.get("/webhooks/dead_letters")).json()["dead_letters"]

            (letter,) = await wait_for(dead)
            assert letter["attempts"] == 2 and "InvalidURL" in letter["last_error"]
            assert (await client.get("/webhooks")).json()["webhooks"][0]["id"] == "wh_cli1"
            r = await client.post("/webhooks", json={"url": "http://a:b:c/"})
            assert r.status_code == 422 and r.json()["error"] == "invalid_body", r.text
            await ws.aclose()
        nursery.cancel_scope.cancel()


async def test_a_slow_stream_reader_loses_events_with_a_dropped_comment(tmp_path):
    """The hub never waits for a stream: past the stream's buffer, events are dropped and
    the reader is told how many (``: dropped N``), then gets the next ones."""
    apps: list = []
    config = BackendConfig(host="127.0.0.1", ws_port=0, api_port=0, db_path=":memory:")
    async with trio.open_nursery() as nursery:
        backend = await nursery.start(
            lambda task_status: serve_backend(
                config, extra_routes=apps.append, task_status=task_status
            )
        )
        hub = apps[0].extensions["v4e_events"]
        lines: list[str] = []
        connected = trio.Event()

        async def listen():
            async with (
                httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{backend.api_port}", timeout=None
                ) as streaming,
                streaming.stream("GET", "/events", params={"kind": "semantic"}) as response,
            ):
                async for line in response.aiter_lines():
                    if line.startswith(": connected"):
                        connected.set()
                    lines.append(line)

        nursery.start_soon(listen)
        with trio.fail_after(10):
            await connected.wait()
        # 1500 at once, without a checkpoint: the stream's buffer (1000) overflows
        hub.publish([_event(n, "SLOW") for n in range(1, 1501)])

        async def told():
            return [x for x in lines if x.startswith(": dropped")]

        (comment,) = await wait_for(told)
        hub.publish([_event(1501, "SLOW", "charger_back")])  # the stream goes on after

        async def got_last():
            return "id: 1501" in lines

        await wait_for(got_last)
        ids = [int(x.removeprefix("id: ")) for x in lines if x.startswith("id: ")]
        first = ids[:-1]
        assert first == list(range(1, len(first) + 1)) and 1000 <= len(first) <= 1001
        assert comment == f": dropped {1500 - len(first)}" and ids[-1] == 1501
        nursery.cancel_scope.cancel()


class SlowReceiver(Receiver):
    """``/slow`` never answers; everything else is 200 at once."""

    async def serve(self, stream: trio.SocketStream) -> None:
        data = await stream.receive_some(65536)
        path = data.split(b" ", 2)[1].decode()
        self.requests.append((path, {}, data))
        if path == "/slow":
            await trio.sleep_forever()
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await stream.aclose()


async def test_one_slow_endpoint_does_not_hold_up_the_others(tmp_path, autojump_clock):
    # trio's clock jumps once nothing has happened for 50 ms, and also runs at wall speed:
    # a sender that spun would keep it from jumping, not hang the test
    autojump_clock.autojump_threshold = 0.05
    autojump_clock.rate = 1.0
    receiver = SlowReceiver()
    apps: list = []
    async with webhook_site(
        tmp_path, receiver, WebhookPolicy(timeout=600), extra_routes=apps.append
    ) as site:
        nursery, port, backend, client = site
        book = apps[0].extensions["v4e_events"].webhooks
        looks = [0]
        due = book.due

        def counted(now):
            looks[0] += 1
            return due(now)

        book.due = counted
        for path in ("slow", "fast"):
            r = await client.post("/webhooks", json={"url": f"http://127.0.0.1:{port}/{path}"})
            assert r.status_code == 201
        ws = await _raw_charger(nursery, ws_url(backend), "TWO", AVAILABLE, FAULTED)
        await ws.send_message(json.dumps([2, "ok", "StatusNotification", AVAILABLE]))
        assert json.loads(await ws.get_message())[0] == 3

        async def fast_got_both():
            r = (await client.get("/webhooks")).json()
            return r["delivered"] == 2 and r

        state = await wait_for(fast_got_both)
        # the slow one still holds its first event (one in flight per subscription)
        assert state["pending"] == 2 and state["dead_letters"] == 0
        paths = [p for p, _, _ in receiver.requests]
        assert paths.count("/slow") == 1 and paths.count("/fast") == 2
        # the sender sleeps while the slow one holds its subscription (it spun)
        before = looks[0]
        await trio.sleep(0.5)
        assert looks[0] - before <= 2
        await ws.aclose()


def test_scenario_runs_are_indexed_per_charger_as_they_are_added():
    from libv4e_apps.csms.events import _runs_of

    def run(cp_id, name, phase, connector=None):
        spec = types.SimpleNamespace(name=name)
        params = {} if connector is None else {"connector_id": connector}
        return types.SimpleNamespace(cp_id=cp_id, spec=spec, params=params, phase=phase)

    manager = types.SimpleNamespace(runs=[run("A", "stuck_connector", "active", 1)])
    runs = _runs_of(manager)
    assert runs("A") == {"0": ("stuck_connector", 1, "active")} and runs("B") == {}
    manager.runs += [run("B", "offline_charger", "active"), run("A", "auth_failure", "active")]
    manager.runs[0].phase = "resolved"
    assert runs("A") == {
        "0": ("stuck_connector", 1, "resolved"),
        "2": ("auth_failure", None, "active"),
    }
    assert runs("B") == {"1": ("offline_charger", None, "active")}


def test_a_charger_whose_look_fails_costs_only_itself(caplog):
    now = [T0]
    registry = Registry(offline_tolerance=2.0)
    book = TransactionBook()
    csms = types.SimpleNamespace(registry=registry, transactions=book, clock=lambda: now[0])
    broken = {"B": False}

    def runs(cp_id):
        if broken.get(cp_id):
            raise RuntimeError("a run that cannot be read")
        return {}

    feed = AgentEventFeed(csms, runs)  # type: ignore[arg-type]
    for cp in ("A", "B"):
        registry.add(ChargePointState(cp))
        registry.connected(cp, now[0])
    feed.baseline()
    broken["B"] = True
    registry.disconnected("A", now[0])
    registry.disconnected("B", now[0])
    events = feed.tick()  # B fails; A's event still comes
    assert [(e.kind, e.cp_id) for e in events] == [("charger_offline", "A")]
    assert "events of B" in caplog.text
    broken["B"] = False
    assert [(e.kind, e.cp_id) for e in feed.tick()] == [("charger_offline", "B")]


def test_next_due_waits_for_the_delivery_in_flight():
    """A subscription's later events wait behind the one in flight: ``next_due`` must not
    name them (the sender would wake at once, again and again, while it is in flight)."""
    book = WebhookBook(WebhookPolicy(concurrency=2))
    for sub in ("s1", "s2"):
        book.subscribe(WebhookSubscription(sub, "http://127.0.0.1:9/x", "k" * 16))
    book.enqueue([_event(1), _event(2)], now=0.0)  # two for each subscription
    first = book.due(0.0)
    assert [(d.subscription, d.event_id) for d in first] == [("s1", 1), ("s2", 1)]
    assert book.next_due() is None  # both busy: only an outcome may wake the sender
    book.outcome(first[0], "HTTP 500", now=0.0)  # s1's first: retried after 1 s
    assert book.next_due() == 1.0  # s1's head, not its second event (due at 0)
    assert book.due(0.5) == []
    book.outcome(first[1], None, now=0.5)  # s2's first delivered: its second is due
    assert book.next_due() == 0.0


async def test_a_dead_letter_of_a_removed_webhook_is_not_requeued_into_nothing(tmp_path):
    """Retrying a dead letter whose subscription was deleted answered "requeued" and the
    delivery then vanished unsent; now 409 and the letter stays listed."""
    config = BackendConfig(
        host="127.0.0.1",
        ws_port=0,
        api_port=0,
        db_path=str(tmp_path / "v4e.db"),
        webhook_policy=WebhookPolicy(max_attempts=1, timeout=5),
    )
    with trio.socket.socket() as closed:  # a port nobody listens on: refused at once
        await closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    async with trio.open_nursery() as nursery:
        backend = await nursery.start(
            lambda task_status: serve_backend(config, task_status=task_status)
        )
        async with api(backend) as client:
            r = await client.post("/webhooks", json={"url": f"http://127.0.0.1:{port}/x"})
            webhook = r.json()["id"]
            ws = await _raw_charger(nursery, ws_url(backend), "GONE", AVAILABLE, FAULTED)

            async def dead():
                return (await client.get("/webhooks/dead_letters")).json()["dead_letters"]

            (letter,) = await wait_for(dead)
            assert (await client.delete(f"/webhooks/{webhook}")).status_code == 200
            r = await client.post(f"/webhooks/dead_letters/{letter['id']}/retry")
            assert r.status_code == 409 and r.json()["error"] == "unknown_webhook", r.text
            assert [d["id"] for d in await dead()] == [letter["id"]]
            await ws.aclose()
        nursery.cancel_scope.cancel()


def test_a_webhook_option_that_does_not_parse_is_a_startup_problem(monkeypatch):
    import argparse

    import pytest

    from libv4e_apps.csms.cli import webhooks
    from libv4e_apps.runtime import StartupProblem

    monkeypatch.setenv("V4E_WEBHOOK_SECRET", "x" * 32)
    ok = webhooks(argparse.Namespace(webhook="http://127.0.0.1:9/a, https://b.example/c"))
    assert ok == (("http://127.0.0.1:9/a", "x" * 32), ("https://b.example/c", "x" * 32))
    with pytest.raises(StartupProblem, match="not a valid URL"):
        webhooks(argparse.Namespace(webhook="http://a:b:c/"))


class EndlessBodyReceiver(Receiver):
    """Answers 200 with headers announcing a gigabyte, then sends nothing more."""

    async def serve(self, stream: trio.SocketStream) -> None:
        data = await stream.receive_some(65536)
        self.requests.append(("", {}, data))
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n"
        await stream.send_all(head + b"x" * 65536)
        await trio.sleep_forever()


async def test_a_webhook_answer_is_read_for_its_status_only(tmp_path):
    """The sender does not read a receiver's answer body (a receiver could send gigabytes
    into the CSMS's memory, or hold the delivery until the timeout)."""
    receiver = EndlessBodyReceiver()
    async with webhook_site(tmp_path, receiver, WebhookPolicy(max_attempts=1, timeout=3)) as site:
        nursery, port, backend, client = site
        r = await client.post("/webhooks", json={"url": f"http://127.0.0.1:{port}/big"})
        assert r.status_code == 201
        ws = await _raw_charger(nursery, ws_url(backend), "BIG", AVAILABLE, FAULTED)

        async def settled():
            r = (await client.get("/webhooks")).json()
            return r["pending"] == 0 and r

        state = await wait_for(settled)
        assert state["delivered"] == 1 and state["dead_letters"] == 0
        await ws.aclose()


def test_a_charger_removed_from_the_registry_is_forgotten():
    """Bounded memory: the feed keeps nothing of a charger the registry forgot; one that
    comes back under the same id starts a new baseline (no event for its first look)."""
    registry = Registry(offline_tolerance=2.0)
    csms = types.SimpleNamespace(
        registry=registry, transactions=TransactionBook(), clock=lambda: T0
    )
    feed = AgentEventFeed(csms)  # type: ignore[arg-type]
    registry.add(ChargePointState("GONE"))
    feed.baseline()  # offline
    registry.remove("GONE")
    assert feed.tick() == []
    registry.add(ChargePointState("GONE"))
    registry.connected("GONE", T0)
    assert feed.tick() == []  # a new baseline, not charger_back
    registry.disconnected("GONE", T0)
    assert [e.kind for e in feed.tick()] == ["charger_offline"]


def test_webhook_option_is_repeatable_and_overrides_the_environment(monkeypatch):
    import argparse

    from libv4e_apps.csms.cli import csms_options, webhooks

    monkeypatch.setenv("V4E_WEBHOOK_SECRET", "x" * 32)
    monkeypatch.setenv("V4E_WEBHOOK", "http://from.env/hook")
    parser = argparse.ArgumentParser()
    csms_options(parser)
    args = parser.parse_args(["--webhook", "http://a.test/1", "--webhook", "http://b.test/2,"])
    assert [url for url, _ in webhooks(args)] == ["http://a.test/1", "http://b.test/2"]
    assert [url for url, _ in webhooks(parser.parse_args([]))] == ["http://from.env/hook"]


async def test_the_filtered_stream_carries_only_its_chargers_state_and_messages(tmp_path):
    async with (
        running_backend(str(tmp_path / "v4e.db")) as backend,
        trio.open_nursery() as sockets,
    ):
        url = ws_url(backend)
        mine = await _raw_charger(sockets, url, "F1", AVAILABLE)
        other = await _raw_charger(sockets, url, "F2", AVAILABLE)
        seen: list[tuple[str, dict]] = []

        async def listen():
            async with (
                httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{backend.api_port}", timeout=None
                ) as streaming,
                streaming.stream(
                    "GET",
                    "/events",
                    params=[("cp_id", "F1"), ("kind", "state"), ("kind", "message")],
                ) as response,
            ):
                assert response.status_code == 200
                await read_sse(response, seen)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(listen)

            async def first_state():
                return any(k == "state" for k, _ in seen)

            await wait_for(first_state)
            for conn in (other, mine):
                await conn.send_message(json.dumps([2, "h", "Heartbeat", {}]))
                assert json.loads(await conn.get_message())[0] == 3

            async def my_heartbeat_answered():
                return any(k == "message" and d["direction"] == "out" for k, d in seen)

            await wait_for(my_heartbeat_answered)
            nursery.cancel_scope.cancel()
        state = next(d for k, d in seen if k == "state")
        assert [c["cp_id"] for c in state["charge_points"]] == ["F1"]
        messages = [d for k, d in seen if k == "message"]
        assert {m["cp_id"] for m in messages} == {"F1"}
        assert {m["action"] for m in messages} == {"Heartbeat"}
        assert {k for k, _ in seen} <= {"state", "message"}
        await mine.aclose()
        await other.aclose()
