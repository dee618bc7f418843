"""Task files: the documented schema, validated on load; a wrong field fails with one line
naming the file and the field. And the spoken form of ids, both ways."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libv4e_apps.eval.tasks import TaskError, load_tasks
from libv4e_apps.eval.voice import ids_in, speech_seconds, spoken_form
from tests.support import ROOT

GOOD = {
    "id": "mine/stuck",
    "initial_state": {
        "faults": [{"scenario": "stuck_connector", "params": {"id_tag": "DRIVER1"}}],
    },
    "driver": {
        "persona": "calm",
        "reason": "cable stuck",
        "card": "DRIVER1",
        "intent": "leave",
        "goal": "unplugged",
        "opening": ["My cable is stuck at EVSE001.", {"text": "x"}][0],
    },
    "evaluation": {
        "assertions": [{"assert": "cable_unlocked", "cp_id": "EVSE001", "connector_id": 1}]
    },
}


def _with(path, value):
    task = json.loads(json.dumps(GOOD))
    *parents, last = path
    node = task
    for key in parents:
        node = node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return task


def test_a_good_task_loads_with_its_spoken_form(tmp_path):
    (tmp_path / "t.json").write_text(json.dumps(GOOD))
    (task,) = load_tasks(tmp_path / "t.json")
    assert task.id == "mine/stuck" and task.family == "mine"
    assert task.driver.opening.spoken == ("My cable is stuck at E V S E zero zero one.",)
    assert task.driver.connector == task.driver.says_connector == 1
    assert task.criteria.reward_basis == ("state", "communicate")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("drivr", {}), "drivr"),
        (("driver", "goal", "happy"), "driver.goal"),
        (("driver", "connector", 2), "driver.connector"),
        (("driver", "card", ""), "driver.card"),
        (("driver", "opening", []), "driver.opening"),
        (("driver", "before_call", [{"action": "dance"}]), "driver.before_call[0].action"),
        (("driver", "persona", KeyError), "driver.persona"),
        (
            ("initial_state", "cards", [{"id_tag": "A", "status": "lost"}]),
            "initial_state.cards[0].status",
        ),
        (
            ("evaluation", "assertions", [{"assert": "charging_fast"}]),
            "evaluation.assertions[0].assert",
        ),
        (
            ("evaluation", "assertions", [{"assert": "session_running", "idtag": "A"}]),
            "evaluation.assertions[0]",
        ),
        (("evaluation", "communicate", ["the price"]), "evaluation.communicate[0]"),
        (("evaluation", "reward_basis", ["vibes"]), "evaluation.reward_basis"),
        (("evaluation", "assertions", []), "evaluation.assertions"),
        (("max_turns", 0), "max_turns"),
        (("description", ["not", "a", "string"]), "description"),
        (("family", 7), "family"),
    ],
)
def test_a_wrong_field_names_the_file_and_the_field(tmp_path, change, field):
    *path, value = change
    file = tmp_path / "bad.json"
    file.write_text(json.dumps(_with(path, value)))
    with pytest.raises(TaskError) as info:
        load_tasks(file)
    assert info.value.field == field
    assert info.value.file == str(file)
    line = str(info.value)
    assert line.startswith(f"{file}: {field}: ") and "\n" not in line


def test_family_files_name_the_task_index_and_merge_defaults(tmp_path):
    bad = json.loads(json.dumps(GOOD))
    bad["id"] = "mine/two"
    bad["driver"]["intent"] = "fly"
    (tmp_path / "fam.json").write_text(
        json.dumps({"family": "mine", "defaults": {"max_turns": 5}, "tasks": [GOOD, bad]})
    )
    with pytest.raises(TaskError) as info:
        load_tasks(tmp_path)
    assert info.value.field == "tasks[1].driver.intent"
    bad["driver"]["intent"] = "leave"
    (tmp_path / "fam.json").write_text(
        json.dumps({"family": "mine", "defaults": {"max_turns": 5}, "tasks": [GOOD, bad]})
    )
    assert [t.max_turns for t in load_tasks(tmp_path)] == [5, 5]


def test_syntax_policy_and_duplicate_errors(tmp_path):
    (tmp_path / "a.json").write_text('{"id": "x",\n  oops}')
    with pytest.raises(TaskError) as info:
        load_tasks(tmp_path / "a.json")
    assert info.value.field == "line 2"
    (tmp_path / "a.json").write_text(json.dumps({"policy": "nope.md", "tasks": [GOOD]}))
    with pytest.raises(TaskError) as info:
        load_tasks(tmp_path / "a.json")
    assert info.value.field == "policy"
    (tmp_path / "a.json").write_text(json.dumps(GOOD))
    (tmp_path / "b.json").write_text(json.dumps(GOOD))
    with pytest.raises(TaskError) as info:
        load_tasks(tmp_path)
    assert info.value.field == "id" and "a.json" in str(info.value)
    with pytest.raises(TaskError):
        load_tasks(tmp_path / "missing")


def test_the_cli_prints_one_line_and_exits_2(tmp_path):
    file = tmp_path / "bad.json"
    file.write_text(json.dumps(_with(["driver", "goal"], "happy")))
    proc = subprocess.run(
        [sys.executable, "-m", "libv4e_apps.eval", "--tasks", str(file)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"v4e eval: {file}: driver.goal: must be one of charging, unplugged, informed (got 'happy')"
    ]


@given(
    st.from_regex(r"[A-Z]{2,5}[0-9]{1,4}", fullmatch=True),
    st.sampled_from(["at charger {}.", "my card is {}, thanks", "{}"]),
)
def test_ids_survive_being_read_out(ident, template):
    spoken = spoken_form(template.format(ident))
    assert ident not in spoken
    assert ids_in(spoken) == [ident]


def test_speech_takes_time_at_150_words_a_minute():
    assert speech_seconds("one two three four five") == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("spoken", "ids"),
    [
        ("The plug is locked in E V S E double oh one.", ["EVSE001"]),
        ("card D R I V E R triple seven, thanks", ["DRIVER777"]),
        ("I'm at E V S E zero zero one. I tapped C A R D four two", ["EVSE001", "CARD42"]),
        ("connector two, please double check", []),
    ],
)
def test_how_transcribers_read_ids(spoken, ids):
    assert ids_in(spoken) == ids


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"id": "caf\xe9"}', "-"),  # Latin-1, not UTF-8
        (b"[" * 100_000 + b"]" * 100_000, "-"),  # nested deeper than the parser goes
        (b'{"max_turns": ' + b"9" * 5000 + b"}", "-"),  # an integer too long to read
    ],
    ids=["not-utf8", "deep", "huge-int"],
)
def test_unreadable_bytes_are_one_line_not_a_traceback(tmp_path, raw, field):
    file = tmp_path / "bad.json"
    file.write_bytes(raw)
    with pytest.raises(TaskError) as info:
        load_tasks(tmp_path)  # a directory with a bad file in it
    assert info.value.file == str(file) and "\n" not in str(info.value)


def test_a_utf8_bom_is_fine_and_a_bad_policy_is_named(tmp_path):
    file = tmp_path / "t.json"
    file.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode())
    assert [t.id for t in load_tasks(file)] == ["mine/stuck"]
    (tmp_path / "policy.md").write_bytes(b"caf\xe9")
    file.write_text(json.dumps({"policy": "policy.md", "tasks": [GOOD]}))
    with pytest.raises(TaskError) as info:
        load_tasks(file)
    assert info.value.field == "policy"
    file.write_text(json.dumps({"policy": "x" * 5000, "tasks": [GOOD]}))
    with pytest.raises(TaskError) as info:
        load_tasks(file)
    assert info.value.field == "policy"


@pytest.mark.parametrize(
    ("assertion", "field"),
    [
        ({"assert": ["session_running"]}, "evaluation.assertions[0].assert"),
        ({"assert": "no_forbidden", "commands": "Reset"}, "evaluation.assertions[0].commands"),
        ({"assert": "no_forbidden", "tools": "reset_charger"}, "evaluation.assertions[0].tools"),
        (
            {"assert": "no_session_stopped", "except_tags": "DRIVER1"},
            "evaluation.assertions[0].except_tags",
        ),
        (
            {"assert": "session_running", "id_tag": "DRIVER1", "min_kw": "fast"},
            "evaluation.assertions[0].min_kw",
        ),
        (
            {"assert": "cable_unlocked", "cp_id": "EVSE001", "connector_id": "1"},
            "evaluation.assertions[0].connector_id",
        ),
        (
            {"assert": "connector_ok", "cp_id": "EVSE001", "connector_id": 1, "status": 5},
            "evaluation.assertions[0].status",
        ),
        ({"assert": "charger_online", "cp_id": 7}, "evaluation.assertions[0].cp_id"),
        ({"assert": "ticket_filed", "category": ["x"]}, "evaluation.assertions[0].category"),
        ({"assert": "no_forbidden", "commands": ["Rest"]}, "evaluation.assertions[0].commands"),
        (
            {"assert": "no_forbidden", "commands": ["Reset:Hrad"]},
            "evaluation.assertions[0].commands",
        ),
        (
            {"assert": "no_forbidden", "tools": ["reset_chargers"]},
            "evaluation.assertions[0].tools",
        ),
        (
            {"assert": "connector_ok", "cp_id": "EVSE001", "connector_id": 1, "status": "Availabe"},
            "evaluation.assertions[0].status",
        ),
    ],
)
def test_assertion_arguments_of_the_wrong_type_are_named(tmp_path, assertion, field):
    """A string where a list belongs would be read letter by letter ("Reset" forbids R, e,
    s, t: nothing), a silent pass; other wrong types crashed every episode at judging."""
    file = tmp_path / "bad.json"
    file.write_text(json.dumps(_with(["evaluation", "assertions"], [assertion])))
    with pytest.raises(TaskError) as info:
        load_tasks(file)
    assert info.value.field == field


def test_before_call_connector_must_be_a_connector_of_the_charger(tmp_path):
    for value in ("1", 9, True):
        file = tmp_path / "bad.json"
        step = [{"action": "present_card", "connector_id": value}]
        file.write_text(json.dumps(_with(["driver", "before_call"], step)))
        with pytest.raises(TaskError) as info:
            load_tasks(file)
        assert info.value.field == "driver.before_call[0].connector_id"


@pytest.mark.parametrize(
    ("evaluation", "field"),
    [
        (
            {"assertions": [{"assert": "charger_online", "cp_id": "EVSE01"}]},
            "evaluation.assertions[0].cp_id",
        ),
        (
            {"assertions": [{"assert": "cable_unlocked", "cp_id": "EVSE001", "connector_id": 2}]},
            "evaluation.assertions[0].connector_id",
        ),
        (
            {
                "assertions": [],
                "communicate": [{"any_of": ["", "sorry"]}],
                "reward_basis": ["communicate"],
            },
            "evaluation.communicate[0].any_of",
        ),
    ],
    ids=["unknown-charger", "no-such-connector", "empty-phrase"],
)
def test_criteria_that_could_never_fail_or_never_pass_are_named(tmp_path, evaluation, field):
    """A charger id typo made the task unpassable; an empty phrase is in every answer."""
    file = tmp_path / "bad.json"
    file.write_text(json.dumps(_with(["evaluation"], evaluation)))
    with pytest.raises(TaskError) as info:
        load_tasks(file)
    assert info.value.field == field


def test_a_mistake_in_the_family_defaults_is_named_there(tmp_path):
    """The task does not have the field: pointing at tasks[0] would send the reader to
    the wrong place."""
    file = tmp_path / "fam.json"
    file.write_text(json.dumps({"defaults": {"driver": {"gives_up": "sulk"}}, "tasks": [GOOD]}))
    with pytest.raises(TaskError) as info:
        load_tasks(file)
    assert info.value.field == "defaults.driver.gives_up"
    assert "(for tasks[0])" in str(info.value)
    task = json.loads(json.dumps(GOOD))
    task["max_turns"] = 99  # the task's own value is named as the task's
    file.write_text(json.dumps({"defaults": {"max_turns": 5}, "tasks": [task]}))
    with pytest.raises(TaskError) as info:
        load_tasks(file)
    assert info.value.field == "tasks[0].max_turns"


def test_hidden_files_in_a_task_directory_are_not_tasks(tmp_path):
    """An editor's lock or backup (.#stuck.json, a dangling link) is not a task file."""
    (tmp_path / "t.json").write_text(json.dumps(GOOD))
    (tmp_path / ".#t.json").symlink_to(tmp_path / "gone")
    (tmp_path / ".t.json.swp.json").write_text("{")
    assert [t.id for t in load_tasks(tmp_path)] == ["mine/stuck"]


