"""The diagnosis's JSON, pinned: every field an API / MCP / SSE / eval consumer reads (the
verdict, the say lines in four languages and with a site's spoken names, the agent notes,
the actions with their tool names, arguments, impact and say lines, the evidence).

Each case plays an episode in a sandbox over real OCPP on simulated time (a fixed epoch,
so every time in the answer is the same on every run) and asks for the diagnosis through
the REST route; the answers are compared with ``tests/scenarios/golden/<case>.json``.
Message unique ids (random) are replaced by ``id-<n>`` in the order they first appear.

The same episodes on a **2.0.1 station** (every charger of the world speaking 2.0.1) give
the same diagnosis — verdict, say lines, notes, actions, facts, word for word — except that
the evidence cites the messages as they went over the wire (a TransactionEvent where 1.6
has a MeterValues, a NotifyEvent where it has a StatusNotification…), each a valid 2.0.1
message; those answers are pinned in ``golden/ocpp201/<case>.json``.

``V4E_GOLDEN_UPDATE=1`` rewrites the files (only when the JSON is meant to change).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
from importlib import resources
from typing import Any

import jsonschema
import pytest
import trio
import trio.testing

from tests.support import simulated_sandbox

GOLDEN = pathlib.Path(__file__).with_name("golden")
GOLDEN_201 = GOLDEN / "ocpp201"
UPDATE = os.environ.get("V4E_GOLDEN_UPDATE") == "1"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

TWO = {"chargers": [{"id": "EVSE001", "connectors": 2}]}
NAMES = {"charger": "bay 3", "connectors": {"1": "bay 3, left plug", "2": "bay 3, right plug"}}
NEIGHBOUR = {"charger": "EVSE001", "connector_id": 2, "id_tag": "NEIGHBOUR"}
CARDS = [{"id_tag": "CARD1"}, {"id_tag": "NEIGHBOUR"}]

Step = tuple[Any, ...]

CASES: dict[str, tuple[dict[str, Any], list[Step]]] = {
    # -- nothing wrong (yet) -----------------------------------------------------------------
    "untested": (
        {},
        [
            ("diagnose", {}),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1, "lang": "de"}),
        ],
    ),
    "healthy_charging": (
        {"cards": [{"id_tag": "CARD1"}], "sessions": [{"connector_id": 1, "id_tag": "CARD1"}]},
        [
            ("sleep", 120),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1}),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1, "lang": "fr"}),
            ("diagnose", {}),
            ("diagnose", {"id_tag": "OTHER", "connector_id": 1, "lang": "es"}),
        ],
    ),
    "just_started": (
        {"cards": [{"id_tag": "CARD1"}], "sessions": [{"connector_id": 1, "id_tag": "CARD1"}]},
        [
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1}),
            ("sleep", 1),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1, "lang": "de"}),
        ],
    ),
    "leave": (
        {},
        [("diagnose", {"connector_id": 1, "intent": "leave"})],
    ),
    # -- the five faults ---------------------------------------------------------------------
    "session_start_failure": (
        {
            "cards": [{"id_tag": "CARD1"}],
            "faults": [{"charger": "EVSE001", "scenario": "session_start_failure"}],
        },
        [
            ("sleep", 2),
            ("post", "/commands/remote_start/EVSE001", {"id_tag": "CARD1", "connector_id": 1}),
            ("sleep", 1),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1}),
            ("sleep", 10),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1}),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1, "probe": True, "evidence": True}),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1, "probe": True, "lang": "de"}),
            ("post", "/commands/remote_start/EVSE001", {"id_tag": "CARD1", "connector_id": 1}),
            ("sleep", 10),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1, "probe": True}),
        ],
    ),
    "stuck_connector": (
        {
            "cards": [{"id_tag": "CARD1"}],
            "faults": [
                {
                    "charger": "EVSE001",
                    "scenario": "stuck_connector",
                    "params": {"session_seconds": 1},
                }
            ],
        },
        [
            ("sleep", 30),
            ("diagnose", {"connector_id": 1}),
            ("diagnose", {"connector_id": 1, "evidence": True, "lang": "es"}),
            ("post", "/commands/unlock_connector/EVSE001", {"connector_id": 1}),
            ("sleep", 5),
            ("diagnose", {"connector_id": 1}),
            ("diagnose", {"connector_id": 1, "intent": "charge"}),
            ("diagnose", {"connector_id": 1, "intent": "leave"}),
        ],
    ),
    "offline_silent": (
        {"faults": [{"charger": "EVSE001", "scenario": "offline_charger"}]},
        [
            ("sleep", 30),
            ("diagnose", {}),
            ("diagnose", {"probe": True}),
            ("sleep", 1000),
            ("diagnose", {"evidence": True}),
            ("diagnose", {"lang": "fr"}),
            ("post", "/commands/reset/EVSE001", {"type": "Hard"}),
            ("sleep", 3),
            ("diagnose", {}),
            ("sleep", 600),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1}),
            ("post", "/commands/remote_start/EVSE001", {"id_tag": "CARD1", "connector_id": 1}),
            ("sleep", 1),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1}),
            ("sleep", 120),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1}),
        ],
    ),
    "offline_dead": (
        {
            "faults": [
                {"charger": "EVSE001", "scenario": "offline_charger", "params": {"mode": "dead"}}
            ]
        },
        [
            ("sleep", 30),
            ("diagnose", {"evidence": True}),
            ("diagnose", {"lang": "de"}),
        ],
    ),
    "auth_failure": (
        {"cards": [{"id_tag": "CARD1", "stale_at": {"charger": "EVSE001", "connector_id": 1}}]},
        [
            ("driver", "plug_in", {"connector_id": 1}),
            ("driver", "present_card", {"connector_id": 1, "id_tag": "CARD1"}),
            ("sleep", 5),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1}),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1, "probe": True, "evidence": True}),
            ("diagnose", {"lang": "es"}),
            (
                "post",
                "/commands/send_local_list/EVSE001",
                {"id_tag": "CARD1", "status": "Accepted"},
            ),
            ("post", "/commands/remote_start/EVSE001", {"id_tag": "CARD1", "connector_id": 1}),
            ("sleep", 120),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1}),
        ],
    ),
    "slow_charging": (
        {
            "cards": [{"id_tag": "CARD1"}],
            "sessions": [{"connector_id": 1, "id_tag": "CARD1"}],
            "faults": [{"charger": "EVSE001", "scenario": "slow_charging"}],
        },
        [
            ("sleep", 120),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1}),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1, "evidence": True, "lang": "fr"}),
        ],
    ),
    # -- other findings ----------------------------------------------------------------------
    "safety_fault": (
        {"errors": [{"connector_id": 1, "error_code": "GroundFailure", "info": "RCD tripped"}]},
        [("sleep", 5), ("diagnose", {"connector_id": 1, "evidence": True})],
    ),
    "connector_fault": (
        {"errors": [{"connector_id": 1, "error_code": "PowerMeterFailure", "info": "meter"}]},
        [("sleep", 5), ("diagnose", {"connector_id": 1}), ("diagnose", {"lang": "de"})],
    ),
    "card_blocked": (
        {"cards": [{"id_tag": "CARD9", "status": "blocked"}]},
        [
            ("driver", "present_card", {"connector_id": 1, "id_tag": "CARD9"}),
            ("sleep", 5),
            ("diagnose", {"connector_id": 1, "id_tag": "CARD9", "intent": "charge"}),
        ],
    ),
    "switched_off": (
        {},
        [
            (
                "post",
                "/commands/change_availability/EVSE001",
                {"connector_id": 1, "type": "Inoperative"},
            ),
            ("sleep", 5),
            ("diagnose", {"connector_id": 1}),
            ("diagnose", {"connector_id": 1, "lang": "es"}),
        ],
    ),
    # -- a shared site: two drivers, spoken names ----------------------------------------------
    "shared_reserved": (
        {
            **TWO,
            "cards": [{"id_tag": "CARD9"}, {"id_tag": "BOOKER"}],
            "reservations": [{"connector_id": 1, "id_tag": "BOOKER"}],
        },
        [
            ("names", NAMES),
            ("driver", "present_card", {"connector_id": 1, "id_tag": "CARD9"}),
            ("sleep", 5),
            ("diagnose", {"connector_id": 1, "id_tag": "CARD9", "intent": "charge"}),
            ("diagnose", {"connector_id": 1, "id_tag": "CARD9", "lang": "de"}),
        ],
    ),
    "shared_slow": (
        {
            **TWO,
            "cards": CARDS,
            "sessions": [{"connector_id": 1, "id_tag": "CARD1"}, NEIGHBOUR],
            "faults": [
                {"charger": "EVSE001", "scenario": "slow_charging", "params": {"connector_id": 1}}
            ],
        },
        [
            ("names", NAMES),
            ("sleep", 120),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1}),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1, "lang": "fr"}),
            ("diagnose", {"connector_id": 1, "lang": "es"}),
            ("diagnose", {}),
        ],
    ),
    "shared_offline": (
        {
            **TWO,
            "cards": CARDS,
            "sessions": [NEIGHBOUR],
            "faults": [{"charger": "EVSE001", "scenario": "offline_charger"}],
        },
        [
            ("sleep", 30),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1}),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1, "probe": True}),
            ("names", NAMES),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1, "probe": True, "lang": "de"}),
        ],
    ),
    "shared_start_failure": (
        {
            **TWO,
            "cards": CARDS,
            "sessions": [NEIGHBOUR],
            "faults": [
                {
                    "charger": "EVSE001",
                    "scenario": "session_start_failure",
                    "params": {"connector_id": 1},
                }
            ],
        },
        [
            ("names", NAMES),
            ("sleep", 2),
            ("post", "/commands/remote_start/EVSE001", {"id_tag": "CARD1", "connector_id": 1}),
            ("sleep", 10),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1, "probe": True}),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1, "probe": True, "lang": "es"}),
            ("diagnose", {"id_tag": "CARD1", "probe": True, "lang": "fr"}),
        ],
    ),
    "shared_fault": (
        {
            **TWO,
            "cards": CARDS,
            "sessions": [NEIGHBOUR],
            "errors": [{"connector_id": 1, "error_code": "HighTemperature"}],
        },
        [
            ("names", NAMES),
            ("sleep", 5),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1}),
            ("diagnose", {"id_tag": "CARD1", "connector_id": 1, "lang": "de", "evidence": True}),
        ],
    ),
}


async def _episode(initial: dict[str, Any], steps: list[Step]) -> list[dict[str, Any]]:
    answers = []
    async with simulated_sandbox() as (backend, client):
        await backend.sandbox.setup(initial)
        for step in steps:
            kind, *rest = step
            if kind == "sleep":
                await trio.sleep(rest[0])
                continue
            if kind == "diagnose":
                query = {
                    k: str(v).lower() if isinstance(v, bool) else v for k, v in rest[0].items()
                }
                method = "POST" if rest[0].get("probe") else "GET"
                r = await client.request(method, "/chargers/EVSE001/diagnosis", params=query)
                assert r.status_code == 200, r.text
                answers.append({"query": rest[0], "diagnosis": r.json()})
                continue
            if kind == "names":
                r = await client.put("/chargers/EVSE001/spoken_names", json=rest[0])
            elif kind == "driver":
                r = await client.post(f"/driver/EVSE001/{rest[0]}", json=rest[1])
            else:
                r = await client.post(rest[0], json=rest[1])
            assert r.status_code < 300, (step, r.text)
    return answers


def _stable(answers: list[dict[str, Any]]) -> Any:
    """The answers with the random message ids numbered in order of appearance."""
    text = json.dumps(answers, ensure_ascii=False, indent=1)
    seen: dict[str, str] = {}
    text = UUID.sub(lambda m: seen.setdefault(m.group(0), f"id-{len(seen) + 1}"), text)
    return json.loads(text)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_diagnosis_json_is_unchanged(case):
    initial, steps = CASES[case]
    answers = trio.run(_episode, initial, steps, clock=trio.testing.MockClock(autojump_threshold=0))
    got = _stable(answers)
    path = GOLDEN / f"{case}.json"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(got, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    assert got == json.loads(path.read_text(encoding="utf-8"))


WIRE_AS_16 = {
    "TransactionEvent": {"StartTransaction", "MeterValues", "StopTransaction"},
    "NotifyEvent": {"StatusNotification"},
    "RequestStartTransaction": {"RemoteStartTransaction"},
    "RequestStopTransaction": {"RemoteStopTransaction"},
}
"""A 2.0.1 message cited where a 1.6 episode cites one of these."""


def _on_201(initial: dict[str, Any]) -> dict[str, Any]:
    chargers = initial.get("chargers") or [{"id": "EVSE001"}]
    return {**initial, "chargers": [{**c, "ocpp_version": "2.0.1"} for c in chargers]}


def _cited(answers: Any, seen: list[dict[str, Any]]) -> Any:
    """The answers with each cited message's action and payload taken out (into
    ``seen``): what must not depend on the version the station speaks."""
    if isinstance(answers, list):
        return [_cited(x, seen) for x in answers]
    if not isinstance(answers, dict):
        return answers
    if "action" in answers and "at" in answers and "id" in answers:  # a cite, an evidence
        seen.append(answers)
        return _cited({k: v for k, v in answers.items() if k not in ("action", "payload")}, [])
    return {k: _cited(v, seen) for k, v in answers.items()}


def _valid_201(entry: dict[str, Any]) -> None:
    """An evidence entry of a 2.0.1 station is a valid 2.0.1 message as it was sent."""
    kind = {"call": "", "result": "Response"}.get(entry.get("type", ""))
    if kind is None or "payload" not in entry:
        return
    name = f"{entry['action']}{kind or 'Request'}.json"
    path = resources.files("ocpp") / "v201" / "schemas" / name
    jsonschema.Draft6Validator(json.loads(path.read_text())).validate(entry["payload"])


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_2_0_1_station_gets_the_same_diagnosis_citing_its_own_messages(case):
    initial, steps = CASES[case]
    answers = trio.run(
        _episode, _on_201(initial), steps, clock=trio.testing.MockClock(autojump_threshold=0)
    )
    got = _stable(answers)
    want = json.loads((GOLDEN / f"{case}.json").read_text(encoding="utf-8"))
    cited_201: list[dict[str, Any]] = []
    cited_16: list[dict[str, Any]] = []
    assert _cited(got, cited_201) == _cited(want, cited_16)
    assert len(cited_201) == len(cited_16)
    for on_201, on_16 in zip(cited_201, cited_16, strict=True):
        action = on_201["action"]
        assert action == on_16["action"] or on_16["action"] in WIRE_AS_16.get(action, ()), (
            on_201,
            on_16,
        )
        _valid_201(on_201)
    path = GOLDEN_201 / f"{case}.json"
    if UPDATE:
        GOLDEN_201.mkdir(exist_ok=True)
        path.write_text(json.dumps(got, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    assert got == json.loads(path.read_text(encoding="utf-8"))
