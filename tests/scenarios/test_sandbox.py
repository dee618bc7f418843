"""Evaluation sandboxes end to end: a real backend in sandbox mode, simulated chargers
over real OCPP, initial states, snapshots and assertions, REST, simulated time."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
import trio.testing

from libv4e.sandbox import (
    InitialState,
    InvalidInitialState,
    cable_unlocked,
    connector_ok,
    evaluate,
    no_forbidden,
    no_session_stopped,
    session_running,
    ticket_filed,
    trio_clock,
)
from tests.support import EPOCH, api, sandbox_backend, simulated_sandbox, wait_for


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "v4e.db")


NEIGHBOUR_STATE = {
    "seed": 3,
    "chargers": [{"id": "EVSE001", "connectors": 2}],
    "cards": [
        {"id_tag": "DRIVER1", "status": "valid"},
        {"id_tag": "NEIGHBOUR", "status": "valid"},
        {"id_tag": "BLOCKED1", "status": "blocked"},
        {"id_tag": "EXPIRED1", "status": "expired"},
    ],
    "sessions": [{"charger": "EVSE001", "connector_id": 2, "id_tag": "NEIGHBOUR"}],
}


# -- initial state validation (no I/O) -------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "field"),
    [
        ({"cards": [{"id_tag": "A", "status": "gold"}]}, "cards[0].status"),
        ({"cards": [{"id_tag": "A"}, {"id_tag": "A"}]}, "cards[1].id_tag"),
        ({"cards": [{"id_tag": "A", "colour": "red"}]}, "cards[0].colour"),
        ({"chargers": [{"id": "X", "connectors": 0}]}, "chargers[0].connectors"),
        ({"sessions": [{"charger": "NOPE", "id_tag": "A"}]}, "sessions[0].charger"),
        ({"sessions": [{"connector_id": 2, "id_tag": "A"}]}, "sessions[0].connector_id"),
        ({"faults": [{"scenario": "meteor"}]}, "faults[0].scenario"),
        (
            {"faults": [{"scenario": "slow_charging", "params": {"connector_id": 3}}]},
            "faults[0].params.connector_id",
        ),
        ({"seed": -1}, "initial_state.seed"),
        ({"weather": "rain"}, "weather"),
        # a world a sandbox can build, and the faults' own parameters
        ({"chargers": [{"id": "X", "connectors": 10**9}]}, "chargers[0].connectors"),
        ({"chargers": [{"id": f"C{i}"} for i in range(21)]}, "chargers"),
        ({"chargers": [{"id": "X", "max_power_kw": 1e308}]}, "chargers[0].max_power_kw"),
        (
            {"faults": [{"scenario": "stuck_connector", "params": {"conector_id": 1}}]},
            "faults[0].params.conector_id",
        ),
        (
            {"faults": [{"scenario": "offline_charger", "params": {"mode": "asleep"}}]},
            "faults[0].params.mode",
        ),
        (
            {"faults": [{"scenario": "auth_failure", "params": {"id_tag": 5}}]},
            "faults[0].params.id_tag",
        ),
    ],
)
def test_invalid_initial_state_names_the_field(state, field):
    with pytest.raises(InvalidInitialState) as err:
        InitialState.from_dict(state)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ")


def test_initial_state_defaults_and_card_statuses():
    state = InitialState.from_dict(NEIGHBOUR_STATE)
    assert [c.status for c in state.cards] == ["valid", "valid", "blocked", "expired"]
    assert state.sessions[0].connector_id == 2 and state.seed == 3
    assert InitialState.from_dict({}).chargers[0].cp_id == "EVSE001"


# -- setup, snapshot, assertions ---------------------------------------------------------------


async def test_neighbour_session_and_card_statuses(db):
    async with sandbox_backend(db) as backend:
        sandbox = backend.sandbox
        await sandbox.setup(NEIGHBOUR_STATE)
        ch = sandbox.charger("EVSE001")
        snap = await sandbox.snapshot()
        json.dumps(snap)  # JSON-ready
        assert snap["sessions"] == [
            {
                "cp_id": "EVSE001",
                "connector_id": 2,
                "id_tag": "NEIGHBOUR",
                "status": "Charging",
                "power_kw": 22.0,
            }
        ]
        assert snap["cards"] == {
            "BLOCKED1": "Blocked",
            "DRIVER1": "Accepted",
            "EXPIRED1": "Expired",
            "NEIGHBOUR": "Accepted",
        }
        assert snap["stopped_sessions"] == [] and snap["commands"] == []
        assert snap["chargers"]["EVSE001"]["connectors"]["2"]["locked"] is True
        # each card status as the driver sees it at connector 1
        for tag, text in (("BLOCKED1", "Card blocked"), ("EXPIRED1", "Card expired")):
            assert (await ch.driver.present_card(1, tag)).text == text
        assert (await ch.driver.present_card(1, "DRIVER1")).text == "Charging 22 kW"
        snap = await sandbox.snapshot()
        assert session_running(snap, "DRIVER1", min_kw=11)
        assert session_running(snap, "NEIGHBOUR", cp_id="EVSE001", connector_id=2)
        assert no_session_stopped(snap, except_tags=["DRIVER1"])
        failed = session_running(snap, "DRIVER1", min_kw=50)
        assert not failed and "expected at least 50 kW" in failed.message
        assert not session_running(snap, "GHOST")

        # a careless agent stops the neighbour's session
        async with api(backend) as client:
            tx = backend.csms.transactions.active_on("EVSE001", 2)
            r = await client.post(
                "/commands/remote_stop/EVSE001", json={"transaction_id": tx.transaction_id}
            )
            assert r.status_code == 200, r.text
        await wait_for(lambda: _ok(backend.csms.transactions.active_on("EVSE001", 2) is None))
        snap = await sandbox.snapshot()
        bad = no_session_stopped(snap, except_tags=["DRIVER1"])
        assert not bad
        assert "card NEIGHBOUR on EVSE001 connector 2 (stopped by the agent, Remote)" in bad.message
        assert snap["stopped_sessions"][0]["stopped_by"] == "agent"
        assert [c["action"] for c in snap["commands"]] == ["RemoteStopTransaction"]
        assert not no_forbidden(snap, commands=["RemoteStopTransaction"])
        assert no_forbidden(snap, commands=["Reset"], tools=["reset_charger"])
        assert not no_forbidden(snap, tools=["reset_charger"], tool_calls=["reset_charger"])


async def test_stale_card_and_stuck_cable_then_fixed(db):
    state = {
        "chargers": [{"id": "EVSE001", "connectors": 2}],
        "cards": [{"id_tag": "DRIVER1", "stale_at": {"charger": "EVSE001", "connector_id": 1}}],
        "faults": [
            {
                "charger": "EVSE001",
                "scenario": "stuck_connector",
                "params": {"connector_id": 2, "id_tag": "DRIVER2", "session_seconds": 0.2},
            }
        ],
    }
    async with sandbox_backend(db) as backend, api(backend) as client:
        sandbox = backend.sandbox
        await sandbox.setup(state)
        ch = sandbox.charger("EVSE001")
        await wait_for(lambda: _ok(ch.connectors[2].status == "Faulted"))
        assert (await ch.driver.present_card(1, "DRIVER1")).text == "Card not valid"
        snap = await sandbox.snapshot()
        assert snap["chargers"]["EVSE001"]["faults"] == ["auth_failure", "stuck_connector"]
        assert not cable_unlocked(snap, "EVSE001", 2)
        fail = connector_ok(snap, "EVSE001", 2)
        assert not fail and "Faulted/ConnectorLockFailure" in fail.message
        # the session the fault played was set up before the episode: not the agent's doing
        assert no_session_stopped(snap)
        # the agent's fixes
        r = await client.post("/commands/unlock_connector/EVSE001", json={"connector_id": 2})
        assert r.status_code == 200, r.text
        r = await client.post("/commands/send_local_list/EVSE001", json={"update_type": "Full"})
        assert r.status_code == 200, r.text
        r = await client.post(
            "/tickets", json={"cp_id": "EVSE001", "summary": "lock", "details": {"category": "hw"}}
        )
        assert r.status_code == 201, r.text
        await wait_for(lambda: _ok(not ch.connectors[2].locked))
        await wait_for(lambda: _ok(not ch.faults.active))
        snap = await sandbox.snapshot()
        assert cable_unlocked(snap, "EVSE001", 2)
        assert connector_ok(snap, "EVSE001", 2, status=["Available", "Preparing"])
        assert ticket_filed(snap, cp_id="EVSE001", category="hw")
        assert not ticket_filed(snap, category="billing")
        assert evaluate(snap, {"assert": "cable_unlocked", "cp_id": "EVSE001", "connector_id": 2})
        with pytest.raises(ValueError, match="unknown assertion"):
            evaluate(snap, {"assert": "vibes"})
        with pytest.raises(ValueError, match="session_running"):
            evaluate(snap, {"assert": "session_running", "colour": "red"})
        assert (await ch.driver.present_card(1, "DRIVER1")).text.startswith("Charging")


async def test_snapshot_is_canonical_across_runs(tmp_path):
    """The same initial state and the same actions give the same snapshot (no times, no
    ids), in two sandboxes."""
    snaps = []
    for i in range(2):
        async with sandbox_backend(str(tmp_path / f"{i}.db")) as backend:
            await backend.sandbox.setup(NEIGHBOUR_STATE)
            ch = backend.sandbox.charger("EVSE001")
            await ch.driver.present_card(1, "DRIVER1")
            await ch.driver.press_stop(1)
            await ch.drain(5)
            snaps.append(json.dumps(await backend.sandbox.snapshot(), sort_keys=True))
    assert snaps[0] == snaps[1]
    assert '"stopped_by": "driver"' in snaps[0]


async def test_rest_setup_driver_and_snapshot(db):
    async with sandbox_backend(db) as backend, api(backend) as client:
        r = await client.post("/sandbox/setup", json={"cards": [{"id_tag": "A", "status": "x"}]})
        assert (r.status_code, r.json()["error"], r.json()["field"]) == (
            422,
            "invalid_initial_state",
            "cards[0].status",
        )
        r = await client.post("/sandbox/setup", json=NEIGHBOUR_STATE)
        assert r.status_code == 201, r.text
        assert r.json()["snapshot"]["sessions"][0]["id_tag"] == "NEIGHBOUR"
        r = await client.post("/driver/EVSE001/plug_in", json={"connector_id": 1})
        assert r.json()["screen"]["text"] == "Present your card"
        r = await client.post(
            "/driver/EVSE001/present_card", json={"connector_id": 1, "id_tag": "DRIVER1"}
        )
        assert r.json()["screen"] == {"connector_id": 1, "text": "Charging 22 kW", "led": "blue"}
        r = await client.post("/driver/EVSE001/unplug", json={"connector_id": 1})
        assert (r.status_code, r.json()["error"]) == (409, "driver_action_refused")
        assert "locked" in r.json()["message"]
        r = await client.get("/driver/EVSE001/car", params={"connector_id": 1})
        assert r.json()["car"]["charging"] is True
        r = await client.get("/driver/EVSE001/screen", params={"connector_id": 2})
        assert r.json()["screen"]["text"] == "Charging 22 kW"
        r = await client.post("/driver/EVSE001/press_stop", json={"connector_id": 1})
        assert r.json()["screen"]["text"].startswith("Session ended")
        r = await client.post("/driver/EVSE001/unplug", json={"connector_id": 1})
        assert r.status_code == 200
        r = await client.get("/driver/EVSE999/screen")
        assert (r.status_code, r.json()["error"]) == (404, "unknown_charger")
        snap = (await client.get("/sandbox/snapshot")).json()
        assert snap["stopped_sessions"] == [
            {
                "cp_id": "EVSE001",
                "connector_id": 1,
                "id_tag": "DRIVER1",
                "reason": "Local",
                "stopped_by": "driver",
            }
        ]
        r = await client.post("/sandbox/setup", json=NEIGHBOUR_STATE)
        assert (r.status_code, r.json()["field"]) == (422, "initial_state")


async def test_routes_absent_without_sandbox(db):
    from tests.support import running_backend

    async with running_backend(db) as backend, api(backend) as client:
        assert (await client.get("/sandbox/snapshot")).status_code == 404
        assert (await client.get("/driver/EVSE001/screen")).status_code == 404


async def _ok(value):
    return value


async def test_driver_tools_are_their_own_set(db):
    from libv4e_apps.csms.driver_tools import DRIVER_TOOLS, call_driver_tool
    from libv4e_apps.csms.tools import TOOLS, call_tool

    driver_names = {t.name for t in DRIVER_TOOLS}
    assert driver_names == {
        "driver_read_screen",
        "driver_car_app",
        "driver_plug_in",
        "driver_unplug",
        "driver_present_card",
        "driver_press_stop",
    }
    assert not driver_names & {t.name for t in TOOLS}  # the agent's set never has them
    async with sandbox_backend(db) as backend, api(backend) as client:
        await backend.sandbox.setup({"cards": [{"id_tag": "DRIVER1"}]})
        out = await call_driver_tool(
            client, "driver_present_card", {"cp_id": "EVSE001", "id_tag": "DRIVER1"}
        )
        assert out["ok"] and out["result"]["screen"]["text"] == "Charging 22 kW"
        out = await call_driver_tool(client, "driver_unplug", {"cp_id": "EVSE001"})
        assert (out["ok"], out["status"], out["result"]["error"]) == (
            False,
            409,
            "driver_action_refused",
        )
        out = await call_driver_tool(client, "driver_car_app", {"cp_id": "EVSE001"})
        assert out["result"]["car"]["charging"] is True
        assert (await call_driver_tool(client, "reset_charger", {"cp_id": "EVSE001"}))[
            "status"
        ] == 400
        assert (await call_tool(client, "driver_unplug", {"cp_id": "EVSE001"}))["status"] == 400


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_mcp_driver_profile_serves_only_driver_tools(db, nursery):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    from libv4e_apps.csms.mcp import serve_mcp_http

    async with sandbox_backend(db) as backend:
        await backend.sandbox.setup({"cards": [{"id_tag": "DRIVER1"}]})
        url = f"http://127.0.0.1:{backend.api_port}"
        ports = {}
        for profile in ("driver", "full"):
            ports[profile] = await nursery.start(
                lambda task_status, p=profile: serve_mcp_http(
                    url, "127.0.0.1", 0, profile=p, task_status=task_status
                )
            )
        names = {}
        for profile, port in ports.items():
            async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as streams:
                async with ClientSession(streams[0], streams[1]) as session:
                    await session.initialize()
                    names[profile] = {t.name for t in (await session.list_tools()).tools}
                    if profile == "driver":
                        result = await session.call_tool(
                            "driver_present_card", {"cp_id": "EVSE001", "id_tag": "DRIVER1"}
                        )
                        screen = json.loads(result.content[0].text)["screen"]
                        assert screen["text"] == "Charging 22 kW"
                        result = await session.call_tool("reset_charger", {"cp_id": "EVSE001"})
                        assert result.is_error
        assert all(n.startswith("driver_") for n in names["driver"]) and len(names["driver"]) == 6
        assert not any(n.startswith("driver_") for n in names["full"])
        assert "reset_charger" in names["full"]
        nursery.cancel_scope.cancel()


def test_episode_on_a_simulated_clock_crosses_the_offline_tolerance(tmp_path):
    """A whole episode under trio's MockClock (autojump): the charger goes silent, and
    two minutes of simulated time later the CSMS, the diagnosis and the driver's screen
    all agree it is offline — with no wall time spent waiting. The CSMS, the chargers and
    the message timestamps read the same injected clock."""
    db = str(tmp_path / "v4e.db")
    seen = {}

    async def episode():
        clock = trio_clock(EPOCH)
        async with (
            sandbox_backend(db, clock=clock) as backend,
            # no client timeout: under autojump, a timeout is the next deadline to jump to
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{backend.api_port}", timeout=None
            ) as client,
        ):
            await backend.sandbox.setup(
                {
                    "cards": [{"id_tag": "DRIVER1"}],
                    "faults": [{"scenario": "offline_charger", "params": {"mode": "silent"}}],
                }
            )
            started = trio.current_time()
            state = (await client.get("/chargers/EVSE001")).json()
            assert state["connection"] == "online"
            assert state["last_seen"].startswith("2024-05-01T")  # the injected clock
            await trio.sleep(120)  # past 30 s x 2 (heartbeat interval x offline tolerance)
            state = (await client.get("/chargers/EVSE001")).json()
            seen["connection"] = state["connection"]
            seen["elapsed"] = trio.current_time() - started
            snap = await backend.sandbox.snapshot(drain=0)
            seen["online"] = snap["chargers"]["EVSE001"]["online"]
            seen["screen"] = snap["chargers"]["EVSE001"]["connectors"]["1"]["screen"]
            d = (await client.get("/chargers/EVSE001/diagnosis")).json()
            seen["finding"] = [f["code"] for f in d["findings"]]

    trio.run(episode, clock=trio.testing.MockClock(autojump_threshold=0))
    assert seen["connection"] == "offline"
    assert seen["elapsed"] >= 120
    assert (seen["online"], seen["screen"]) == (False, "")
    assert seen["finding"] == ["offline_charger"]


def test_a_memory_store_keeps_simulated_time_honest(caplog):
    """Under autojump, a wait for a worker thread counts as idle: with the store's queries
    off the Trio thread the clock jumped past the chargers' 15 s answer timeout while a
    query ran, and they dropped their messages. A ``:memory:`` store works inline, so an
    episode with sessions and a fault plays on simulated time with nothing dropped."""
    seen = {}

    async def episode():
        async with sandbox_backend(":memory:", clock=trio_clock(EPOCH)) as backend:
            await backend.sandbox.setup(
                {
                    "chargers": [{"id": "EVSE001", "connectors": 2}],
                    "cards": [{"id_tag": "DRIVER1"}, {"id_tag": "NEIGHBOUR"}],
                    "sessions": [{"connector_id": 2, "id_tag": "NEIGHBOUR"}],
                    "faults": [{"scenario": "stuck_connector", "params": {"connector_id": 1}}],
                }
            )
            await trio.sleep(300)  # five simulated minutes of meter values and heartbeats
            seen["snap"] = await backend.sandbox.snapshot()
            seen["active"] = len(list(backend.sandbox.csms.transactions.active()))

    with caplog.at_level("WARNING"):
        trio.run(episode, clock=trio.testing.MockClock(autojump_threshold=0))
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert dropped == []
    snap = seen["snap"]
    assert [s["id_tag"] for s in snap["sessions"]] == ["NEIGHBOUR"]
    assert seen["active"] == 1
    assert snap["chargers"]["EVSE001"]["connectors"]["1"]["error_code"] == "ConnectorLockFailure"


def test_a_remote_start_without_a_cable_waits_for_one_then_gives_up():
    """In a sandbox the cables are the driver's: a remote start on an empty connector
    waits ConnectionTimeOut (60 s) for a cable, as a real charger does — it no longer
    charges a car that is not there — and starts once the driver plugs in."""
    seen = {}

    async def episode():
        async with simulated_sandbox() as (backend, client):
            await backend.sandbox.setup(
                {"chargers": [{"id": "EVSE001", "connectors": 2}], "cards": [{"id_tag": "D1"}]}
            )
            start = {"id_tag": "D1", "connector_id": 2}
            r = await client.post("/commands/remote_start/EVSE001", json=start)
            assert r.status_code == 200 and r.json()["status"] == "Accepted"
            await trio.sleep(90)
            seen["alone"] = await backend.sandbox.snapshot()
            r = await client.post("/commands/remote_start/EVSE001", json=start)
            await trio.sleep(10)
            await client.post("/driver/EVSE001/plug_in", json={"connector_id": 2})
            await trio.sleep(10)
            seen["plugged"] = await backend.sandbox.snapshot()

    trio.run(episode, clock=trio.testing.MockClock(autojump_threshold=0))
    assert seen["alone"]["sessions"] == []
    assert seen["alone"]["chargers"]["EVSE001"]["connectors"]["2"]["status"] == "Available"
    (session,) = seen["plugged"]["sessions"]
    assert (session["connector_id"], session["id_tag"], session["status"]) == (2, "D1", "Charging")
