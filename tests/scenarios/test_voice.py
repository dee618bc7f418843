"""Voice output: every fixed line within the spoken budget in every language,
with and without the site's spoken names; the language picked from ``lang`` or
Accept-Language; spoken names validated, stored (SQLite and PostgreSQL, across a restart)
and used in the diagnosis's ``say`` lines asked through the agent tools."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libv4e.csms import SpokenNames, SqliteStore
from libv4e.scenarios import (
    ActionKind,
    DiagnosisCheck,
    EvidenceKind,
    FindingCode,
    Line,
    Say,
    WindowReason,
)
from libv4e_apps.csms import wording
from libv4e_apps.csms.phrases import (
    LANGUAGES,
    MAX_SAY_WORDS,
    PHRASES,
    Voice,
    action_line,
    pick_language,
)
from libv4e_apps.csms.tools import TOOLS_BY_NAME
from tests.support import charger_setup, tool, wait_for

ALIAS = "Zorblax"
"""A one-word name: an alias counts as one word, whatever its length."""
PROTOCOL_WORDS = re.compile(
    r"\b(OCPP|EVSE|RemoteStart|StartTransaction|StatusNotification|connector|id_tag|"
    r"transaction|Inoperative|Operative|Reset|Soft|Hard|\d{2,})\b",
    re.IGNORECASE,
)


def words(line: str) -> int:
    """Words said (a lone punctuation mark, French style, is not one)."""
    return sum(any(ch.isalnum() for ch in token) for token in line.split())


def test_every_code_of_the_library_is_worded_by_the_apps():
    assert set(Say) <= set(PHRASES)
    assert set(wording.TITLES) == set(FindingCode)
    assert set(wording.TOOLS) == set(ActionKind)
    assert set(wording.TOOLS.values()) <= set(TOOLS_BY_NAME)
    assert set(wording.CHECKS) == set(DiagnosisCheck)
    assert set(wording.WINDOW_REASONS) == set(WindowReason)
    assert set(wording.EVIDENCE) == set(EvidenceKind)
    notes = {*FindingCode, *(k for k in Say if k.startswith(("pending.", "resolved.")))}
    assert notes - {Say.RESOLVED_FULL_SPEED} | {Say.HEALTHY} == set(wording.NOTES)
    for name in wording.TOOLS.values():
        assert action_line(name, {}).key in PHRASES


def test_every_phrase_exists_in_every_language_with_the_same_placeholders():
    for key, texts in PHRASES.items():
        assert set(texts) == set(LANGUAGES), key
        holes = {lang: set(re.findall(r"\{(\w+)\}", t)) for lang, t in texts.items()}
        assert len({frozenset(h) for h in holes.values()}) == 1, (key, holes)
        assert holes["en"] <= {"where", "at"}, key


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("connector", [None, 1])
@pytest.mark.parametrize("named", [False, True])
def test_every_line_fits_the_spoken_budget_and_names_no_ids(lang, connector, named):
    names = SpokenNames("EVSE001", ALIAS, {1: ALIAS}) if named else None
    voice = Voice(lang, names)
    for key in PHRASES:
        said = voice.say(Line(key, connector))
        assert 0 < words(said) <= MAX_SAY_WORDS, (key, said)
        assert "{" not in said and "  " not in said and " ." not in said, (key, said)
        assert said[0].isupper() or said[0] in "«¿¡", (key, said)
        assert not PROTOCOL_WORDS.search(said), (key, said)
        assert "EVSE001" not in said
        if named and ("{where}" in PHRASES[key][lang] or "{at}" in PHRASES[key][lang]):
            assert ALIAS in said, (key, said)


def test_default_words_and_aliases():
    plain = Voice("en")
    assert plain.say(Line("resolved.unlocked", 2)) == "The cable is unlocked. You can unplug now."
    assert plain.say(Line("offline.disconnected")).startswith("The charger isn't connected")
    names = SpokenNames("EVSE001", "bay 3", {2: "bay 3, right plug"})
    named = Voice("en", names)
    assert (
        named.say(Line("resolved.unlocked", 2))
        == "The cable at bay 3, right plug is unlocked. You can unplug now."
    )
    # a connector without its own name is called by the charger's
    assert named.say(Line("connector_unavailable", 1)).startswith("Bay 3 was switched off")
    assert named.say(Line("offline.silent")).startswith("Bay 3 has stopped talking")
    de = Voice("de")
    assert de.say(Line("action.change_availability.Operative", 1)) == (
        "Ich schalte diesen Ladepunkt wieder ein."
    )
    assert Voice("fr").say(Line("resolved.unlocked", 1)) == (
        "Le câble est déverrouillé. Vous pouvez débrancher."
    )
    assert Voice("es", names).say(Line("action.remote_start", 2)) == (
        "Inicio ahora su carga en bay 3, right plug."
    )


def test_action_lines():
    assert action_line("change_availability", {"connector_id": 2, "type": "Inoperative"}) == Line(
        "action.change_availability.Inoperative", 2
    )
    assert action_line("reset_charger", {"type": "Hard"}) == Line("action.reset_charger", None)
    assert action_line("diagnose_charger", {"connector_id": 0}) == Line("action.check", None)


@pytest.mark.parametrize(
    ("requested", "header", "expected"),
    [
        ("de", "fr", "de"),
        (None, "de-CH, fr;q=0.8", "de"),
        (None, "it, fr;q=0.8, de;q=0.9", "de"),
        (None, "fr;q=0, es;q=0.1", "es"),
        (None, "it, pt", "en"),
        (None, "de;q=abc, fr", "fr"),
        ("xx", None, "en"),
        (None, "", "en"),
    ],
)
def test_pick_language(requested, header, expected):
    assert pick_language(requested, header) == expected


@given(st.one_of(st.none(), st.text()), st.one_of(st.none(), st.text(string.printable)))
def test_pick_language_never_fails(requested, header):
    assert pick_language(requested, header) in LANGUAGES


async def test_spoken_names_survive_a_restart(tmp_path):
    path = str(tmp_path / "v4e.db")
    store = SqliteStore(path)
    await store.open()
    await store.save_spoken_names(SpokenNames("EVSE001", "bay 3", {1: "bay 3, left plug"}))
    await store.save_spoken_names(SpokenNames("EVSE001", None, {2: "right"}))  # replaces
    await store.close()
    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.spoken_names("EVSE001") == SpokenNames("EVSE001", None, {2: "right"})
        assert await store.spoken_names("EVSE002") is None
    finally:
        await store.close()


@pytest.mark.parametrize(
    "body",
    [
        {"charger": "one two three four five six seven"},
        {"charger": "bay\n3"},
        {"charger": "x" * 41},
        {"charger": "   "},
        {"connectors": {"0": "a"}},
        {"connectors": {"65": "a"}},
        {"connectors": {"one": "a"}},
        {"connectors": {"1": ""}},
        {"connectors": {"1": "zero\u200bwidth"}},
        {"connectors": [{"connector_id": 1, "name": "a"}]},
        {"colour": "red"},
    ],
)
async def test_bad_spoken_names_are_422_and_change_nothing(tmp_path, body):
    async with charger_setup(str(tmp_path / "v4e.db")) as (_charger, client):
        good = {"charger": "bay 3", "connectors": {"1": "left plug"}}
        assert (await client.put("/chargers/EVSE001/spoken_names", json=good)).status_code == 200
        r = await client.put("/chargers/EVSE001/spoken_names", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["error"]
        r = await client.get("/chargers/EVSE001/spoken_names")
        assert r.json() == {"cp_id": "EVSE001", **good}
        r = await client.put("/chargers/NOPE/spoken_names", json=good)
        assert r.status_code == 404


async def test_the_diagnosis_speaks_the_language_asked_with_the_site_names(tmp_path):
    async with charger_setup(str(tmp_path / "v4e.db")) as (_charger, client):
        r = await tool(
            client,
            "set_spoken_names",
            cp_id="EVSE001",
            charger="bay 3",
            connectors={"1": "bay 3, left plug"},
        )
        assert r["connectors"] == {"1": "bay 3, left plug"}
        await tool(
            client, "change_availability", cp_id="EVSE001", connector_id=1, type="Inoperative"
        )

        async def unavailable():
            d = await tool(client, "diagnose_charger", cp_id="EVSE001", connector_id=1)
            return d["verdict"] == "fault_found"

        await wait_for(unavailable)
        said = {}
        for lang in LANGUAGES:
            d = await tool(client, "diagnose_charger", cp_id="EVSE001", connector_id=1, lang=lang)
            assert d["lang"] == lang
            (finding,) = d["findings"]
            assert finding["say"] == d["say"]
            assert "bay 3, left plug" in d["say"].lower(), d["say"]
            (action,) = finding["actions"]
            assert action["tool"] == "change_availability"
            assert "bay 3, left plug" in action["say"]
            said[lang] = d["say"]
        assert said["en"] == (
            "Bay 3, left plug was switched off remotely. I can switch it back on for you."
        )
        assert len(set(said.values())) == len(LANGUAGES)
        # no lang: the request's Accept-Language; the agent's note stays English
        r = await client.get(
            "/chargers/EVSE001/diagnosis?connector_id=1", headers={"Accept-Language": "fr-FR"}
        )
        assert r.json()["say"] == said["fr"] and r.json()["lang"] == "fr"
        assert "Unavailable" in r.json()["agent_note"]
        r = await client.get("/chargers/EVSE001/diagnosis?lang=it")
        assert r.status_code == 400