@pytest.mark.parametrize(
    ("state", "field"),
    [
        ({"chargers": [{"id": "EVSE001", "connectors": 1_000_000_000}]}, "chargers[0].connectors"),
        ({"chargers": [{"id": f"CP{i}"} for i in range(500)]}, "chargers"),
        ({"chargers": [{"id": "EVSE001", "max_power_kw": 1e308}]}, "chargers[0].max_power_kw"),
        ({"chargers": [{"id": "EVSE001", "ev_max_power_kw": 5e6}]}, "chargers[0].ev_max_power_kw"),
    ],
    ids=["connectors", "chargers", "max_power", "ev_max_power"],
)
def test_a_world_too_big_to_simulate_is_named_on_load(tmp_path, state, field):
    """A typo of a few zeros would have the sandbox build a billion connectors (an episode
    that never starts, a worker killed for memory) or meter at 1e308 kW."""
    task = json.loads(json.dumps(GOOD))
    task["initial_state"] = {**task["initial_state"], **state}
    task["driver"]["charger"] = state["chargers"][0]["id"]
    task["evaluation"] = {"assertions": [{"assert": "no_ticket"}]}
    file = tmp_path / "big.json"
    file.write_text(json.dumps(task))
    with pytest.raises(TaskError) as info:
        load_tasks(file)
    assert info.value.field == f"initial_state.{field}"


def test_nan_and_infinity_are_not_json(tmp_path):
    file = tmp_path / "nan.json"
    file.write_text(json.dumps(GOOD).replace('"max_turns"', '"x"').replace("{", '{"n": NaN, ', 1))
    with pytest.raises(TaskError) as info:
        load_tasks(file)
    assert "NaN" in str(info.value)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"conector_id": 2}, "initial_state.faults[0].params.conector_id"),
        ({"id_tag": 5}, "initial_state.faults[0].params.id_tag"),
        ({"mode": "asleep"}, "initial_state.faults[0].params.mode"),
        ({"recover_after": "soon"}, "initial_state.faults[0].params.recover_after"),
        ({"start_session": "yes"}, "initial_state.faults[0].params.start_session"),
    ],
)
def test_fault_parameters_are_checked(tmp_path, params, field):
    """A typo in a fault's parameters was silently ignored: the fault landed on connector 1
    with the default card, and the task tested something else than it says."""
    task = json.loads(json.dumps(GOOD))
    task["initial_state"]["faults"][0]["params"] = params
    file = tmp_path / "t.json"
    file.write_text(json.dumps(task))
    with pytest.raises(TaskError) as info:
        load_tasks(file)
    assert info.value.field == field
