"""End to end: every scenario on connector 1 and on connector 2 of a
two-connector charger while another card charges on the other connector. The agent
follows only what the diagnosis suggests (the findings' actions, else ``next_action``),
through the agent tools, consenting where an action says ``needs_consent``. Asserted: the
fault resolves, no session other than the caller's is stopped without consent, at most two
starts, and never ``healthy`` while the scenario run is still active or remediating. The
site has spoken names ("bay 3, left plug"): every ``say`` (verdict, findings, actions) is
at most 15 words, names the connector by its alias and never by an id, and the healthy
verdict speaks the moment (the cable released, the driver's car charging)."""

from __future__ import annotations

import pytest
import trio

from libv4e.sandbox import trio_clock
from tests.support import (
    DRIVER,
    EPOCH,
    NEIGHBOUR,
    charger_setup,
    neighbour_charging,
    run_phase,
    tool,
    wait_for,
)

SCENARIOS = ["session_start_failure", "stuck_connector", "offline_charger", "auth_failure"]
SCENARIOS += ["slow_charging"]
NAMES = {"charger": "bay 3", "connectors": {"1": "bay 3, left plug", "2": "bay 3, right plug"}}
RESOLVED = {
    "session_start_failure": "Your car is charging at {alias} now, and energy is flowing.",
    "stuck_connector": "The cable at {alias} is unlocked. You can unplug now.",
    "offline_charger": "The charger is back online and your car is charging.",
    "auth_failure": "Your card works now, and your car is charging.",
    "slow_charging": "Your car is charging at {alias} now, and energy is flowing.",
}


def spoken_words(line: str) -> int:
    """Words said, a site's name counting as one."""
    line = line.lower()
    for name in ("bay 3, left plug", "bay 3, right plug", "bay 3"):
        line = line.replace(name, "NAME")
    return len(line.split())


def check_say(d: dict) -> None:
    lines = [d["say"]]
    for f in d["findings"]:
        lines += [f["say"], *(a["say"] for a in f["actions"])]
    if d.get("next_action"):
        lines.append(d["next_action"]["say"])
    for line in lines:
        assert 0 < spoken_words(line) <= 15, line
        assert "EVSE001" not in line and "connector" not in line.lower(), line


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "v4e.db")


async def _ready(client, charger):
    state = await tool(client, "get_charger", cp_id="EVSE001")
    return (
        state["online"]
        and charger.online
        and not charger.sessions
        and not state["active_transactions"]
        and all(
            c["status"] == "Available" and c["error_code"] == "NoError"
            for c in state["connectors"]
            if c["connector_id"]
        )
    )


async def _connector(client, cid):
    state = await tool(client, "get_charger", cp_id="EVSE001")
    return next(c for c in state["connectors"] if c["connector_id"] == cid)


async def play(client, charger, scenario, cid):
    """One support call; returns what the agent did."""
    other = 3 - cid
    await client.post("/demo/clear")
    await wait_for(lambda: _ready(client, charger), timeout=10, interval=0.2)
    neighbour = await neighbour_charging(client, charger, other)
    params = {"connector_id": cid, "id_tag": DRIVER}
    if scenario == "stuck_connector":
        params["session_seconds"] = 0.3
    r = await client.post(f"/demo/trigger/{scenario}", json=params)
    assert r.status_code == 201, r.text
    if scenario == "stuck_connector":  # the driver's session ended, the lock stuck

        async def stuck():
            return (await _connector(client, cid))["error_code"] == "ConnectorLockFailure"

        await wait_for(stuck, timeout=10, interval=0.2)
    elif scenario == "slow_charging":  # the driver is charging, slowly
        await wait_for(lambda: _true(cid in charger.sessions), timeout=10)
    intent = "leave" if scenario == "stuck_connector" else "charge"
    starts, consented, probe, tools = 0, set(), False, []
    d: dict = {}
    for _ in range(20):
        d = await tool(
            client,
            "diagnose_charger",
            cp_id="EVSE001",
            id_tag=DRIVER,
            connector_id=cid,
            intent=intent,
            start_timeout=1.5,
            probe=probe,
        )
        check_say(d)
        phase = await run_phase(client, scenario, cid)
        assert not (d["healthy"] and phase in ("active", "remediating")), (scenario, cid, d)
        if d["healthy"]:
            break
        if d["verdict"] == "fault_found":
            actions = d["findings"][0]["actions"]
        else:
            actions = [d["next_action"]]
        probe = False
        for action in actions:
            name, arguments = action["tool"], action["arguments"]
            if action.get("fallback"):
                continue  # only when what came before did not cure it
            tools.append(name)
            assert name != "create_ticket", (scenario, cid, d)
            if name == "diagnose_charger":
                probe = bool(arguments.get("probe"))
                await trio.sleep(min(d["retry_after_s"] or 0.3, 2.0))
                break
            if action["needs_consent"]:  # the agent asks the other driver (or the operator)
                consented |= {s["transaction_id"] for s in action["impact"]["stops"]}
            starts += name == "remote_start"
            if name == "reset_charger":
                boots = charger.boot_count
                await tool(client, name, **arguments)
                await wait_for(lambda b=boots: _true(charger.boot_count > b and charger.online))
            else:
                await tool(client, name, **arguments)
        else:
            await trio.sleep(0.5)
    assert d["healthy"], (scenario, cid, tools, d)
    alias = NAMES["connectors"][str(cid)]
    assert d["say"] == RESOLVED[scenario].format(alias=alias), (scenario, d)

    async def resolved():
        return await run_phase(client, scenario, cid) == "resolved"

    await wait_for(resolved, timeout=5, interval=0.2)
    assert starts <= 2, (scenario, cid, tools)
    txs = (await tool(client, "list_transactions", cp_id="EVSE001"))["transactions"]
    (theirs,) = [t for t in txs if t["transaction_id"] == neighbour.transaction_id]
    if theirs["stopped_at"] is not None:
        assert theirs["transaction_id"] in consented, (scenario, cid, tools)
    assert theirs["id_tag"] == NEIGHBOUR
    return tools


async def _true(value):
    return value


@pytest.mark.slow
@pytest.mark.parametrize("cid", [1, 2])
async def test_every_scenario_on_each_connector_with_a_neighbour_charging(db, cid, autojump_clock):
    autojump_clock.autojump_threshold = 0.01  # no jump while I/O is in flight
    async with charger_setup(db, clock=trio_clock(EPOCH), connectors=2) as (charger, client):
        r = await client.put("/chargers/EVSE001/spoken_names", json=NAMES)
        assert r.status_code == 200, r.text
        done = {}
        for scenario in SCENARIOS:
            done[scenario] = await play(client, charger, scenario, cid)
        # the neighbour is only stopped where nothing narrower cures: the silent charger
        assert "reset_charger" in done["offline_charger"]
        for scenario in ("session_start_failure", "auth_failure", "slow_charging"):
            assert "reset_charger" not in done[scenario], done[scenario]
